//! Who the visitor is: the anonymous id (a first-party cookie with a localStorage copy, so
//! either surviving is enough to recognise a returning visitor), the user id once
//! identified, and the user's traits.

use js_sys::Object;
use wasm_bindgen::JsValue;

use crate::storage;

/// Name of the anonymous-id cookie and localStorage key.
pub const ANONYMOUS_ID: &str = "cdp_aid";
/// localStorage key of the user id.
pub const USER_ID: &str = "cdp_uid";
/// localStorage key of the user's traits (JSON).
pub const TRAITS: &str = "cdp_traits";

/// A fresh random id (RFC 4122 version 4).
pub fn new_id() -> String {
    // Without Web Crypto (very old browsers) Math.random is unique enough for an id.
    crate::js::new_id()
}

/// What is remembered about the visitor.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The anonymous id.
    pub anonymous_id: String,
    /// The user id, once identified.
    pub user_id: Option<String>,
    /// The user's traits, as given to `identify`.
    pub traits: Object,
}

impl Identity {
    /// Reads what storage remembers; a new anonymous id if there is none (not saved yet:
    /// with consent pending nothing may be written).
    pub fn load() -> Identity {
        let anonymous_id = storage::cookie(ANONYMOUS_ID)
            .or_else(|| storage::get(ANONYMOUS_ID))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(new_id);
        let traits = storage::get(TRAITS)
            .map(|t| crate::js::parse(&t))
            .filter(JsValue::is_object)
            .map(Object::from)
            .unwrap_or_default();
        Identity {
            anonymous_id,
            user_id: storage::get(USER_ID).filter(|id| !id.is_empty()),
            traits,
        }
    }

    /// Writes everything to storage; the cookie lives `cookie_days` on `cookie_domain`.
    pub fn save(&self, cookie_days: f64, cookie_domain: &str) {
        storage::set_cookie(
            ANONYMOUS_ID,
            &self.anonymous_id,
            cookie_days * 86_400.0,
            cookie_domain,
        );
        storage::set(ANONYMOUS_ID, &self.anonymous_id);
        match &self.user_id {
            Some(id) => storage::set(USER_ID, id),
            None => {
                storage::remove(USER_ID);
                true
            }
        };
        match crate::js::stringify(&self.traits) {
            Some(t) if t != "{}" => storage::set(TRAITS, &t),
            _ => {
                storage::remove(TRAITS);
                true
            }
        };
    }

    /// Removes every stored trace of the visitor (consent withdrawn).
    pub fn erase(cookie_domain: &str) {
        storage::set_cookie(ANONYMOUS_ID, "", 0.0, cookie_domain);
        for key in [ANONYMOUS_ID, USER_ID, TRAITS] {
            storage::remove(key);
        }
    }
}
