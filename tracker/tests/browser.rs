//! The tracker in a real browser (headless Chromium, through wasm-bindgen-test): storage,
//! the durable queue, its bound, sessions and consent. These tests send nothing (`persist`
//! writes the queue without sending); delivery to a real collector, its failures and
//! retries are covered end to end in tests/e2e.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // a panic in a test is its failure report

use cdp_tracker::{delivery, identity, outbox, storage, Tracker};
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens on port 9 of loopback: every send fails at once and is kept for retry.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

fn get(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, key| {
        Reflect::get(&v, &key.into()).unwrap_or(JsValue::UNDEFINED)
    })
}

fn text(value: &JsValue, path: &str) -> String {
    get(value, path).as_string().unwrap_or_default()
}

fn config(pairs: &[(&str, JsValue)]) -> Object {
    let config = Object::new();
    Reflect::set(&config, &"writeKey".into(), &"test-key".into()).unwrap();
    Reflect::set(&config, &"endpoint".into(), &DEAD_ENDPOINT.into()).unwrap();
    for (key, value) in pairs {
        Reflect::set(&config, &(*key).into(), value).unwrap();
    }
    config
}

fn clean_slate() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage.clear().unwrap();
    storage::set_cookie(identity::ANONYMOUS_ID, "", 0.0, "");
}

fn queued() -> Vec<JsValue> {
    storage::keys(outbox::PREFIX)
        .iter()
        .map(|k| JSON::parse(&storage::get(k).unwrap()).unwrap())
        .collect()
}

fn props(pairs: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in pairs {
        Reflect::set(&object, &(*key).into(), value).unwrap();
    }
    object
}

#[wasm_bindgen_test]
fn events_are_stored_with_the_segment_fields_before_any_send() {
    clean_slate();
    let tracker = Tracker::new(config(&[]));
    tracker.page(Some("Home".into()), None);
    tracker.track(
        "Product Viewed".into(),
        Some(props(&[("price", 59.into())])),
    );
    tracker.persist();

    let events = queued();
    assert_eq!(
        events.len(),
        2,
        "both events in the durable queue after a failed send"
    );
    let (page, track) = (&events[0], &events[1]);
    assert_eq!(text(page, "type"), "page");
    assert_eq!(text(page, "name"), "Home");
    assert_eq!(text(track, "event"), "Product Viewed");
    assert_eq!(get(track, "properties.price").as_f64(), Some(59.0));
    let href = web_sys::window().unwrap().location().href().unwrap();
    for event in &events {
        assert_eq!(text(event, "messageId").len(), 36, "a UUID");
        assert_eq!(text(event, "anonymousId"), tracker.anonymous_id());
        assert!(text(event, "timestamp").ends_with('Z'));
        assert_eq!(text(event, "context.page.url"), href);
        assert_eq!(text(event, "context.library.name"), "edge-cdp-tracker");
        assert!(get(event, "context.sessionId").as_f64().is_some());
        assert!(
            get(event, "sentAt").is_undefined(),
            "sentAt is set at send time only"
        );
    }
    assert_eq!(
        text(page, "properties.url"),
        href,
        "page fields copied to properties"
    );
    assert_ne!(text(page, "messageId"), text(track, "messageId"));
    assert_eq!(
        get(page, "context.sessionId"),
        get(track, "context.sessionId")
    );
}

#[wasm_bindgen_test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    clean_slate();
    let tracker = Tracker::new(config(&[("maxQueue", 3.into())]));
    for name in ["e1", "e2", "e3", "e4", "e5"] {
        tracker.track(name.into(), None);
    }
    tracker.persist();
    let names: Vec<String> = queued().iter().map(|e| text(e, "event")).collect();
    assert_eq!(names, ["e3", "e4", "e5"]);
    assert_eq!(storage::get(delivery::DROPPED).as_deref(), Some("2"));
}

#[wasm_bindgen_test]
fn anonymous_id_survives_a_reload_from_either_copy() {
    clean_slate();
    let first = Tracker::new(config(&[])).anonymous_id();
    assert_eq!(Tracker::new(config(&[])).anonymous_id(), first);
    assert_eq!(
        storage::cookie(identity::ANONYMOUS_ID).as_deref(),
        Some(first.as_str())
    );

    // Cookie gone (a browser capping script cookies), localStorage kept: same visitor.
    storage::set_cookie(identity::ANONYMOUS_ID, "", 0.0, "");
    assert_eq!(Tracker::new(config(&[])).anonymous_id(), first);
    assert_eq!(
        storage::cookie(identity::ANONYMOUS_ID).as_deref(),
        Some(first.as_str()),
        "cookie written back"
    );

    // localStorage gone, cookie kept: same visitor.
    storage::remove(identity::ANONYMOUS_ID);
    assert_eq!(Tracker::new(config(&[])).anonymous_id(), first);

    clean_slate();
    assert_ne!(Tracker::new(config(&[])).anonymous_id(), first);
}

