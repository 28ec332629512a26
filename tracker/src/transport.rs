//! Sending to the collector: batch bodies, `fetch` with `text/plain` bodies (no CORS
//! preflight) and `keepalive`, and the Web Locks API that lets one tab at a time send the
//! shared queue. Answers come back through the tracker's one callback (see
//! [`crate::delivery`]): no closure per request, and no executor for futures, which would
//! cost the page kilobytes of Wasm.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function batch_body(events, writeKey, dropped) {
  var at = new Date().toISOString(), stamp = ',"sentAt":"' + at + '"}';
  // Each stored event is a JSON object: its closing brace gives way to its sentAt. An entry
  // that is not (written by other code under our prefix) is left out: it would spoil the batch.
  var batch = events.filter(function (e) {
    try { return JSON.parse(e).constructor === Object; } catch (x) { return false; }
  }).map(function (e) { return e.slice(0, e.lastIndexOf('}')) + stamp; });
  return '{"batch":[' + batch + '],"sentAt":"' + at + '","writeKey":' + JSON.stringify(writeKey || '') +
    (dropped > 0 ? ',"dropped":' + dropped : '') + '}';
}
export function post(f, kind, id, url, body, keepalive) {
  var timeout = self.AbortSignal && AbortSignal.timeout && AbortSignal.timeout(60000);
  fetch(url, { method: 'POST', body: body, keepalive: keepalive, signal: timeout }).then(function (r) {
    var after = r.headers.get('Retry-After'), ms;
    if (after) ms = isNaN(after) ? Date.parse(after) - Date.now() : after * 1000;
    // The browser frees a keepalive request's share of its 64 KB only once the response
    // is read: the answer is reported after that.
    return r.text().then(null, function () {}).then(function () { f(kind, id, r.status, ms); });
  }, function () { f(kind, id, 0); });
}
var release = function () {};
export function with_lock(f, locked, busy, name) {
  var locks = navigator.locks, ran = false;
  function run(has) {
    ran = true;
    return new Promise(function (resolve) { release = resolve; f(locked, has); });
  }
  var held = locks && locks.request
    ? locks.request(name, { ifAvailable: true }, function (lock) { if (lock) return run(1); f(busy); })
    : Promise.resolve(0).then(run);
  // A lock request refused (an opaque origin, say) sends without the lock.
  return held.then(null, function () { if (!ran) return run(0); });
}
export function unlock() { release(); }
"#)]
extern "C" {
    fn batch_body(events: &JsValue, write_key: &JsValue, dropped: u32) -> JsValue;
    fn post(f: &JsValue, kind: u32, id: u32, url: &str, body: &JsValue, keepalive: bool);
    fn with_lock(f: &JsValue, locked: u32, busy: u32, name: &str) -> JsValue;
    fn unlock();
}

/// The body of a batch of stored events (JSON strings, an array), each stamped with
/// `sentAt` now, with the write key and the count of events dropped since the last report.
pub fn body(events: &JsValue, write_key: &JsValue, dropped: u32) -> JsValue {
    batch_body(events, write_key, dropped)
}

/// Posts `body` to `url`, with `keepalive` if asked (the request outlives the page, as long
/// as all keepalive requests in flight stay under 64 KB together; the browser refuses one
/// beyond that), then, once the answer is read, calls
/// `wake(kind, id, status, retry_after_ms)`: status 0 when the request failed without an
/// answer (or got none within a minute), `retry_after_ms` `undefined` when the collector
/// asked for no delay.
pub fn send(wake: &JsValue, kind: u32, id: u32, url: &str, body: &JsValue, keepalive: bool) {
    post(wake, kind, id, url, body, keepalive)
}

/// Asks for the Web Lock `name`, then calls `wake(locked, has_lock)` and keeps the lock
/// until [`unlock`]; `wake(busy)` instead when another tab holds it (that tab is sending the
/// shared queue). Without Web Locks, `wake(locked, 0)`. Returns a promise that resolves
/// when the lock is given back or found busy. Never calls `wake` before returning.
pub fn exclusively(wake: &JsValue, locked: u32, busy: u32, name: &str) -> JsValue {
    with_lock(wake, locked, busy, name)
}

/// Gives back the lock taken by [`exclusively`].
pub fn release_lock() {
    unlock()
}
