//! The few plain JavaScript helpers every module uses, as one snippet: each import costs
//! the page glue and a shim, and these never throw, so nothing needs catching in Wasm.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function get(o, k) { return o == null ? undefined : o[k]; }
export function set(o, k, v) { o[k] = v; }
export function parse(s) { try { return JSON.parse(s); } catch (e) {} }
export function stringify(v) { try { return JSON.stringify(v); } catch (e) {} }
export function number(v) { return typeof v === 'number' || typeof v === 'string' ? Number(v) : NaN; }
export function iso(ms) { try { return new Date(ms).toISOString(); } catch (e) { return new Date().toISOString(); } }
export function new_id() {
  try { return crypto.randomUUID(); } catch (e) { return Math.random().toString(36).slice(2) + Date.now().toString(36); }
}
export function warn(m) { try { console.warn('[cdp]', m); } catch (e) {} }
"#)]
extern "C" {
    /// `o[k]`; `undefined` when `o` is `null` or `undefined`.
    pub fn get(o: &JsValue, k: &str) -> JsValue;
    /// `o[k] = v`.
    pub fn set(o: &JsValue, k: &str, v: &JsValue);
    /// `JSON.parse(s)`; `undefined` when `s` is not JSON.
    pub fn parse(s: &str) -> JsValue;
    /// `JSON.stringify(v)`; `None` when it cannot be serialised (a cycle, a BigInt).
    pub fn stringify(v: &JsValue) -> Option<String>;
    /// `Number(v)` of a number or a string (settings in attributes are strings); else NaN.
    pub fn number(v: &JsValue) -> f64;
    /// An ISO 8601 time for `ms` since the epoch (now, if `ms` is not a valid time).
    pub fn iso(ms: f64) -> String;
    /// A fresh random id: a version 4 UUID, or a random base-36 string without Web Crypto.
    pub fn new_id() -> String;
    /// Writes `[cdp] message` to the console.
    pub fn warn(message: &str);
}
