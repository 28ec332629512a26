//! Declarative capture for sites that write no JavaScript: a click on (or a submit of) an
//! element marked `data-cdp-event="Product Added"` sends that event, with the element's
//! other `data-cdp-*` attributes as properties (`data-cdp-product-id` → `product_id`).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
var NUMERIC = { price: 1, quantity: 1, total: 1, revenue: 1, value: 1, subtotal: 1, shipping: 1, tax: 1, discount: 1, position: 1 };
export function watch_marked(f, kind) {
  function handle(e) {
    var el = e.target && e.target.closest && e.target.closest('[data-cdp-event]'), event;
    if (!el || (e.type === 'submit') !== (el.tagName === 'FORM')) return;
    // An event without a name would only be refused by the collector, out of the site's sight.
    if (!(event = el.getAttribute('data-cdp-event'))) return console.warn('[cdp] data-cdp-event is empty; nothing recorded');
    var props = {}, attrs = el.attributes;
    for (var i = 0; i < attrs.length; i++) {
      var name = attrs[i].name, value = attrs[i].value;
      if (name.indexOf('data-cdp-') !== 0 || name === 'data-cdp-event') continue;
      var key = name.slice(9).replace(/-/g, '_');
      props[key] = NUMERIC[key] && value !== '' && !isNaN(value) ? Number(value) : value;
    }
    f(kind, 0, 0, { event: event, properties: props });
  }
  document.addEventListener('click', handle, true);
  document.addEventListener('submit', handle, true);
}
"#)]
extern "C" {
    fn watch_marked(f: &JsValue, kind: u32);
}

/// Calls `wake(kind, 0, 0, fields)` for every click or submit on a marked element, where
/// `fields` is `{event, properties}` of a `track` call.
pub fn on_marked_action(wake: &JsValue, kind: u32) {
    watch_marked(wake, kind)
}
