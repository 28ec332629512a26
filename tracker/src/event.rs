//! Segment-spec events as JavaScript objects: captured cheaply when the page calls, and
//! completed (id, time, context) and serialised later, off the page's critical path.

use js_sys::Object;
use wasm_bindgen::JsValue;

use crate::context;

/// The library name every event carries in `context.library`.
pub const LIBRARY_NAME: &str = "edge-cdp-tracker";
/// This tracker's version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sets `object[key] = value`; setting a property on a plain object cannot fail.
pub fn set(object: &Object, key: &str, value: &JsValue) {
    crate::js::set(object, key, value);
}

/// Reads `object[key]`.
pub fn get(object: &JsValue, key: &str) -> JsValue {
    crate::js::get(object, key)
}

/// An ISO 8601 time string for `ms` since the epoch, the form the collector reads.
pub fn iso(ms: f64) -> String {
    crate::js::iso(ms)
}

/// A call as the page made it: what it said, when, and on which page.
pub struct Captured {
    /// The event so far: type, name, properties or traits, identifiers.
    pub event: Object,
    /// When the call was made, in milliseconds since the epoch.
    pub at: f64,
    /// `context.page` at call time (a single-page app may have moved on by send time).
    pub page: Object,
}

/// Records a call of type `kind` with its fields (`event`, `name`, `properties`, `traits`,
/// `groupId`, `previousId`, …), made at `at`, by the given visitor.
pub fn capture(
    kind: &str,
    fields: Object,
    at: f64,
    anonymous_id: &str,
    user_id: Option<&str>,
) -> Captured {
    set(&fields, "type", &kind.into());
    set(&fields, "anonymousId", &anonymous_id.into());
    if let Some(user_id) = user_id {
        if get(&fields, "userId").is_undefined() {
            set(&fields, "userId", &user_id.into());
        }
    }
    Captured {
        event: fields,
        at,
        page: context::page(),
    }
}

/// Completes a captured event and serialises it: `messageId`, `timestamp`, and `context`
/// (the page's fixed context, the page at call time, session and consent).
pub fn complete(
    captured: &Captured,
    fixed: &Object,
    session_id: f64,
    consent: &JsValue,
) -> Option<String> {
    let event = &captured.event;
    set(event, "messageId", &crate::identity::new_id().into());
    set(event, "timestamp", &iso(captured.at).into());
    let context = Object::assign(&Object::new(), fixed);
    set(&context, "page", &captured.page);
    set(&context, "sessionId", &JsValue::from_f64(session_id));
    if !consent.is_undefined() {
        let wrapper = Object::new();
        set(&wrapper, "categoryPreferences", consent);
        set(&context, "consent", &wrapper);
    }
    set(event, "context", &context);
    if get(event, "type").as_string().as_deref() == Some("page") {
        // analytics.js sends the page fields as the page event's properties too.
        let props = Object::assign(&Object::new(), &captured.page);
        let given = get(event, "properties");
        if given.is_object() {
            Object::assign(&props, &given.into());
        }
        set(event, "properties", &props);
    }
    crate::js::stringify(event)
}
