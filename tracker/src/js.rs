//! The few plain JavaScript helpers every module uses, as one snippet: each import costs
//! the page glue and a shim, and these never throw, so nothing needs catching in Wasm.
//! Values the page gives (events, properties, ids, JSON) stay JavaScript values: the Wasm
//! decides what happens to them and never copies them into its own memory.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
export function get(o, k) { return o == null ? undefined : o[k]; }
export function object() { return {}; }
export function assign(a, b) { return Object.assign(a, b); }
// Plain objects are copied (their own fields; nested ones stay shared): a page that reuses
// an object for its next call must not change the event already recorded, which is only
// serialised at idle time. Anything else (an array, a class with its own toJSON, a Proxy
// that throws) goes as it is.
function own(v) { try { if (v && Object.getPrototypeOf(v) === Object.prototype) return Object.assign({}, v); } catch (e) {} return v; }
export function fields(a, x, b, y) { var o = {}; if (x != null) o[a] = own(x); if (y != null) o[b] = own(y); return o; }
export function parse(s) { try { return JSON.parse(s); } catch (e) {} }
export function stringify(v) { try { return JSON.stringify(v); } catch (e) {} }
export function number(v) { return typeof v === 'number' || typeof v === 'string' ? Number(v) : NaN; }
export function now() { return Date.now(); }
export function random() { return Math.random(); }
export function new_id() {
  try { return crypto.randomUUID(); } catch (e) { return Math.random().toString(36).slice(2) + Date.now().toString(36); }
}
var encoder;
export function bytes(s) { return typeof s === 'string' ? (encoder = encoder || new TextEncoder()).encode(s).length : 0; }
export function length(a) { return a.length; }
export function at(a, i) { return a[i]; }
export function push(a, v) { a.push(v); }
export function list() { return []; }
export function resolved() { return Promise.resolve(); }
export function warn(m) { try { console.warn('[cdp]', m); } catch (e) {} }
"#)]
extern "C" {
    /// `o[k]`; `undefined` when `o` is `null` or `undefined`.
    pub fn get(o: &JsValue, k: &str) -> JsValue;
    /// A new empty object.
    pub fn object() -> JsValue;
    /// `Object.assign(a, b)`: copies `b`'s fields onto `a`, returns `a`.
    pub fn assign(a: &JsValue, b: &JsValue) -> JsValue;
    /// `{[a]: x, [b]: y}`, leaving out a field whose value is `null` or `undefined`; a
    /// plain object value is a copy of its own fields, made now.
    pub fn fields(a: &str, x: &JsValue, b: &str, y: &JsValue) -> JsValue;
    /// `JSON.parse(s)`; `undefined` when `s` is not JSON.
    pub fn parse(s: &JsValue) -> JsValue;
    /// `JSON.stringify(v)`; `undefined` when it cannot be serialised (a cycle, a BigInt).
    pub fn stringify(v: &JsValue) -> JsValue;
    /// `Number(v)` of a number or a string (settings in attributes are strings); else NaN.
    pub fn number(v: &JsValue) -> f64;
    /// Milliseconds since the epoch, now.
    pub fn now() -> f64;
    /// A random number in [0, 1).
    pub fn random() -> f64;
    /// A fresh random id: a version 4 UUID, or a random base-36 string without Web Crypto.
    pub fn new_id() -> JsValue;
    /// The UTF-8 length of string `s` (0 for anything else): the collector's limits are bytes.
    pub fn bytes(s: &JsValue) -> usize;
    /// `a.length` of an array.
    pub fn length(a: &JsValue) -> usize;
    /// `a[i]`.
    pub fn at(a: &JsValue, i: usize) -> JsValue;
    /// `a.push(v)`.
    pub fn push(a: &JsValue, v: &JsValue);
    /// A new empty array.
    pub fn list() -> JsValue;
    /// A promise already resolved (for calls that had nothing to wait for).
    pub fn resolved() -> JsValue;
    /// Writes `[cdp] message` to the console.
    pub fn warn(message: &str);
}
