//! Sending to the collector: `fetch` with `text/plain` bodies (no CORS preflight) and the
//! Web Locks API that lets one tab at a time send the shared queue.
//!
//! Callbacks rather than Rust futures: an async runtime in the page would cost more bytes
//! than everything it would make shorter here.

use js_sys::Function;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function post(url, body, keepalive, done) {
  fetch(url, { method: 'POST', body: body, keepalive: keepalive }).then(function (r) {
    var after = r.headers.get('Retry-After'), ms = null;
    if (after) ms = isNaN(after) ? Date.parse(after) - Date.now() : after * 1000;
    done(r.status, ms);
  }, function () { done(0, null); });
}
export function with_lock(name, task, after) {
  var locks = navigator.locks;
  var run = function (has) { return new Promise(function (done) { task(has, done); }); };
  var held = locks && locks.request
    ? locks.request(name, { ifAvailable: true }, function (lock) { return lock ? run(true) : 0; })
    : run(false);
  held.then(function (ran) { after(ran === 1); }, function () { after(false); });
}
"#)]
extern "C" {
    fn post(url: &str, body: &str, keepalive: bool, done: &JsValue);
    fn with_lock(name: &str, task: &JsValue, after: &JsValue);
}

/// What a task under the lock calls when it is done, releasing the lock.
pub type Finished = Box<dyn FnOnce()>;

/// The collector's answer to one batch.
pub struct Answer {
    /// HTTP status; 0 when the request failed without an answer (offline, refused, CORS).
    pub status: u16,
    /// The `Retry-After` the collector asked for, in milliseconds.
    pub retry_after_ms: Option<f64>,
}

/// Posts `body` to `url`, then calls `done` with the answer. With `keepalive` the request
/// outlives the page, as long as all keepalive requests in flight stay under 64 KB together.
pub fn send(url: &str, body: &str, keepalive: bool, done: Box<dyn FnOnce(Answer)>) {
    let done = Closure::once_into_js(move |status: f64, retry_after_ms: Option<f64>| {
        done(Answer {
            status: status as u16,
            retry_after_ms,
        })
    });
    post(url, body, keepalive, &done);
}

/// Runs `task(has_lock, finished)` while holding the Web Lock `name` until it calls
/// `finished`, unless another tab holds the lock, in which case it does not run: that tab
/// is sending the shared queue already. Without Web Locks, runs `task(false, finished)`.
/// Then calls `after(ran)`.
pub fn exclusively(
    name: &str,
    task: Box<dyn FnOnce(bool, Finished)>,
    after: Box<dyn FnOnce(bool)>,
) {
    let task = Closure::once_into_js(move |has_lock: bool, finished: Function| {
        task(
            has_lock,
            Box::new(move || {
                let _ = finished.call1(&JsValue::NULL, &JsValue::from(1));
            }),
        )
    });
    with_lock(name, &task, &Closure::once_into_js(after));
}
