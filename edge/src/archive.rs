//! The raw archive: every delivered queue message, as gzip-compressed NDJSON in R2,
//! partitioned by the hour it was received (`raw/dt=2026-11-23/hr=14/…`), and the replay
//! that re-ingests a range of hours.

use std::collections::HashMap;

use cdp_protocol::decode::{Envelope, Limits};
use cdp_protocol::time::format_rfc3339;
use cdp_protocol::validate::check_batch;
use serde_json::Value;
use worker::{Env, Result};

use crate::compression::{gunzip, gzip};
use crate::config::ARCHIVE;
use crate::queue::{self, QueuedBatch};

/// `raw/dt=YYYY-MM-DD/hr=HH/` for a time in ms.
pub fn hour_prefix(ms: i64) -> String {
    let iso = format_rfc3339(ms);
    ["raw/dt=", &iso[..10], "/hr=", &iso[11..13], "/"].concat()
}

/// Stores a delivered message; its queue id makes the write idempotent under redelivery.
pub async fn store(env: &Env, message_id: &str, batch: &QueuedBatch) -> Result<()> {
    let lines: Vec<String> = batch
        .events
        .iter()
        .filter_map(|e| serde_json::to_string(&e.body).ok())
        .collect();
    let compressed = gzip(&lines.join("\n")).await?;
    let key = [
        hour_prefix(batch.received_at),
        batch.received_at.to_string(),
        "-".into(),
        message_id.to_owned(),
        ".ndjson.gz".into(),
    ]
    .concat();
    let metadata = HashMap::from([
        ("source".to_owned(), batch.source.clone()),
        ("receivedAt".to_owned(), batch.received_at.to_string()),
    ]);
    env.bucket(ARCHIVE)?
        .put(key, compressed)
        .custom_metadata(metadata)
        .execute()
        .await?;
    Ok(())
}

/// What a replay did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReplayReport {
    /// Archive objects read.
    pub objects: usize,
    /// Events sent back into the queue.
    pub events: usize,
}

/// Re-ingests every archived event received from hour `from` to hour `to` (ms, inclusive).
/// Idempotent: the profile store keeps each `messageId` once, however often it is replayed.
pub async fn replay(env: &Env, from: i64, to: i64) -> Result<ReplayReport> {
    const HOUR: i64 = 3_600_000;
    let bucket = env.bucket(ARCHIVE)?;
    let mut report = ReplayReport::default();
    let mut hour = from - from.rem_euclid(HOUR);
    while hour <= to {
        let mut cursor: Option<String> = None;
        loop {
            let mut list = bucket.list().prefix(hour_prefix(hour));
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await?;
            for object in page.objects() {
                let metadata = object.custom_metadata().unwrap_or_default();
                let Some(body) = bucket.get(object.key()).execute().await? else {
                    continue;
                };
                let Some(bytes) = body.body() else { continue };
                let Ok(text) = gunzip(&bytes.bytes().await?, 64 * 1024 * 1024).await else {
                    continue;
                };
                let events: Vec<Value> = String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect();
                let received_at = metadata
                    .get("receivedAt")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(hour);
                let source = metadata.get("source").cloned().unwrap_or_default();
                let envelope = Envelope {
                    write_key: None,
                    sent_at: None,
                    events,
                    client_dropped: 0,
                    lossy: false,
                };
                let checked = check_batch(envelope, received_at, &Limits::default());
                report.objects += 1;
                report.events += checked.accepted.len();
                let origin = queue::Origin {
                    source: &source,
                    received_at,
                    body_bytes: usize::MAX,
                    replay: true,
                };
                queue::enqueue(env, origin, checked.accepted, Default::default()).await?;
            }
            match page.cursor().filter(|_| page.truncated()) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        hour += HOUR;
    }
    Ok(report)
}
