//! Building Segment-spec events as JavaScript objects.

use js_sys::{Array, Date, Object, Reflect, JSON};
use wasm_bindgen::JsValue;

use crate::context;

/// The library name and version every event carries in `context.library`.
pub const LIBRARY_NAME: &str = "edge-cdp-tracker";
/// This tracker's version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sets `object[key] = value`; setting a property on a plain object cannot fail.
pub(crate) fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}

/// The current time as an ISO 8601 string, the form the collector reads.
pub fn now_iso() -> JsValue {
    Date::new_0().to_iso_string().into()
}

fn base(kind: &str, anonymous_id: &str) -> Object {
    let event = Object::new();
    set(&event, "type", &kind.into());
    set(&event, "messageId", &crate::identity::new_id().into());
    set(&event, "anonymousId", &anonymous_id.into());
    set(&event, "timestamp", &now_iso());
    set(&event, "context", &context::context());
    event
}

/// A `page` event for the current page; its properties default to the page's url, path,
/// title, referrer and search, as Segment's analytics.js sends them.
pub fn page(anonymous_id: &str, name: Option<&str>, properties: Option<Object>) -> Object {
    let event = base("page", anonymous_id);
    if let Some(name) = name {
        set(&event, "name", &name.into());
    }
    let props = Object::assign(&Object::new(), &context::page());
    if let Some(extra) = properties {
        Object::assign(&props, &extra);
    }
    set(&event, "properties", &props);
    event
}

/// A `track` event named `name`.
pub fn track(anonymous_id: &str, name: &str, properties: Option<Object>) -> Object {
    let event = base("track", anonymous_id);
    set(&event, "event", &name.into());
    set(&event, "properties", &properties.unwrap_or_default());
    event
}

/// The body of `POST /v1/batch`: the events, stamped with `sentAt` now, and the write key.
///
/// The key travels in the body, not in an `Authorization` header, so the request stays a
/// CORS "simple request" (`text/plain`) with no preflight.
pub fn batch_body(events: &[Object], write_key: &str) -> String {
    let sent_at = now_iso();
    let batch = Array::new();
    for event in events {
        set(event, "sentAt", &sent_at);
        batch.push(event);
    }
    let body = Object::new();
    set(&body, "batch", &batch);
    set(&body, "sentAt", &sent_at);
    set(&body, "writeKey", &write_key.into());
    JSON::stringify(&body).map(String::from).unwrap_or_default()
}
