//! The page's lifecycle: hidden or closed, back online, timers and idle time.
//!
//! Only `pagehide` and `visibilitychange`, never `unload`, which would keep the page out of
//! the back/forward cache.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function on_hide(f) {
  addEventListener('pagehide', function () { f(); });
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') f(); });
}
export function on_online(f) { addEventListener('online', function () { f(); }); }
export function later(f, ms) { setTimeout(f, ms); }
export function when_idle(f) {
  if (self.requestIdleCallback) requestIdleCallback(function () { f(); }, { timeout: 500 }); else setTimeout(f, 1);
}
export function online() { return navigator.onLine !== false; }
"#)]
extern "C" {
    fn on_hide(f: &JsValue);
    fn on_online(f: &JsValue);
    fn later(f: &JsValue, ms: f64);
    fn when_idle(f: &JsValue);
    fn online() -> bool;
}

/// Calls `f` every time the page is hidden or about to be closed (for as long as the page lives).
pub fn every_hide(f: impl FnMut() + 'static) {
    on_hide(&Closure::<dyn FnMut()>::new(f).into_js_value());
}

/// Calls `f` every time the browser comes back online.
pub fn every_online(f: impl FnMut() + 'static) {
    on_online(&Closure::<dyn FnMut()>::new(f).into_js_value());
}

/// Calls `f` once, after `ms` milliseconds.
pub fn after(ms: f64, f: impl FnOnce() + 'static) {
    later(&Closure::once_into_js(f), ms);
}

/// Calls `f` once, when the main thread is idle (within half a second at most).
pub fn idle(f: impl FnOnce() + 'static) {
    when_idle(&Closure::once_into_js(f));
}

/// Whether the browser believes it is online.
pub fn is_online() -> bool {
    online()
}
