//! What the page and browser tell about where an event happened (`context`).

use wasm_bindgen::prelude::*;

use crate::event::{LIBRARY_NAME, LIBRARY_VERSION};

#[wasm_bindgen(inline_js = r#"
export function page_info(kept) {
  if (kept && kept.i && kept.p) return kept;
  var l = location;
  return { url: l.href, path: l.pathname, search: l.search, title: document.title, referrer: document.referrer };
}
export function fixed_context(name, version) {
  var n = navigator, s = self.screen || {};
  var c = { userAgent: n.userAgent, locale: n.language, library: { name: name, version: version },
            screen: { width: s.width, height: s.height, density: self.devicePixelRatio } };
  // The time zone is read when the first event is completed (at idle time), not now: the
  // browser's first Intl call loads its locale data, 15-35 ms that delayed ready.
  Object.defineProperty(c, 'timezone', { enumerable: true, configurable: true, get: function () {
    var z; try { z = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
    Object.defineProperty(c, 'timezone', { value: z, enumerable: true });
    return z;
  } });
  var q = new URLSearchParams(location.search), map = { utm_source: 'source', utm_medium: 'medium', utm_campaign: 'name', utm_term: 'term', utm_content: 'content' };
  for (var k in map) { var v = q.get(k); if (v) { c.campaign = c.campaign || {}; c.campaign[map[k]] = v; } }
  return c;
}
export function gpc() { return navigator.globalPrivacyControl === true; }
export function dnt() { return navigator.doNotTrack === '1' || self.doNotTrack === '1'; }
"#)]
extern "C" {
    fn page_info(kept: &JsValue) -> JsValue;
    fn fixed_context(name: &str, version: &str) -> JsValue;
    fn gpc() -> bool;
    fn dnt() -> bool;
}

/// `context.page` now: url, path, search, title and referrer of the document; or, for a
/// call the loader `kept` from a page since closed (`{p, i}`), that record, which carries
/// its page (`p`) and message id (`i`).
pub fn page(kept: &JsValue) -> JsValue {
    page_info(kept)
}

/// The parts of `context` that stay the same for the life of the page: user agent, locale,
/// time zone, screen, library, and the campaign of the landing URL.
pub fn fixed() -> JsValue {
    fixed_context(LIBRARY_NAME, LIBRARY_VERSION)
}

/// Whether the browser sends Global Privacy Control.
pub fn global_privacy_control() -> bool {
    gpc()
}

/// Whether the browser sends Do Not Track.
pub fn do_not_track() -> bool {
    dnt()
}
