//! gzip in and out, with the runtime's own `DecompressionStream` and `CompressionStream`:
//! no inflate code in our Wasm. Decompression stops as soon as the output passes a limit,
//! so a gzip bomb costs no more memory than a legitimate batch.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export async function gunzip_capped(bytes, limit) {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    let step;
    try { step = await reader.read(); } catch (e) { return 'invalid'; }
    if (step.done) break;
    total += step.value.length;
    if (total > limit) { reader.cancel().catch(() => {}); return 'too_large'; }
    chunks.push(step.value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) { out.set(c, offset); offset += c.length; }
  return out;
}
export async function gzip_text(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
"#)]
extern "C" {
    fn gunzip_capped(bytes: &Uint8Array, limit: f64) -> Promise;
    fn gzip_text(text: &str) -> Promise;
}

/// Why a gzip body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GunzipError {
    /// Not gzip, or truncated.
    Invalid,
    /// Inflates to more than the limit.
    TooLarge,
}

/// Inflates `bytes`, refusing output larger than `limit` bytes.
pub async fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let out = JsFuture::from(gunzip_capped(&Uint8Array::from(bytes), limit as f64))
        .await
        .map_err(|_| GunzipError::Invalid)?;
    match out.as_string().as_deref() {
        Some("too_large") => Err(GunzipError::TooLarge),
        Some(_) => Err(GunzipError::Invalid),
        None => Ok(Uint8Array::new(&out).to_vec()),
    }
}

/// Compresses `text` with gzip.
pub async fn gzip(text: &str) -> worker::Result<Vec<u8>> {
    let out = JsFuture::from(gzip_text(text)).await?;
    Ok(Uint8Array::new(&out).to_vec())
}
