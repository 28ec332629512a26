//! Sending a batch to the collector.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

/// Posts `body` to `url` as `text/plain` (no CORS preflight) with `keepalive`, so a send
/// started just before the page closes still completes. Resolves to the HTTP status on a
/// 2xx answer; rejects with a message otherwise.
pub async fn post(url: String, body: String) -> Result<JsValue, JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    // web-sys has no setter for keepalive yet; it is a plain dictionary member.
    let _ = Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    let answer = JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await?;
    let response: Response = answer.dyn_into()?;
    let status = response.status();
    if response.ok() {
        return Ok(status.into());
    }
    let error = js_sys::Error::new("the collector refused the batch");
    let _ = Reflect::set(&error, &"status".into(), &status.into());
    Err(error.into())
}
