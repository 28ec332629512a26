//! Declarative capture for sites that write no JavaScript: a click on (or a submit of) an
//! element marked `data-cdp-event="Product Added"` sends that event, with the element's
//! other `data-cdp-*` attributes as properties (`data-cdp-product-id` → `product_id`).

use js_sys::Object;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
var NUMERIC = { price: 1, quantity: 1, total: 1, revenue: 1, value: 1, subtotal: 1, shipping: 1, tax: 1, discount: 1, position: 1 };
export function watch_marked(f) {
  function handle(e) {
    var el = e.target && e.target.closest && e.target.closest('[data-cdp-event]');
    if (!el || (e.type === 'submit') !== (el.tagName === 'FORM')) return;
    var props = {}, attrs = el.attributes;
    for (var i = 0; i < attrs.length; i++) {
      var name = attrs[i].name, value = attrs[i].value;
      if (name.indexOf('data-cdp-') !== 0 || name === 'data-cdp-event') continue;
      var key = name.slice(9).replace(/-/g, '_');
      props[key] = NUMERIC[key] && value !== '' && !isNaN(value) ? Number(value) : value;
    }
    f(el.getAttribute('data-cdp-event'), props);
  }
  document.addEventListener('click', handle, true);
  document.addEventListener('submit', handle, true);
}
"#)]
extern "C" {
    fn watch_marked(f: &JsValue);
}

/// Calls `f(event name, properties)` for every click or submit on a marked element. The
/// name stays a JavaScript string: it only goes into the event object.
pub fn on_marked_action(f: impl FnMut(JsValue, Object) + 'static) {
    watch_marked(&Closure::<dyn FnMut(JsValue, Object)>::new(f).into_js_value());
}