#[wasm_bindgen_test]
fn identify_keeps_user_and_traits_and_reset_forgets_them() {
    clean_slate();
    let tracker = Tracker::new(config(&[]));
    let anonymous = tracker.anonymous_id();
    tracker.identify(
        Some("user-1".into()),
        Some(props(&[("plan", "pro".into())])),
    );
    tracker.identify(None, Some(props(&[("email", "a@b.c".into())])));
    assert_eq!(tracker.user_id().as_deref(), Some("user-1"));
    let again = Tracker::new(config(&[]));
    assert_eq!(
        again.user_id().as_deref(),
        Some("user-1"),
        "user id survives a reload"
    );
    tracker.track("After Login".into(), None);
    tracker.persist();
    let events = queued();
    let last_identify = &events[1];
    assert_eq!(text(last_identify, "traits.plan"), "pro");
    assert_eq!(text(last_identify, "traits.email"), "a@b.c");
    assert_eq!(text(&events[2], "userId"), "user-1");

    tracker.reset();
    assert_ne!(tracker.anonymous_id(), anonymous);
    assert_eq!(tracker.user_id(), None);
    assert_eq!(storage::get(identity::USER_ID), None);
    assert_eq!(storage::get(identity::TRAITS), None);
}

#[wasm_bindgen_test]
fn with_consent_required_nothing_is_stored_until_granted() {
    clean_slate();
    let tracker = Tracker::new(config(&[("consent", "required".into())]));
    tracker.page(None, None);
    tracker.track("Before Consent".into(), None);
    tracker.persist();
    assert!(queued().is_empty(), "nothing queued");
    assert_eq!(storage::cookie(identity::ANONYMOUS_ID), None, "no cookie");
    assert_eq!(storage::get(identity::ANONYMOUS_ID), None, "no stored id");

    tracker.consent(props(&[
        ("analytics", true.into()),
        ("marketing", false.into()),
    ]));
    tracker.persist();
    let events = queued();
    assert_eq!(events.len(), 2, "held events stored once consent is given");
    assert_eq!(
        get(&events[1], "context.consent.categoryPreferences.analytics"),
        JsValue::TRUE
    );
    assert_eq!(
        get(&events[1], "context.consent.categoryPreferences.marketing"),
        JsValue::FALSE
    );
    assert_eq!(
        storage::cookie(identity::ANONYMOUS_ID).as_deref(),
        Some(tracker.anonymous_id().as_str())
    );

    tracker.consent(props(&[("analytics", false.into())]));
    assert!(queued().is_empty(), "withdrawal empties the queue");
    assert_eq!(
        storage::cookie(identity::ANONYMOUS_ID),
        None,
        "and forgets the visitor"
    );
    tracker.track("After Withdrawal".into(), None);
    tracker.persist();
    assert!(queued().is_empty());
}

#[wasm_bindgen_test]
fn a_stored_choice_applies_on_the_next_page() {
    clean_slate();
    Tracker::new(config(&[("consent", "required".into())]))
        .consent(props(&[("analytics", true.into())]));
    let next_page = Tracker::new(config(&[("consent", "required".into())]));
    next_page.track("Remembered".into(), None);
    next_page.persist();
    assert_eq!(queued().len(), 1);
}

#[wasm_bindgen_test]
fn marked_elements_send_their_event_with_properties() {
    clean_slate();
    let tracker = Tracker::new(config(&[]));
    let document = web_sys::window().unwrap().document().unwrap();
    let button = document.create_element("button").unwrap();
    button
        .set_attribute("data-cdp-event", "Product Added")
        .unwrap();
    button.set_attribute("data-cdp-product-id", "007").unwrap();
    button.set_attribute("data-cdp-price", "59.5").unwrap();
    let inner = document.create_element("span").unwrap();
    button.append_child(&inner).unwrap();
    document.body().unwrap().append_child(&button).unwrap();
    web_sys::HtmlElement::from(JsValue::from(inner)).click();
    tracker.persist();
    // Every tracker on this test page listens; each records the click once.
    let added: Vec<JsValue> = queued()
        .into_iter()
        .filter(|e| text(e, "event") == "Product Added")
        .collect();
    assert!(!added.is_empty());
    assert_eq!(
        text(&added[0], "properties.product_id"),
        "007",
        "ids stay strings"
    );
    assert_eq!(
        get(&added[0], "properties.price").as_f64(),
        Some(59.5),
        "prices become numbers"
    );
    button.remove();
}
