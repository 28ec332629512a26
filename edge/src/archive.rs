//! The raw archive: every delivered event, as gzip-compressed NDJSON in R2 (an object per
//! delivery, source and hour), partitioned by the hour it was received
//! (`raw/dt=2026-11-23/hr=14/…`), and the replay that re-ingests a range of hours.

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

/// Stores a delivery's messages, less the events of `left_out` (erased people): one object
/// per source and hour received, so a delivery of many messages is one or a few writes,
/// not one per message. An object's key is made of its messages' earliest receipt and
/// first queue id, so a delivery retried as it was rewrites the same objects (one retried
/// in other company may archive its events twice; a replay stores each once all the same).
pub async fn store(
    env: &Env,
    batches: &[(String, &QueuedBatch)],
    left_out: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<&(String, &QueuedBatch)>> =
        std::collections::BTreeMap::new();
    for entry in batches.iter().filter(|(_, q)| !q.replay) {
        let key = (entry.1.source.clone(), hour_prefix(entry.1.received_at));
        groups.entry(key).or_default().push(entry);
    }
    for ((source, prefix), mut members) in groups {
        members.sort_by(|a, b| (a.1.received_at, &a.0).cmp(&(b.1.received_at, &b.0)));
        let lines: Vec<String> = members
            .iter()
            .flat_map(|(_, q)| q.events.iter())
            .filter(|e| !left_out.contains(&e.message_id))
            .filter_map(|e| serde_json::to_string(&e.body).ok())
            .collect();
        let Some((first_id, first)) = members.first().map(|(id, q)| (id, q)) else {
            continue;
        };
        if lines.is_empty() {
            continue;
        }
        let compressed = gzip(&lines.join("\n")).await?;
        let key = [
            prefix,
            first.received_at.to_string(),
            "-".into(),
            first_id.clone(),
            ".ndjson.gz".into(),
        ]
        .concat();
        let metadata = HashMap::from([
            ("source".to_owned(), source),
            ("receivedAt".to_owned(), first.received_at.to_string()),
        ]);
        crate::meter::add(crate::meter::Cost::R2ClassA, 1);
        crate::meter::add(crate::meter::Cost::R2BytesStored, compressed.len() as i64);
        env.bucket(ARCHIVE)?
            .put(key, compressed)
            .custom_metadata(metadata)
            .execute()
            .await?;
    }
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
                    job: None,
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

/// Where the queue messages that kept failing are kept (`dead/dt=…/hr=…/<id>.json`), as
/// the queue held them, until they are replayed.
pub const DEAD_PREFIX: &str = "dead/";

/// One message in the dead-letter store.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Its key in the archive bucket (what a replay of this one message names).
    pub key: String,
    /// The source's write key, when the message is readable.
    pub source: Option<String>,
    /// Events it holds (0 when unreadable).
    pub events: usize,
    /// When it was kept.
    pub kept_at: String,
}

