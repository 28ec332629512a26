//! Spreading keys over a fixed number of Durable Objects by a stable hash.

use std::collections::BTreeMap;

use cdp_protocol::hash::{fnv1a, FNV_OFFSET};

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Method, Request, RequestInit, Result};

/// The shard of `key` among `shards`, by the stable hash, so a key always finds the object
/// that holds it.
pub fn of(key: &str, shards: u64) -> u64 {
    fnv1a(key.as_bytes(), FNV_OFFSET) % shards.max(1)
}

/// Groups keys by shard.
pub fn group(keys: &[String], shards: u64) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for key in keys {
        out.entry(of(key, shards)).or_default().push(key.clone());
    }
    out
}

/// Posts `body` as JSON to `path` of shard `shard` of the Durable Object namespace `binding`
/// (objects named `<prefix>-<shard>`), and reads the JSON answer; any status but 200 is an
/// error that names the shard's answer.
pub async fn post<B: Serialize, R: DeserializeOwned>(
    env: &Env,
    binding: &str,
    prefix: &str,
    shard: u64,
    path: &str,
    body: &B,
) -> Result<R> {
    let text = serde_json::to_string(body).map_err(worker::Error::from)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(text.into()));
    let req = Request::new_with_init(&["https://", prefix, path].concat(), &init)?;
    let name = [prefix, "-", &shard.to_string()].concat();
    let stub = env
        .durable_object(binding)?
        .id_from_name(&name)?
        .get_stub()?;
    let mut res = crate::meter::call(&stub, req).await?;
    if res.status_code() != 200 {
        let detail = res.text().await.unwrap_or_default();
        return Err(crate::http::internal_answer(
            &name,
            res.status_code(),
            &detail,
        ));
    }
    res.json().await
}
