//! Sending to the collector: `fetch` with `text/plain` bodies (no CORS preflight) and the
//! Web Locks API that lets one tab at a time send the shared queue.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function post(url, body, keepalive, done) {
  fetch(url, { method: 'POST', body: body, keepalive: keepalive }).then(function (r) {
    var after = r.headers.get('Retry-After'), ms;
    if (after) ms = isNaN(after) ? Date.parse(after) - Date.now() : after * 1000;
    done(r.status, ms);
  }, function () { done(0); });
}
export function with_lock(name, task, after) {
  var ran = false, locks = navigator.locks;
  function run(has) { ran = true; return new Promise(function (resolve) { task(has, resolve); }); }
  var held = locks && locks.request
    ? locks.request(name, { ifAvailable: true }, function (lock) { return lock ? run(true) : null; })
    : run(false);
  return held.then(null, function () {}).then(function () { after(ran); });
}
"#)]
extern "C" {
    fn post(url: &str, body: &str, keepalive: bool, done: &JsValue);
    fn with_lock(name: &str, task: &JsValue, after: &JsValue) -> Promise;
}

/// The collector's answer to one batch.
pub struct Answer {
    /// HTTP status; 0 when the request failed without an answer (offline, refused, CORS).
    pub status: u16,
    /// The `Retry-After` the collector asked for, in milliseconds (NaN when absent).
    pub retry_after_ms: Option<f64>,
}

/// Posts `body` to `url`, then calls `then` with the answer. With `keepalive` the request
/// outlives the page, as long as all keepalive requests in flight stay under 64 KB together.
///
/// Callbacks rather than futures: an executor for futures costs the page kilobytes of Wasm.
pub fn send(url: &str, body: &str, keepalive: bool, then: impl FnOnce(Answer) + 'static) {
    let done = Closure::once_into_js(move |status: f64, retry_after_ms: f64| {
        then(Answer {
            status: status as u16,
            retry_after_ms: Some(retry_after_ms),
        })
    });
    post(url, body, keepalive, &done);
}

/// Runs `task(has_lock, done)` while holding the Web Lock `name` until it calls `done`,
/// unless another tab holds the lock, in which case it does nothing: that tab is sending
/// the shared queue already. Without Web Locks, runs `task(false, done)`. Then calls
/// `after(task_ran)`; the promise resolves after that.
pub fn exclusively(
    name: &str,
    task: impl FnOnce(bool, Function) + 'static,
    after: impl FnOnce(bool) + 'static,
) -> Promise {
    with_lock(
        name,
        &Closure::once_into_js(task),
        &Closure::once_into_js(after),
    )
}
