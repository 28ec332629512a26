//! Who the visitor is: the anonymous id (a first-party cookie with a localStorage copy, so
//! either surviving is enough to recognise a returning visitor), the user id once
//! identified, and the user's traits.

use wasm_bindgen::JsValue;

use crate::storage;

/// Name of the anonymous-id cookie and localStorage key.
pub const ANONYMOUS_ID: &str = "cdp_aid";
/// localStorage key of the user id.
pub const USER_ID: &str = "cdp_uid";
/// localStorage key of the user's traits (JSON).
pub const TRAITS: &str = "cdp_traits";

/// A fresh random id (a version 4 UUID where the browser has Web Crypto).
pub fn new_id() -> JsValue {
    crate::js::new_id()
}

/// Who the visitor is, as JavaScript values (ids are strings, traits an object).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The browser's anonymous id.
    pub anonymous_id: JsValue,
    /// The user id, once identified; `undefined` before.
    pub user_id: JsValue,
    /// Traits from `identify` calls, merged.
    pub traits: JsValue,
}

/// A string value that is not empty, or `None`.
fn present(value: JsValue) -> Option<JsValue> {
    value.is_truthy().then_some(value)
}

/// The anonymous id stored by this page or another of the site, from either copy.
pub fn stored_anonymous_id() -> Option<JsValue> {
    present(storage::cookie(ANONYMOUS_ID)).or_else(|| present(storage::get(ANONYMOUS_ID)))
}

impl Identity {
    /// A new anonymous visitor: a new anonymous id, no user id, no traits.
    pub fn fresh() -> Identity {
        Identity {
            anonymous_id: new_id(),
            user_id: JsValue::UNDEFINED,
            traits: crate::js::object(),
        }
    }

    /// The identity stored by an earlier page, or a new anonymous visitor.
    pub fn load() -> Identity {
        let anonymous_id = stored_anonymous_id().unwrap_or_else(new_id);
        let traits = crate::js::parse(&storage::get(TRAITS));
        Identity {
            anonymous_id,
            user_id: present(storage::get(USER_ID)).unwrap_or(JsValue::UNDEFINED),
            traits: if traits.is_object() {
                traits
            } else {
                crate::js::object()
            },
        }
    }

    /// Stores the identity: the anonymous id in a first-party cookie and localStorage,
    /// the user id and traits in localStorage.
    pub fn save(&self, cookie_days: f64, cookie_domain: &JsValue) {
        storage::set_cookie(
            ANONYMOUS_ID,
            &self.anonymous_id,
            cookie_days * 86_400.0,
            cookie_domain,
        );
        storage::set(ANONYMOUS_ID, &self.anonymous_id);
        if self.user_id.is_truthy() {
            storage::set(USER_ID, &self.user_id);
        } else {
            storage::remove(USER_ID);
        }
        let traits = crate::js::stringify(&self.traits);
        if traits.as_string().is_some_and(|t| t != "{}") {
            storage::set(TRAITS, &traits);
        } else {
            storage::remove(TRAITS);
        }
    }

    /// Forgets the visitor's cookie (its stored copy, user id and traits go with the rest of
    /// the tracker's storage: `storage::forget`).
    pub fn erase(cookie_domain: &JsValue) {
        storage::set_cookie(ANONYMOUS_ID, &JsValue::from(""), 0.0, cookie_domain);
    }
}
