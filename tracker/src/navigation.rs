//! Single-page-app route changes, from the Navigation API where the browser has it, else
//! from History API hooks (`pushState`, `replaceState`) and `popstate`.
//!
//! Every change schedules one check for the next task, so a router's `replaceState` then
//! `pushState` for one navigation is seen once, with the final URL.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function watch_routes(f, kind) {
  var check = function () { setTimeout(function () { f(kind); }, 0); };
  var nav = self.navigation;
  if (nav && nav.addEventListener) { nav.addEventListener('currententrychange', check); return; }
  ['pushState', 'replaceState'].forEach(function (m) {
    var original = history[m];
    history[m] = function () { var r = original.apply(this, arguments); check(); return r; };
  });
  addEventListener('popstate', check);
}
export function href() { return location.href; }
"#)]
extern "C" {
    fn watch_routes(f: &JsValue, kind: u32);
    fn href() -> String;
}

/// Calls `wake(kind)` after any change of the page's URL without a page load.
pub fn on_route_change(wake: &JsValue, kind: u32) {
    watch_routes(wake, kind)
}

/// The current URL.
pub fn current_url() -> String {
    href()
}
