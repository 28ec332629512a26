//! Segment-spec events as JavaScript objects: captured cheaply when the page calls, and
//! completed (id, time, context) and serialised later, off the page's critical path, by the
//! browser's own JSON.

use wasm_bindgen::prelude::*;

use crate::context;

/// The library name every event carries in `context.library`.
pub const LIBRARY_NAME: &str = "edge-cdp-tracker";
/// This tracker's version.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

#[wasm_bindgen(inline_js = r#"
export function restamp(e, anonymousId) { e.anonymousId = anonymousId; }
export function stamp(e, type, anonymousId, userId) {
  e.type = type;
  e.anonymousId = anonymousId;
  if (userId != null && e.userId === undefined) e.userId = userId;
}
export function complete(e, id, at, page, fixed, session, consent) {
  var c = Object.assign({}, fixed);
  // A call kept by the loader from a closed page: its page, and its id, the same in every
  // tab that takes it. Not this page's campaign: the collector reads that page's from its URL.
  if (page.i) { id = page.i; page = page.p; delete c.campaign; }
  e.messageId = id;
  e.timestamp = new Date(isFinite(at) ? at : Date.now()).toISOString();
  c.page = page;
  c.sessionId = session;
  if (consent !== undefined) c.consent = { categoryPreferences: consent };
  e.context = c;
  // analytics.js sends the page fields as the page event's properties too.
  if (e.type === 'page') e.properties = Object.assign({}, page, e.properties);
  try { return JSON.stringify(e); } catch (x) {}
}
"#)]
extern "C" {
    fn stamp(event: &JsValue, kind: &str, anonymous_id: &JsValue, user_id: &JsValue);
    fn restamp(event: &JsValue, anonymous_id: &JsValue);
    fn complete(
        event: &JsValue,
        message_id: &JsValue,
        at: f64,
        page: &JsValue,
        fixed: &JsValue,
        session_id: f64,
        consent: &JsValue,
    ) -> JsValue;
}

/// A call as the page made it: what it said, when, and on which page.
pub struct Captured {
    /// The event so far: type, name, properties or traits, identifiers.
    pub event: JsValue,
    /// When the call was made, in milliseconds since the epoch.
    pub at: f64,
    /// `context.page` at call time (a single-page app may have moved on by send time), or
    /// the loader's record of a call kept from a page since closed, with its page and id.
    pub page: JsValue,
}

/// Records a call of type `kind` with its fields (`event`, `name`, `properties`, `traits`,
/// `groupId`, `previousId`, …), made at `at` (on this page, or as `kept` says: see
/// [`context::page`]), by the given visitor (`user_id` may be `undefined`; a `userId` among
/// the fields wins).
pub fn capture(
    kind: &str,
    fields: JsValue,
    at: f64,
    kept: &JsValue,
    anonymous_id: &JsValue,
    user_id: &JsValue,
) -> Captured {
    stamp(&fields, kind, anonymous_id, user_id);
    Captured {
        event: fields,
        at,
        page: context::page(kept),
    }
}

impl Captured {
    /// Gives the event another anonymous id (the visitor's, found stored by another tab).
    pub fn reassign(&self, anonymous_id: &JsValue) {
        restamp(&self.event, anonymous_id);
    }

    /// The event completed with a new `messageId` (or the kept one), its `timestamp` and `context` (the
    /// page's fixed context, the page at call time, session and consent), as JSON; `None`
    /// when it cannot be serialised.
    pub fn complete(&self, fixed: &JsValue, session_id: f64, consent: &JsValue) -> Option<JsValue> {
        let json = complete(
            &self.event,
            &crate::js::new_id(),
            self.at,
            &self.page,
            fixed,
            session_id,
            consent,
        );
        json.is_string().then_some(json)
    }
}
