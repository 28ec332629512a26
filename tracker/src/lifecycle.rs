//! The page's lifecycle: hidden or closed, shown again, back online, timers and idle time.
//! Each reports through the tracker's one callback, `wake(kind)`.
//!
//! Only `pagehide` and `visibilitychange`, never `unload`, which would keep the page out of
//! the back/forward cache.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function on_hide(f, kind) {
  addEventListener('pagehide', function () { f(kind); });
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') f(kind); });
}
export function on_online(f, kind) {
  var g = function () { f(kind, 0); };
  addEventListener('online', g);
  document.addEventListener('visibilitychange', function () { document.hidden || f(kind, 1); });
  setTimeout(g);
}
export function later(f, kind, ms) { setTimeout(function () { f(kind); }, ms); }
export function when_idle(f, kind) {
  var run = function () { f(kind); };
  if (self.requestIdleCallback) requestIdleCallback(run, { timeout: 500 }); else setTimeout(run, 1);
}
export function online() { return navigator.onLine !== false; }
"#)]
extern "C" {
    fn on_hide(f: &JsValue, kind: u32);
    fn on_online(f: &JsValue, kind: u32);
    fn later(f: &JsValue, kind: u32, ms: f64);
    fn when_idle(f: &JsValue, kind: u32);
    fn online() -> bool;
}

/// Calls `wake(kind)` every time the page is hidden or about to be closed.
pub fn every_hide(wake: &JsValue, kind: u32) {
    on_hide(wake, kind)
}

/// Calls `wake(kind, 0)` every time the browser comes back online, and once as the tracker
/// starts; `wake(kind, 1)` every time the page is shown again. What earlier pages or other
/// tabs stored leaves then, not with the next event this page records (a site with manual
/// page calls may record none).
pub fn every_online(wake: &JsValue, kind: u32) {
    on_online(wake, kind)
}

/// Calls `wake(kind)` once, after `ms` milliseconds.
pub fn after(wake: &JsValue, kind: u32, ms: f64) {
    later(wake, kind, ms)
}

/// Calls `wake(kind)` once, when the main thread is idle (within half a second at most).
pub fn idle(wake: &JsValue, kind: u32) {
    when_idle(wake, kind)
}

/// Whether the browser believes it is online.
pub fn is_online() -> bool {
    online()
}
