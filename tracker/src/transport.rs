//! Sending to the collector: `fetch` with `text/plain` bodies (no CORS preflight) and the
//! Web Locks API that lets one tab at a time send the shared queue.

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export function post(url, body, keepalive) {
  return fetch(url, { method: 'POST', body: body, keepalive: keepalive }).then(function (r) {
    var after = r.headers.get('Retry-After'), ms = null;
    if (after) ms = isNaN(after) ? Date.parse(after) - Date.now() : after * 1000;
    return [r.status, ms];
  }, function () { return [0, null]; });
}
export function with_lock(name, task) {
  var locks = navigator.locks;
  if (!locks || !locks.request) return task(false);
  return locks.request(name, { ifAvailable: true }, function (lock) { return lock ? task(true) : null; });
}
"#)]
extern "C" {
    fn post(url: &str, body: &str, keepalive: bool) -> Promise;
    fn with_lock(name: &str, task: &Function) -> Promise;
}

/// The collector's answer to one batch.
pub struct Answer {
    /// HTTP status; 0 when the request failed without an answer (offline, refused, CORS).
    pub status: u16,
    /// The `Retry-After` the collector asked for, in milliseconds.
    pub retry_after_ms: Option<f64>,
}

/// Posts `body` to `url`. With `keepalive` the request outlives the page, as long as all
/// keepalive requests in flight stay under 64 KB together.
pub async fn send(url: &str, body: &str, keepalive: bool) -> Answer {
    let answer = JsFuture::from(post(url, body, keepalive))
        .await
        .map(|v| Array::from(&v))
        .unwrap_or_default();
    Answer {
        status: answer.get(0).as_f64().unwrap_or(0.0) as u16,
        retry_after_ms: answer.get(1).as_f64(),
    }
}

/// Runs `task(has_lock)` (a function returning a promise) while holding the Web Lock
/// `name`, unless another tab holds it, in which case it does nothing: that tab is
/// sending the shared queue already. Without Web Locks, runs `task(false)`.
pub fn exclusively(name: &str, task: &Function) -> Promise {
    with_lock(name, task)
}
