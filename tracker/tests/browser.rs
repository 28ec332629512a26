//! The tracker in a real browser (headless Chromium, through wasm-bindgen-test).
#![allow(clippy::unwrap_used)] // a panic in a test is its failure report

use cdp_tracker::{event, identity, Tracker};
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::HtmlDocument;

wasm_bindgen_test_configure!(run_in_browser);

fn get(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, key| {
        Reflect::get(&v, &key.into()).unwrap_or(JsValue::UNDEFINED)
    })
}

fn text(value: &JsValue, path: &str) -> String {
    get(value, path).as_string().unwrap_or_default()
}

fn html_document() -> HtmlDocument {
    web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .dyn_into()
        .unwrap()
}

fn forget_visitor() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage.remove_item(identity::STORAGE_KEY).unwrap();
    html_document()
        .set_cookie(&format!("{}=; Max-Age=0; Path=/", identity::STORAGE_KEY))
        .unwrap();
}

#[wasm_bindgen_test]
fn page_event_carries_the_segment_fields() {
    let event: JsValue = event::page("anon-1", Some("Home"), None).into();
    assert_eq!(text(&event, "type"), "page");
    assert_eq!(text(&event, "name"), "Home");
    assert_eq!(text(&event, "anonymousId"), "anon-1");
    assert_eq!(text(&event, "messageId").len(), 36, "a UUID");
    assert!(text(&event, "timestamp").ends_with('Z'));
    let href = web_sys::window().unwrap().location().href().unwrap();
    assert_eq!(text(&event, "context.page.url"), href);
    assert_eq!(text(&event, "properties.url"), href);
    assert_eq!(text(&event, "context.library.name"), event::LIBRARY_NAME);
    assert!(!text(&event, "context.userAgent").is_empty());
    assert!(!text(&event, "context.timezone").is_empty());
}

#[wasm_bindgen_test]
fn every_event_gets_its_own_message_id() {
    let a = text(&event::track("anon-1", "A", None).into(), "messageId");
    let b = text(&event::track("anon-1", "A", None).into(), "messageId");
    assert_ne!(a, b);
}

#[wasm_bindgen_test]
fn track_keeps_the_given_properties() {
    let props = Object::new();
    Reflect::set(&props, &"price".into(), &59.into()).unwrap();
    let event: JsValue = event::track("anon-1", "Product Viewed", Some(props)).into();
    assert_eq!(text(&event, "event"), "Product Viewed");
    assert_eq!(get(&event, "properties.price").as_f64(), Some(59.0));
}

#[wasm_bindgen_test]
fn batch_body_stamps_sent_at_and_write_key() {
    let body = event::batch_body(&[event::page("anon-1", None, None)], "key-1");
    let parsed = JSON::parse(&body).unwrap();
    assert_eq!(text(&parsed, "writeKey"), "key-1");
    let first = get(&parsed, "batch.0");
    assert_eq!(text(&first, "sentAt"), text(&parsed, "sentAt"));
    assert_eq!(text(&first, "type"), "page");
}

#[wasm_bindgen_test]
fn anonymous_id_survives_a_reload_from_either_copy() {
    forget_visitor();
    let first = Tracker::new("k".into(), "http://127.0.0.1:9".into()).anonymous_id();
    assert_eq!(Tracker::new("k".into(), "".into()).anonymous_id(), first);
    assert!(
        html_document().cookie().unwrap().contains(&first),
        "cookie written"
    );

    // Cookie cleared, localStorage kept: same visitor, and the cookie is written back.
    html_document()
        .set_cookie(&format!("{}=; Max-Age=0; Path=/", identity::STORAGE_KEY))
        .unwrap();
    assert_eq!(Tracker::new("k".into(), "".into()).anonymous_id(), first);
    assert!(html_document().cookie().unwrap().contains(&first));

    forget_visitor();
    assert_ne!(Tracker::new("k".into(), "".into()).anonymous_id(), first);
}

#[wasm_bindgen_test]
async fn an_unreachable_collector_rejects_the_promise_without_a_panic() {
    // Port 9 (discard) on loopback: nothing listens, so fetch fails at once.
    let tracker = Tracker::new("k".into(), "http://127.0.0.1:9".into());
    assert!(JsFuture::from(tracker.page(None, None)).await.is_err());
}