/// Every message in the dead-letter store, with what it holds: `(letter, message)`.
async fn read_dead_letters(
    env: &Env,
    only: Option<&str>,
) -> Result<Vec<(DeadLetter, Option<QueuedBatch>)>> {
    let bucket = env.bucket(ARCHIVE)?;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().prefix(only.unwrap_or(DEAD_PREFIX));
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await?;
        for object in page.objects() {
            let key = object.key();
            if only.is_some_and(|k| k != key) {
                continue;
            }
            let Some(body) = bucket.get(key.clone()).execute().await? else {
                continue;
            };
            let Some(bytes) = body.body() else { continue };
            let message: Option<QueuedBatch> = serde_json::from_slice(&bytes.bytes().await?).ok();
            let letter = DeadLetter {
                key,
                source: message.as_ref().map(|m| m.source.clone()),
                events: message.as_ref().map_or(0, |m| m.events.len()),
                kept_at: format_rfc3339(object.uploaded().as_millis() as i64),
            };
            out.push((letter, message));
        }
        match page.cursor().filter(|_| page.truncated()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// The dead-letter store's messages.
pub async fn dead_letters(env: &Env) -> Result<Vec<DeadLetter>> {
    Ok(read_dead_letters(env, None)
        .await?
        .into_iter()
        .map(|(letter, _)| letter)
        .collect())
}

/// Removes from the dead-letter store every event that carries one of `erased` (identifier
/// keys, `kind:value`): those events never reached a profile, so erasure cannot find them
/// by `messageId`. Returns how many were removed.
pub async fn erase_dead_letters(
    env: &Env,
    erased: &std::collections::BTreeSet<String>,
    declared: &[String],
) -> Result<usize> {
    let bucket = env.bucket(ARCHIVE)?;
    // Matched as erasure suppresses: by each identifier's suppression keys.
    let suppressed: std::collections::BTreeSet<String> = erased
        .iter()
        .filter_map(|k| cdp_protocol::identity::Identifier::from_key(k))
        .flat_map(|id| id.suppression_keys())
        .collect();
    let carries_erased = |event: &cdp_protocol::event::Event| {
        cdp_protocol::identity::identifiers_of(event, declared)
            .iter()
            .flat_map(|id| id.suppression_keys())
            .any(|k| suppressed.contains(&k))
    };
    let mut removed = 0;
    for (letter, message) in read_dead_letters(env, None).await? {
        let Some(mut message) = message else { continue };
        let before = message.events.len();
        message.events.retain(|e| !carries_erased(e));
        let gone = before - message.events.len();
        if gone == 0 {
            continue;
        }
        removed += gone;
        if message.events.is_empty() {
            bucket.delete(letter.key).await?;
        } else {
            bucket
                .put(letter.key, message.to_text()?.into_bytes())
                .execute()
                .await?;
        }
    }
    Ok(removed)
}

/// Sends the dead-letter store's messages (or the one `only` names) back to the queue and
/// takes them out of the store. Their events meet their profiles' `messageId` keys as any
/// delivery does, so a replay never stores an event twice; unreadable messages stay where they are.
pub async fn replay_dead_letters(env: &Env, only: Option<&str>) -> Result<ReplayReport> {
    let bucket = env.bucket(ARCHIVE)?;
    let mut report = ReplayReport::default();
    for (letter, message) in read_dead_letters(env, only).await? {
        let Some(message) = message else { continue };
        report.objects += 1;
        report.events += message.events.len();
        queue::resend(env, vec![message]).await?;
        bucket.delete(letter.key).await?;
    }
    Ok(report)
}

/// Removes the given events from every archived batch (rewriting the objects that held any,
/// deleting those left empty). Returns how many events were removed.
pub async fn erase(env: &Env, message_ids: &std::collections::BTreeSet<String>) -> Result<usize> {
    let bucket = env.bucket(ARCHIVE)?;
    let mut removed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut list = bucket.list().prefix("raw/");
        if let Some(c) = cursor.take() {
            list = list.cursor(c);
        }
        let page = list.execute().await?;
        for object in page.objects() {
            let key = object.key();
            let metadata = object.custom_metadata().unwrap_or_default();
            let Some(body) = bucket.get(key.clone()).execute().await? else {
                continue;
            };
            let Some(bytes) = body.body() else { continue };
            let Ok(text) = gunzip(&bytes.bytes().await?, 64 * 1024 * 1024).await else {
                continue;
            };
            let text = String::from_utf8_lossy(&text).into_owned();
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| {
                    let id = serde_json::from_str::<Value>(line).ok().and_then(|v| {
                        v.get("messageId")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    });
                    !id.is_some_and(|id| message_ids.contains(&id))
                })
                .collect();
            let gone = text.lines().count() - kept.len();
            if gone == 0 {
                continue;
            }
            removed += gone;
            if kept.is_empty() {
                bucket.delete(key).await?;
            } else {
                let compressed = gzip(&kept.join("\n")).await?;
                bucket
                    .put(key, compressed)
                    .custom_metadata(metadata)
                    .execute()
                    .await?;
            }
        }
        match page.cursor().filter(|_| page.truncated()) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(removed)
}

/// Appends an entry to the audit log (`audit/…` in the archive bucket): who asked for what
/// of which profile, and what was done.
pub async fn audit(
    env: &Env,
    action: &str,
    profile: &str,
    actor: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let now = worker::Date::now().as_millis() as i64;
    let entry = serde_json::json!({"at": format_rfc3339(now), "action": action, "profile": profile,
        "by": actor, "detail": detail});
    let key = [
        "audit/",
        &format_rfc3339(now),
        "-",
        action,
        "-",
        profile,
        ".json",
    ]
    .concat();
    crate::meter::add(crate::meter::Cost::R2ClassA, 1);
    env.bucket(ARCHIVE)?
        .put(key, entry.to_string().into_bytes())
        .execute()
        .await?;
    Ok(())
}

/// The audit log, oldest first.
pub async fn audit_log(env: &Env) -> Result<Vec<Value>> {
    let bucket = env.bucket(ARCHIVE)?;
    let mut entries = Vec::new();
    for object in bucket.list().prefix("audit/").execute().await?.objects() {
        let Some(stored) = bucket.get(object.key()).execute().await? else {
            continue;
        };
        if let Some(body) = stored.body() {
            if let Ok(entry) = serde_json::from_slice(&body.bytes().await?) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}
