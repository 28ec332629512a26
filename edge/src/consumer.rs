//! The queue consumer: delivers queued events to their profiles exactly once.
//!
//! For each message: drop what was delivered before (dedup shards), send the rest to their
//! profiles (all at once), record them as delivered, archive the message, acknowledge it.
//! Any failure retries the whole message later; the steps are ordered so that a retry can
//! only repeat work the profile store absorbs, never skip an event. A message that keeps
//! failing goes to the dead-letter queue, which this consumer counts and archives.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use wasm_bindgen::JsValue;
use worker::{Date, Env, MessageBatch, MessageExt, Result};

use crate::config::{Config, ARCHIVE, DEAD_LETTER_QUEUE};
use crate::queue::QueuedBatch;
use crate::stats::{self, Counts};
use crate::{archive, dedup, directory, import_job, profile_store, resolver};

/// Handles one batch of queue messages (from the events queue or its dead-letter queue).
///
/// The messages of a batch are delivered together (one dedup round, one write per profile,
/// one record round), which keeps the number of Durable Object calls per event low; if any
/// step fails, every message of the batch is retried, which is safe because each step is
/// idempotent.
pub async fn consume(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let dead_letters = batch.queue() == DEAD_LETTER_QUEUE;
    let mut counts = Counts::new();
    let mut readable = Vec::new();
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
        match serde_json::from_str::<QueuedBatch>(&text) {
            Ok(queued) => readable.push((message, queued)),
            Err(e) => {
                // Never readable: retried until the queue moves it to the dead-letter queue.
                worker::console_error!("unreadable queue message {}: {e}", message.id());
                *counts.entry("queue_retries".into()).or_default() += 1;
                message.retry();
            }
        }
    }
    if !readable.is_empty() {
        let batches: Vec<(String, &QueuedBatch)> =
            readable.iter().map(|(m, q)| (m.id(), q)).collect();
        match deliver(env, &batches, &mut counts).await {
            Ok(()) => readable.iter().for_each(|(m, _)| m.ack()),
            Err(e) => {
                worker::console_error!("delivery failed, will retry: {e}");
                *counts.entry("queue_retries".into()).or_default() += readable.len() as i64;
                readable.iter().for_each(|(m, _)| m.retry());
            }
        }
    }
    stats::add(env, counts).await;
    Ok(())
}

async fn deliver(env: &Env, batches: &[(String, &QueuedBatch)], counts: &mut Counts) -> Result<()> {
    let mut checked_keys = Vec::new();
    for (_, queued) in batches.iter().filter(|(_, q)| !q.replay) {
        checked_keys.extend(
            queued
                .events
                .iter()
                .map(|e| dedup::key(&queued.source, &e.message_id)),
        );
    }
    let seen: HashSet<String> = if checked_keys.is_empty() {
        HashSet::new()
    } else {
        dedup::seen(env, &checked_keys).await?.into_iter().collect()
    };
    let config = Config::from_env(env).map_err(worker::Error::RustError)?;
    let mut fresh_keys = Vec::new();
    let mut fresh = Vec::new();
    let mut in_batch = HashSet::new();
    let mut sources = BTreeMap::new();
    for (_, queued) in batches {
        let source = config
            .sources
            .by_key(&queued.source)
            .map_or_else(|| "unknown source".to_owned(), |s| s.name.clone());
        for (name, value) in &queued.counts {
            *counts.entry(name.clone()).or_default() += value;
        }
        for event in &queued.events {
            let key = dedup::key(&queued.source, &event.message_id);
            if (!queued.replay && seen.contains(&key)) || !in_batch.insert(key.clone()) {
                *counts.entry("duplicates".into()).or_default() += 1;
                continue;
            }
            sources.insert(event.message_id.clone(), source.clone());
            fresh.push(event.clone());
            if !queued.replay {
                fresh_keys.push(key);
            }
        }
    }
    let delivered = fresh.len() as i64;
    let routed = resolver::resolve(env, fresh, &config.rules, counts).await?;
    let profiles: BTreeSet<&String> = routed.events.keys().chain(routed.links.keys()).collect();
    let profiles_written: Vec<&String> = profiles.iter().copied().collect();
    let writes = profiles.into_iter().map(|profile| {
        let events = routed
            .events
            .get(profile)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let links = routed
            .links
            .get(profile)
            .map(Vec::as_slice)
            .unwrap_or_default();
        profile_store::ingest(env, profile, events, links, &sources)
    });
    let mut summaries = Vec::new();
    for (profile, outcome) in profiles_written
        .into_iter()
        .zip(futures_util::future::join_all(writes).await)
    {
        if let Some(summary) = outcome?.summary {
            summaries.push((profile.clone(), summary));
        }
    }
    if !summaries.is_empty() {
        directory::put(env, summaries).await?;
    }
    if !fresh_keys.is_empty() {
        dedup::record(env, &fresh_keys, Date::now().as_millis() as i64).await?;
    }
    let archives = batches
        .iter()
        .filter(|(_, q)| !q.replay)
        .map(|(id, q)| archive::store(env, id, q, &routed.suppressed));
    for outcome in futures_util::future::join_all(archives).await {
        outcome?;
    }
    *counts.entry("delivered".into()).or_default() += delivered;
    for (_, queued) in batches {
        if let Some((job, chunk)) = &queued.job {
            // Progress is a report, not delivery: a failure here is logged, not retried.
            if let Err(e) = import_job::chunk_delivered(env, job, *chunk, queued.events.len()).await
            {
                worker::console_error!("import progress of {job} not recorded: {e}");
            }
        }
    }
    Ok(())
}
