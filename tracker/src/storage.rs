//! First-party browser storage: localStorage and cookies, and the durable queue's entries.
//! Blocked or full storage is never an error for the page: reads give nothing and writes
//! report failure. Values stay JavaScript strings (`null` when absent).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function ls_get(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
export function ls_set(k, v) { try { localStorage.setItem(k, v); return true; } catch (e) { return false; } }
export function ls_remove(k) { try { localStorage.removeItem(k); } catch (e) {} }
// Queue entries being sent, by any tab of the site, are marked `cdp_f:<key>` (until when,
// in ms): listed again only once the collector has answered for them, or once the mark has
// expired (a tab closed before the answer came). Expired marks and marks whose entry is
// gone are cleaned up as the queue is listed.
var MARK = 'cdp_f:';
export function ls_keys(p, skipHeld) {
  var out = [], marks = [], held = {}, skipped = 0, now = Date.now();
  try {
    for (var i = 0; i < localStorage.length; i++) {
      var k = localStorage.key(i);
      if (k && k.indexOf(MARK) === 0) marks.push(k); else if (k && k.indexOf(p) === 0) out.push(k);
    }
    var entries = {};
    out.forEach(function (k) { entries[k] = 1; });
    marks.forEach(function (m) {
      var k = m.slice(MARK.length);
      if (entries[k] && +localStorage.getItem(m) > now) held[k] = 1; else ls_remove(m);
    });
  } catch (e) {}
  out = out.filter(function (k) { if (skipHeld && held[k]) { skipped++; return false; } return true; }).sort();
  out.held = skipped;
  return out;
}
export function ls_remove_range(keys, from, to) { for (var i = from; i < to; i++) ls_remove(keys[i]); }
export function hold(keys, ms) { var until = Date.now() + ms; keys.forEach(function (k) { ls_set(MARK + k, until); }); }
// The entry goes before its mark: another tab's copy of localStorage lags this one's, and
// a tab that saw the mark gone but not yet the entry would send the entry again.
export function release(keys, remove) { keys.forEach(function (k) { if (remove) ls_remove(k); ls_remove(MARK + k); }); }
export function on_change(f, kind, key) {
  addEventListener('storage', function (e) { if (e.key === key) f(kind, 0, 0, e.newValue); });
}
export function ls_forget(p, keep) {
  try { Object.keys(localStorage).forEach(function (k) { if (k.indexOf(p) === 0 && k !== keep) ls_remove(k); }); } catch (e) {}
}
export function cookie_get(n) {
  try {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) { var j = parts[i].indexOf('='); if (parts[i].slice(0, j) === n) return decodeURIComponent(parts[i].slice(j + 1)); }
  } catch (e) {}
  return null;
}
export function cookie_set(n, v, maxAge, domain) {
  try {
    document.cookie = n + '=' + encodeURIComponent(v) + '; Max-Age=' + maxAge + '; Path=/; SameSite=Lax' +
      (domain ? '; Domain=' + domain : '') + (location.protocol === 'https:' ? '; Secure' : '');
  } catch (e) {}
}
"#)]
extern "C" {
    fn ls_get(key: &JsValue) -> JsValue;
    fn ls_set(key: &JsValue, value: &JsValue) -> bool;
    fn ls_remove(key: &JsValue);
    fn ls_keys(prefix: &str, skip_held: bool) -> JsValue;
    fn ls_remove_range(keys: &JsValue, from: usize, to: usize);
    fn hold(keys: &JsValue, ms: f64);
    fn release(keys: &JsValue, remove: bool);
    fn on_change(f: &JsValue, kind: u32, key: &str);
    fn ls_forget(prefix: &str, keep: &str);
    fn cookie_get(name: &str) -> JsValue;
    fn cookie_set(name: &str, value: &JsValue, max_age: f64, domain: &JsValue);
}

/// The localStorage value of `key` (a string), or `null`.
pub fn get(key: &str) -> JsValue {
    ls_get(&key.into())
}

/// Stores `value` under `key`; `false` when storage is blocked or full.
pub fn set(key: &str, value: &JsValue) -> bool {
    ls_set(&key.into(), value)
}

/// Removes `key`.
pub fn remove(key: &str) {
    ls_remove(&key.into())
}

/// The value of the queue entry `key` (a string), or `null`.
pub fn entry(key: &JsValue) -> JsValue {
    ls_get(key)
}

/// Every localStorage key starting with `prefix`, sorted, as an array; without the keys
/// some tab of the site is sending ([`hold_entries`]) when `skip_held`, which are counted
/// instead ([`held_among`]).
pub fn keys(prefix: &str, skip_held: bool) -> JsValue {
    ls_keys(prefix, skip_held)
}

/// How many entries being sent a listing by [`keys`] with `skip_held` left out.
pub fn held_among(keys: &JsValue) -> usize {
    crate::js::number(&crate::js::get(keys, "held")) as usize
}

/// Removes the entries `keys[from..to]`.
pub fn remove_range(keys: &JsValue, from: usize, to: usize) {
    ls_remove_range(keys, from, to)
}

/// Marks the entries `keys` (an array) as being sent, for every tab of the site, for `ms`
/// at most.
pub fn hold_entries(keys: &JsValue, ms: f64) {
    hold(keys, ms)
}

/// Ends the send of entries `keys`: removed from storage when `delivered`, else listed again.
pub fn release_entries(keys: &JsValue, delivered: bool) {
    release(keys, delivered)
}

/// Removes every localStorage key that starts with `prefix` but `keep`.
pub fn forget(prefix: &str, keep: &str) {
    ls_forget(prefix, keep)
}

/// Calls `wake(kind, 0, 0, value)` whenever another tab of the site sets localStorage `key`
/// (`value` is the new string, `null` when removed).
pub fn on_other_tab_change(wake: &JsValue, kind: u32, key: &str) {
    on_change(wake, kind, key)
}

/// The value of cookie `name` (a string), or `null`.
pub fn cookie(name: &str) -> JsValue {
    cookie_get(name)
}

/// Sets first-party cookie `name` for `max_age_s` seconds (0 deletes it), on `domain`
/// when given (to share it across subdomains).
pub fn set_cookie(name: &str, value: &JsValue, max_age_s: f64, domain: &JsValue) {
    cookie_set(name, value, max_age_s, domain)
}
