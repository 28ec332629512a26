//! What the page and browser tell about where an event happened (`context`).

use js_sys::{Intl, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::event::{set, LIBRARY_NAME, LIBRARY_VERSION};

/// `context.page`: url, path, title, referrer and search of the current document.
pub fn page() -> Object {
    let page = Object::new();
    let Some(window) = web_sys::window() else {
        return page;
    };
    let location = window.location();
    let text = |r: Result<String, JsValue>| JsValue::from(r.unwrap_or_default());
    set(&page, "url", &text(location.href()));
    set(&page, "path", &text(location.pathname()));
    set(&page, "search", &text(location.search()));
    if let Some(document) = window.document() {
        set(&page, "title", &document.title().into());
        set(&page, "referrer", &document.referrer().into());
    }
    page
}

/// The event `context`: page, user agent, locale, time zone and library.
pub fn context() -> Object {
    let context = Object::new();
    set(&context, "page", &page());
    if let Some(window) = web_sys::window() {
        let navigator = window.navigator();
        set(
            &context,
            "userAgent",
            &navigator.user_agent().unwrap_or_default().into(),
        );
        if let Some(locale) = navigator.language() {
            set(&context, "locale", &locale.into());
        }
    }
    let zone = Reflect::get(
        &Intl::DateTimeFormat::default().resolved_options(),
        &"timeZone".into(),
    )
    .unwrap_or(JsValue::UNDEFINED);
    if zone.is_string() {
        set(&context, "timezone", &zone);
    }
    let library = Object::new();
    set(&library, "name", &LIBRARY_NAME.into());
    set(&library, "version", &LIBRARY_VERSION.into());
    set(&context, "library", &library);
    context
}
