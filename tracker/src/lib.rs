//! The browser tracker: Segment-compatible calls in, durable batches of events out.
//!
//! The rules are plain Rust, tested natively: [`backoff`] (when to retry), [`consent`]
//! (whether to collect), [`outbox`] (queue keys, batching, eviction), [`route`] (which
//! URL changes are new pages), [`session`]. Each browser capability is one module hiding
//! its JavaScript: [`storage`], [`transport`], [`lifecycle`], [`navigation`], [`capture`],
//! [`context`]. [`delivery`] ties them together: a call is captured at once (microseconds),
//! stored in the durable queue when the page is idle, and sent in batches; what is queued
//! goes out with `keepalive` when the page is hidden or closed.
//!
//! What keeps the page's Wasm small: the page's values (events, properties, ids, stored
//! JSON) stay JavaScript values that the Wasm only passes along, so it carries no JSON code
//! and copies no strings but the few its rules read (queue keys, URLs); and the browser
//! reports everything through one callback (see [`delivery`]), not a closure per timer or
//! request.

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

use wasm_bindgen::prelude::*;

use crate::delivery::Shared;

/// The tracker a page talks to, through the loader's `cdp` object or the npm package.
///
/// Arguments are JavaScript values (the page-facing API in `tracker/js/api.js` checks
/// their types): names, ids and properties go into events as they are.
#[wasm_bindgen]
pub struct Tracker {
    shared: Shared,
}

#[wasm_bindgen]
impl Tracker {
    /// Starts a tracker with the site's settings (see `config::Config::read`) and starts
    /// listening for route changes, marked elements, page hiding and reconnection.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Tracker {
        Tracker {
            shared: delivery::start(config::Config::read(&config)),
        }
    }

    /// The anonymous id of this browser.
    #[wasm_bindgen(getter, js_name = anonymousId)]
    pub fn anonymous_id(&self) -> JsValue {
        self.shared.borrow().identity.anonymous_id.clone()
    }

    /// The user id, once identified (else `undefined`).
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> JsValue {
        self.shared.borrow().identity.user_id.clone()
    }

    /// Records a page view (`name` optional); page fields come from the document.
    pub fn page(&self, name: JsValue, properties: JsValue) {
        delivery::note_page(&self.shared);
        let fields = js::fields("name", &name, "properties", &properties);
        delivery::record(&self.shared, "page", fields);
    }

    /// Records a user action named `event` (e-commerce: "Order Completed", …).
    pub fn track(&self, event: JsValue, properties: JsValue) {
        let properties = if properties.is_object() {
            properties
        } else {
            js::object()
        };
        let fields = js::fields("event", &event, "properties", &properties);
        delivery::record(&self.shared, "track", fields);
    }

    /// Says who the user is: `userId` (optional) and traits, kept for later events.
    pub fn identify(&self, user_id: JsValue, traits: JsValue) {
        let traits = delivery::identify(&self.shared, user_id, traits);
        let fields = js::fields("traits", &traits, "", &JsValue::UNDEFINED);
        delivery::record(&self.shared, "identify", fields);
    }

    /// Links `previous_id` (default: the current user or anonymous id) to `user_id`.
    pub fn alias(&self, user_id: JsValue, previous_id: JsValue) {
        let previous = delivery::alias(&self.shared, user_id.clone(), previous_id);
        let fields = js::fields("userId", &user_id, "previousId", &previous);
        delivery::record(&self.shared, "alias", fields);
    }

    /// Records that the user belongs to group `group_id` (a company, an account).
    pub fn group(&self, group_id: JsValue, traits: JsValue) {
        let fields = js::fields("groupId", &group_id, "traits", &traits);
        delivery::record(&self.shared, "group", fields);
    }

    /// Logs out: a new anonymous id, no user id, no traits, a new session.
    pub fn reset(&self) {
        delivery::reset(&self.shared);
    }

    /// Records the visitor's consent choices, e.g. `{analytics: true, marketing: false}`;
    /// takes effect at once and travels in every later event's `context.consent`.
    pub fn consent(&self, preferences: JsValue) {
        delivery::consent(&self.shared, preferences);
    }

    /// Writes what was recorded to the browser's durable queue now (it is otherwise written
    /// at idle time), without sending it.
    pub fn persist(&self) {
        delivery::store_now(&self.shared);
    }

    /// Stores and sends what is queued now; returns a promise that resolves when that
    /// attempt is over.
    pub fn flush(&self) -> JsValue {
        delivery::flush_now(&self.shared)
    }

    /// Stamps the next calls with `at` (ms) instead of now, and with `kept`'s page and
    /// message id when it is a call the loader kept from a page since closed (`{p, i}`): the
    /// loader replays calls made before the tracker loaded. `undefined` clears each.
    #[wasm_bindgen(js_name = callTime)]
    pub fn call_time(&self, at: Option<f64>, kept: JsValue) {
        let mut state = self.shared.borrow_mut();
        state.call_time = at;
        state.call_kept = kept;
    }
}
