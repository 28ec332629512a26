//! First-party browser storage: localStorage and cookies. Blocked or full storage is
//! never an error for the page: reads give nothing and writes report failure.

use js_sys::Array;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function ls_get(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
export function ls_set(k, v) { try { localStorage.setItem(k, v); return true; } catch (e) { return false; } }
export function ls_remove(k) { try { localStorage.removeItem(k); } catch (e) {} }
export function ls_keys(p) {
  var out = [];
  try { for (var i = 0; i < localStorage.length; i++) { var k = localStorage.key(i); if (k && k.indexOf(p) === 0) out.push(k); } } catch (e) {}
  return out.sort();
}
export function cookie_get(n) {
  var parts = document.cookie ? document.cookie.split('; ') : [];
  for (var i = 0; i < parts.length; i++) { var j = parts[i].indexOf('='); if (parts[i].slice(0, j) === n) return decodeURIComponent(parts[i].slice(j + 1)); }
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
    fn ls_get(key: &str) -> Option<String>;
    fn ls_set(key: &str, value: &str) -> bool;
    fn ls_remove(key: &str);
    fn ls_keys(prefix: &str) -> Array;
    fn cookie_get(name: &str) -> Option<String>;
    fn cookie_set(name: &str, value: &str, max_age: f64, domain: &str);
}

/// The localStorage value of `key`.
pub fn get(key: &str) -> Option<String> {
    ls_get(key)
}

/// Stores `value` under `key`; `false` when storage is blocked or full.
pub fn set(key: &str, value: &str) -> bool {
    ls_set(key, value)
}

/// Removes `key`.
pub fn remove(key: &str) {
    ls_remove(key)
}

/// Every localStorage key starting with `prefix`, sorted.
pub fn keys(prefix: &str) -> Vec<String> {
    ls_keys(prefix)
        .iter()
        .filter_map(|k| k.as_string())
        .collect()
}

/// The value of cookie `name`.
pub fn cookie(name: &str) -> Option<String> {
    cookie_get(name)
}

/// Sets first-party cookie `name` for `max_age_s` seconds (0 deletes it), on `domain`
/// when given (to share it across subdomains).
pub fn set_cookie(name: &str, value: &str, max_age_s: f64, domain: &str) {
    cookie_set(name, value, max_age_s, domain)
}
