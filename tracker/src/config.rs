//! The site's settings, read once from the object the loader or the npm package passes.

use wasm_bindgen::JsValue;

use crate::consent;

/// Tracker settings; every field has a default but the write key.
#[derive(Debug, Clone)]
pub struct Config {
    /// The source's write key (a string, or `undefined`).
    pub write_key: JsValue,
    /// Collector origin (or origin and path prefix), without the trailing `/v1/batch`.
    pub endpoint: String,
    /// Send as soon as this many events are queued.
    pub flush_at: usize,
    /// Otherwise send this long after the first queued event, in milliseconds.
    pub flush_interval_ms: f64,
    /// Most events kept in the browser's queue; the oldest go first beyond it.
    pub max_queue: usize,
    /// Domain of the anonymous-id cookie (e.g. `example.com` to share it with subdomains).
    pub cookie_domain: JsValue,
    /// Lifetime of the anonymous-id cookie, in days.
    pub cookie_days: f64,
    /// Consent rules.
    pub consent: consent::Policy,
    /// Whether a change of `#fragment` alone is a new page (hash-routed apps).
    pub track_hash: bool,
}

fn field(config: &JsValue, name: &str) -> JsValue {
    crate::js::get(config, name)
}

fn text(config: &JsValue, name: &str, default: &str) -> String {
    field(config, name)
        .as_string()
        .unwrap_or_else(|| default.to_owned())
}

fn number(config: &JsValue, name: &str, default: f64) -> f64 {
    // Attributes of a script tag arrive as strings.
    let n = crate::js::number(&field(config, name));
    if n.is_finite() && n >= 0.0 {
        n
    } else {
        default
    }
}

fn flag(config: &JsValue, name: &str, default: bool) -> bool {
    let value = field(config, name);
    match value.as_bool() {
        Some(b) => b,
        None => match value.as_string().as_deref() {
            Some("false" | "0" | "no") => false,
            Some(_) => true,
            None => default,
        },
    }
}

impl Config {
    /// Reads settings from `{ writeKey, endpoint, flushAt, flushInterval, maxQueue,
    /// cookieDomain, cookieDays, consent, consentCategory, honorGpc, honorDnt, trackHash }`.
    pub fn read(config: &JsValue) -> Config {
        let consent_mode = field(config, "consent");
        let required = consent_mode.as_bool().unwrap_or(false)
            || consent_mode.as_string().as_deref() == Some("required");
        Config {
            write_key: field(config, "writeKey"),
            endpoint: text(config, "endpoint", "")
                .trim_end_matches('/')
                .to_owned(),
            flush_at: number(config, "flushAt", 20.0).max(1.0) as usize,
            flush_interval_ms: number(config, "flushInterval", 1_000.0),
            max_queue: number(config, "maxQueue", 1_000.0).max(1.0) as usize,
            cookie_domain: field(config, "cookieDomain"),
            cookie_days: number(config, "cookieDays", 365.0),
            consent: consent::Policy {
                required,
                category: text(config, "consentCategory", "analytics"),
                honor_gpc: flag(config, "honorGpc", true),
                honor_dnt: flag(config, "honorDnt", false),
            },
            track_hash: flag(config, "trackHash", false),
        }
    }
}
