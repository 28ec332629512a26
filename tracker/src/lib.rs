//! The browser tracker: Segment-compatible calls in, durable batches of events out.
//!
//! The rules are plain Rust, tested natively: [`backoff`] (when to retry), [`consent`]
//! (whether to collect), [`outbox`] (queue keys, batching, eviction), [`route`] (which
//! URL changes are new pages), [`session`]. Each browser capability is one module hiding
//! its JavaScript: [`storage`], [`transport`], [`lifecycle`], [`navigation`], [`capture`],
//! [`context`]. [`delivery`] ties them together: a call is captured at once (microseconds),
//! stored in the durable queue when the page is idle, and sent in batches; what is queued
//! goes out with `keepalive` when the page is hidden or closed.

pub mod backoff;
pub mod capture;
pub mod config;
pub mod consent;
pub mod context;
pub mod delivery;
pub mod event;
pub mod identity;
pub mod js;
pub mod lifecycle;
pub mod navigation;
pub mod outbox;
pub mod route;
pub mod session;
pub mod storage;
pub mod transport;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
#[allow(unsafe_code)]
// SAFETY: a page's Wasm tracker runs on one thread, which `AssumeSingleThreaded` requires.
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;

use crate::delivery::{Shared, State};
use crate::event::set;

/// The tracker a page talks to, through the loader's `cdp` object or the npm package.
#[wasm_bindgen]
pub struct Tracker {
    shared: Shared,
}

fn fields(pairs: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in pairs {
        if !value.is_undefined() && !value.is_null() {
            set(&object, key, value);
        }
    }
    object
}

fn opt_object(value: Option<Object>) -> JsValue {
    value.map(JsValue::from).unwrap_or(JsValue::UNDEFINED)
}

#[wasm_bindgen]
impl Tracker {
    /// Starts a tracker with the site's settings (see `config::Config::read`) and starts
    /// listening for route changes, marked elements, page hiding and reconnection.
    #[wasm_bindgen(constructor)]
    pub fn new(config: Object) -> Tracker {
        let shared = Rc::new(RefCell::new(State::new(config::Config::read(&config))));
        delivery::listen(&shared);
        Tracker { shared }
    }

    /// The anonymous id of this browser.
    #[wasm_bindgen(getter, js_name = anonymousId)]
    pub fn anonymous_id(&self) -> String {
        self.shared.borrow().identity.anonymous_id.clone()
    }

    /// The user id, once identified.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> Option<String> {
        self.shared.borrow().identity.user_id.clone()
    }

    /// Records a page view (`name` optional); page fields come from the document.
    pub fn page(&self, name: Option<String>, properties: Option<Object>) {
        delivery::note_page(&self.shared);
        let name = name.map(JsValue::from).unwrap_or(JsValue::UNDEFINED);
        delivery::record(
            &self.shared,
            "page",
            fields(&[("name", name), ("properties", opt_object(properties))]),
        );
    }

    /// Records a user action named `event` (e-commerce: "Order Completed", …).
    pub fn track(&self, event: String, properties: Option<Object>) {
        let props = properties.unwrap_or_default();
        delivery::record(
            &self.shared,
            "track",
            fields(&[("event", event.into()), ("properties", props.into())]),
        );
    }

    /// Says who the user is: `userId` (optional) and traits, kept for later events.
    pub fn identify(&self, user_id: Option<String>, traits: Option<Object>) {
        let traits = delivery::identify(&self.shared, user_id.filter(|id| !id.is_empty()), traits);
        delivery::record(
            &self.shared,
            "identify",
            fields(&[("traits", traits.into())]),
        );
    }

    /// Links `previous_id` (default: the current user or anonymous id) to `user_id`.
    pub fn alias(&self, user_id: String, previous_id: Option<String>) {
        let previous = delivery::alias(&self.shared, &user_id, previous_id);
        delivery::record(
            &self.shared,
            "alias",
            fields(&[("userId", user_id.into()), ("previousId", previous.into())]),
        );
    }

    /// Records that the user belongs to group `group_id` (a company, an account).
    pub fn group(&self, group_id: String, traits: Option<Object>) {
        delivery::record(
            &self.shared,
            "group",
            fields(&[("groupId", group_id.into()), ("traits", opt_object(traits))]),
        );
    }

    /// Logs out: a new anonymous id, no user id, no traits, a new session.
    pub fn reset(&self) {
        delivery::reset(&self.shared);
    }

    /// Records the visitor's consent choices, e.g. `{analytics: true, marketing: false}`;
    /// takes effect at once and travels in every later event's `context.consent`.
    pub fn consent(&self, preferences: Object) {
        delivery::consent(&self.shared, preferences);
    }

    /// Writes what was recorded to the browser's durable queue now (it is otherwise written
    /// at idle time), without sending it.
    pub fn persist(&self) {
        delivery::store_now(&self.shared);
    }

    /// Stores and sends what is queued now; resolves when that attempt is over.
    pub fn flush(&self) -> Promise {
        delivery::flush_now(&self.shared)
    }

    /// Stamps the next calls with `at` (ms) instead of now: the loader replays calls made
    /// before the tracker loaded with the time they were made. `undefined` clears it.
    #[wasm_bindgen(js_name = callTime)]
    pub fn call_time(&self, at: Option<f64>) {
        self.shared.borrow_mut().call_time = at;
    }
}
