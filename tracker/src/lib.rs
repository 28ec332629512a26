//! The browser tracker: Segment-compatible calls in, batches of events out.
//!
//! One module per browser capability, each hiding its JavaScript: [`identity`] keeps the
//! anonymous id in first-party storage, [`context`] reads the page, [`transport`] sends.
//! [`event`] builds events as plain JavaScript objects so the browser's own JSON
//! serialises them and no serde code ships to the page.

mod context;
pub mod event;
pub mod identity;
mod transport;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;

/// The tracker a page talks to, through the loader's `cdp` object.
#[wasm_bindgen]
pub struct Tracker {
    write_key: String,
    endpoint: String,
    anonymous_id: String,
}

#[wasm_bindgen]
impl Tracker {
    /// Starts a tracker that sends to `endpoint` (the collector's origin) with `write_key`.
    #[wasm_bindgen(constructor)]
    pub fn new(write_key: String, endpoint: String) -> Tracker {
        Tracker {
            write_key,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            anonymous_id: identity::anonymous_id(),
        }
    }

    /// The anonymous id kept for this browser.
    #[wasm_bindgen(getter, js_name = anonymousId)]
    pub fn anonymous_id(&self) -> String {
        self.anonymous_id.clone()
    }

    /// Records a page view; resolves when the collector has acknowledged it.
    pub fn page(&self, name: Option<String>, properties: Option<Object>) -> Promise {
        let event = event::page(&self.anonymous_id, name.as_deref(), properties);
        self.send(event)
    }

    /// Records a named user action; resolves when the collector has acknowledged it.
    pub fn track(&self, name: String, properties: Option<Object>) -> Promise {
        let event = event::track(&self.anonymous_id, &name, properties);
        self.send(event)
    }

    fn send(&self, event: Object) -> Promise {
        let url = [self.endpoint.as_str(), "/v1/batch"].concat();
        let body = event::batch_body(&[event], &self.write_key);
        wasm_bindgen_futures::future_to_promise(transport::post(url, body))
    }
}
