//! Progress of an offline import (`POST /v1/import`): a large file travels through the
//! queue in chunks, and `GET /v1/import/{job}` says how many have reached the profiles.
//!
//! Each job is one small Durable Object of the counters' class, named after the job. Its
//! entries are set, never added to: `chunk.<n>` once per delivered chunk, so a chunk
//! delivered twice (a queue retry) still counts once.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use wasm_bindgen::JsCast;
use worker::{Env, Method, Request, RequestInit, Result};

use crate::config::STATS;
use crate::stats::Counts;

const CHUNK: &str = "chunk.";

/// A new job's id: a random UUID from the platform's CSPRNG, so knowing it is what lets a
/// caller read the job's progress.
pub fn new_id() -> Result<String> {
    Ok(["imp-", &random_uuid()?].concat())
}

/// A random UUID from the platform's CSPRNG (`crypto.randomUUID`).
pub fn random_uuid() -> Result<String> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    js_sys::Reflect::get(&crypto, &"randomUUID".into())?
        .dyn_into::<js_sys::Function>()?
        .call0(&crypto)?
        .as_string()
        .ok_or_else(|| worker::Error::RustError("crypto.randomUUID gave no text".into()))
}

async fn set(env: &Env, job: &str, entries: &Counts) -> Result<()> {
    let body = serde_json::to_string(entries).map_err(worker::Error::from)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init("https://stats/set", &init)?;
    crate::meter::call(&stub(env, job)?, req).await?;
    Ok(())
}

/// The counters object of `job`.
fn stub(env: &Env, job: &str) -> Result<worker::Stub> {
    env.durable_object(STATS)?
        .id_from_name(&["job-", job].concat())?
        .get_stub()
}

/// Records what a job holds: its start, rows refused, events and chunks queued.
pub async fn register(env: &Env, job: &str, totals: Counts) -> Result<()> {
    set(env, job, &totals).await
}

/// Records that chunk `chunk` of `job`, with `events` events, reached the profiles.
pub async fn chunk_delivered(env: &Env, job: &str, chunk: u32, events: usize) -> Result<()> {
    let entry = BTreeMap::from([([CHUNK, &chunk.to_string()].concat(), events as i64)]);
    set(env, job, &entry).await
}

/// The number a job keeps for the source that started it (its entries are numbers), so
/// only that source's write key reads its progress. Under 2^52: the counters travel as
/// JavaScript numbers, which hold integers exactly only that far.
pub fn owner_mark(write_key: &str) -> i64 {
    crate::shard::of(write_key, 1 << 52) as i64
}

/// The progress of `job`; `None` if no such job, or if `write_key` is given and the job
/// is not that source's.
pub async fn progress(env: &Env, job: &str, write_key: Option<&str>) -> Result<Option<Value>> {
    let req = Request::new("https://stats/", Method::Get)?;
    let mut res = crate::meter::call(&stub(env, job)?, req).await?;
    let counts: Counts = res.json().await?;
    let Some(started) = counts.get("startedAt") else {
        return Ok(None);
    };
    if write_key.is_some_and(|k| counts.get("source") != Some(&owner_mark(k))) {
        return Ok(None);
    }
    let delivered: Vec<i64> = counts
        .iter()
        .filter(|(k, _)| k.starts_with(CHUNK))
        .map(|(_, v)| *v)
        .collect();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let done = delivered.len() as i64 >= get("chunks");
    Ok(Some(json!({
        "job": job,
        "state": if done { "done" } else { "delivering" },
        "startedAt": cdp_protocol::time::format_rfc3339(*started),
        "rowErrors": get("rowErrors"),
        "events": get("events"),
        "chunks": get("chunks"),
        "chunksDelivered": delivered.len(),
        "eventsDelivered": delivered.iter().sum::<i64>(),
    })))
}
