//! The queue consumer: delivers queued events to their profiles exactly once.
//!
//! For each message: drop what was delivered before (dedup shards), send the rest to their
//! profiles (all at once), record them as delivered, archive the message, acknowledge it.
//! Any failure retries the whole message later; the steps are ordered so that a retry can
//! only repeat work the profile store absorbs, never skip an event. A message that keeps
//! failing goes to the dead-letter queue, which this consumer counts and archives.

use std::collections::{BTreeMap, HashSet};

use cdp_protocol::event::Event;
use cdp_protocol::route::profile_key;
use wasm_bindgen::JsValue;
use worker::{Date, Env, MessageBatch, MessageExt, Result};

use crate::config::{ARCHIVE, DEAD_LETTER_QUEUE};
use crate::queue::QueuedBatch;
use crate::stats::{self, Counts};
use crate::{archive, dedup, profile_store};

/// Handles one batch of queue messages (from the events queue or its dead-letter queue).
pub async fn consume(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let dead_letters = batch.queue() == DEAD_LETTER_QUEUE;
    let mut counts = Counts::new();
    for message in batch.raw_iter() {
        let text = message.body().as_string().unwrap_or_default();
        if dead_letters {
            let events =
                serde_json::from_str::<QueuedBatch>(&text).map_or(1, |b| b.events.len() as i64);
            *counts.entry("dead_lettered".into()).or_default() += events;
            let key = [
                "dead/",
                &archive::hour_prefix(Date::now().as_millis() as i64)[4..],
                &message.id(),
                ".json",
            ]
            .concat();
            match env
                .bucket(ARCHIVE)?
                .put(key, text.into_bytes())
                .execute()
                .await
            {
                Ok(_) => message.ack(),
                Err(_) => message.retry(),
            }
            continue;
        }
        let outcome = match serde_json::from_str::<QueuedBatch>(&text) {
            Ok(queued) => deliver(env, &message.id(), &queued, &mut counts).await,
            Err(e) => Err(worker::Error::RustError(format!(
                "unreadable queue message: {e}"
            ))),
        };
        match outcome {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("delivery failed, will retry: {e}");
                *counts.entry("queue_retries".into()).or_default() += 1;
                message.retry();
            }
        }
    }
    stats::add(env, counts).await;
    Ok(())
}

async fn deliver(
    env: &Env,
    message_id: &str,
    queued: &QueuedBatch,
    counts: &mut Counts,
) -> Result<()> {
    let keys: Vec<String> = queued
        .events
        .iter()
        .map(|e| dedup::key(&queued.source, &e.message_id))
        .collect();
    let seen: HashSet<String> = if queued.replay {
        HashSet::new()
    } else {
        dedup::seen(env, &keys).await?.into_iter().collect()
    };
    let mut fresh_keys = Vec::new();
    let mut by_profile: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut in_message = HashSet::new();
    for (event, key) in queued.events.iter().zip(keys) {
        if seen.contains(&key) || !in_message.insert(key.clone()) {
            *counts.entry("duplicates".into()).or_default() += 1;
            continue;
        }
        by_profile
            .entry(profile_key(event))
            .or_default()
            .push(event.clone());
        fresh_keys.push(key);
    }
    let writes = by_profile
        .iter()
        .map(|(key, events)| profile_store::ingest(env, key, events));
    for outcome in futures_util::future::join_all(writes).await {
        outcome?;
    }
    if !fresh_keys.is_empty() && !queued.replay {
        dedup::record(env, &fresh_keys, Date::now().as_millis() as i64).await?;
    }
    if !queued.replay {
        archive::store(env, message_id, queued).await?;
    }
    *counts.entry("delivered".into()).or_default() += fresh_keys.len() as i64;
    Ok(())
}
