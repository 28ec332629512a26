//! The anonymous id: created once per browser, kept in a first-party cookie with a
//! localStorage copy, so either surviving is enough to recognise a returning visitor.

use wasm_bindgen::JsCast;
use web_sys::HtmlDocument;

/// Name of the cookie and of the localStorage key.
pub const STORAGE_KEY: &str = "cdp_aid";
/// How long the cookie lives: one year, in seconds.
const COOKIE_MAX_AGE: &str = "31536000";

/// A fresh random id (RFC 4122 version 4).
pub fn new_id() -> String {
    web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        // No Web Crypto (very old browsers): fall back to Math.random, unique enough here.
        .unwrap_or_else(|| {
            let r = js_sys::Math::random().to_bits() ^ (js_sys::Date::now() as u64);
            ["r-", &r.to_string()].concat()
        })
}

/// The anonymous id kept for this browser, created and stored if there is none.
pub fn anonymous_id() -> String {
    let id = read_cookie()
        .or_else(read_local)
        .filter(|id| !id.is_empty())
        .unwrap_or_else(new_id);
    write(&id);
    id
}

fn document() -> Option<HtmlDocument> {
    web_sys::window()?.document()?.dyn_into().ok()
}

fn read_cookie() -> Option<String> {
    let cookies = document()?.cookie().ok()?;
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == STORAGE_KEY).then(|| value.to_owned())
    })
}

fn read_local() -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(STORAGE_KEY)
        .ok()?
}

/// Writes both copies; storage that is blocked or full is skipped, never an error.
fn write(id: &str) {
    if let Some(doc) = document() {
        let secure = web_sys::window()
            .and_then(|w| w.location().protocol().ok())
            .is_some_and(|p| p == "https:");
        let cookie = [
            STORAGE_KEY,
            "=",
            id,
            "; Max-Age=",
            COOKIE_MAX_AGE,
            "; Path=/; SameSite=Lax",
            if secure { "; Secure" } else { "" },
        ]
        .concat();
        let _ = doc.set_cookie(&cookie);
    }
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(STORAGE_KEY, id);
    }
}
