//! The queue consumer: delivers queued events to their profiles exactly once.
//!
//! For each batch of messages: drop copies within the batch, send the events to their
//! profiles (all at once; a profile stores each `messageId` once, which is what makes a
//! redelivered event a duplicate, with no index of its own to write), archive the batch,
//! acknowledge the messages. When that fails, the batch's events are tried again by person (each
//! group of events linked by their identifiers, across messages, on its own): what
//! succeeds is settled, and only what failed is retried (a whole message when nothing of
//! it went through, else its failed events as a new message). Every step is idempotent, so a
//! retry can only repeat work the profile store absorbs, never skip an event. A message
//! that keeps failing goes to the dead-letter queue, which this consumer counts and
//! archives under `dead/`.
//!
//! Counters: those a message carries from the collector are added once per message,
//! however often it is delivered (see [`stats::add_once`]); the consumer's own are added
//! for deliveries that succeeded, so a retried failure does not count its events twice.
//! Both go in one call per queue batch.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cdp_protocol::event::Event;
use cdp_protocol::identity::{identifiers_of, linked_groups};
use cdp_protocol::routing::turns;
use wasm_bindgen::JsValue;
use worker::{Date, Env, MessageBatch, MessageExt, RawMessage, Result};

use crate::audiences::registry::{self, Definitions};
use crate::config::{Config, ARCHIVE, DEAD_LETTER_QUEUE};
use crate::queue::QueuedBatch;
use crate::stats::{self, Counter, Counts};
use crate::{activation, archive, catalog, directory, import_job, profile_store, queue, resolver};

/// Handles one batch of queue messages (from the events queue or its dead-letter queue).
///
/// The messages of a batch are delivered together (one write per profile, one directory
/// round), which keeps the number of Durable Object calls per event low.
pub async fn consume(
    batch: MessageBatch<JsValue>,
    env: &Env,
    deliveries: &queue::Deliveries,
) -> Result<()> {
    let dead_letters = batch.queue() == DEAD_LETTER_QUEUE;
    let mut counts = Counts::new();
    let mut readable = Vec::new();
    let mut carried = Vec::new();
    for message in batch.raw_iter() {
        let text = message.body().as_string().unwrap_or_default();
        if dead_letters {
            let events =
                serde_json::from_str::<QueuedBatch>(&text).map_or(1, |b| b.events.len() as i64);
            let key = [
                archive::DEAD_PREFIX,
                &archive::hour_prefix(Date::now().as_millis() as i64)[4..],
                &message.id(),
                ".json",
            ]
            .concat();
            crate::meter::add(crate::meter::Cost::R2ClassA, 1);
            match env
                .bucket(ARCHIVE)?
                .put(key, text.into_bytes())
                .execute()
                .await
            {
                // Counted once kept, so a failed put retried is not counted twice.
                Ok(_) => {
                    stats::bump(&mut counts, Counter::DeadLettered, events);
                    message.ack();
                }
                Err(_) => message.retry(),
            }
            continue;
        }
        match serde_json::from_str::<QueuedBatch>(&text) {
            Ok(mut queued) => {
                carried.push(stats::Carried {
                    first_time: !deliveries.seen_before(&message.id()),
                    id: message.id(),
                    counts: std::mem::take(&mut queued.counts),
                });
                readable.push((message, queued));
            }
            Err(e) => {
                // Never readable: retried until the queue moves it to the dead-letter queue.
                worker::console_error!("unreadable queue message {}: {e}", message.id());
                stats::bump(&mut counts, Counter::QueueRetries, 1);
                message.retry();
            }
        }
    }
    let outcome = deliver_all(env, &readable, deliveries, &mut counts).await;
    // The counters the messages carry are added whether they are delivered now, retried or
    // dead-lettered (they describe what the collector accepted, once), with the consumer's
    // own for what went through, in one call, whatever happened.
    stats::add_once(env, carried, counts).await;
    outcome
}

/// Delivers the readable messages in turns, replays apart, and settles each message.
async fn deliver_all(
    env: &Env,
    readable: &[(RawMessage, QueuedBatch)],
    deliveries: &queue::Deliveries,
    counts: &mut Counts,
) -> Result<()> {
    if readable.is_empty() {
        return Ok(());
    }
    // Read once per delivery and passed to every profile written, with their version.
    let audiences = registry::definitions(env).await?;
    // Replays apart from new events: a replayed event that the store held already is not
    // counted again (as delivered or as a duplicate), as it was counted the first time.
    for replay in [false, true] {
        let all: Vec<&(RawMessage, QueuedBatch)> = readable
            .iter()
            .filter(|(_, q)| q.replay == replay)
            .collect();
        for these in turns(&all, |(_, q)| q.events.len(), EVENTS_PER_DELIVERY) {
            let batches: Vec<(String, &QueuedBatch)> =
                these.iter().map(|(m, q)| (m.id(), q)).collect();
            let mut attempt = Counts::new();
            // Handed over before (or its events were, in another message): the profiles may
            // have stored them without their membership changes being sent.
            let again = these
                .iter()
                .any(|(m, q)| q.again || deliveries.seen_before(&m.id()));
            match deliver(env, &batches, &audiences, again, &mut attempt).await {
                Ok(()) => {
                    add(counts, attempt);
                    these.iter().for_each(|(m, _)| m.ack());
                }
                Err(e) => {
                    worker::console_error!("delivery of a batch failed, isolating: {e}");
                    isolate(env, these, &audiences, counts).await?;
                }
            }
        }
    }
    Ok(())
}

/// Most events one delivery handles at once. A queue batch of 100 messages of a full
/// Segment batch each is 40,000 events or more, more than one invocation's memory holds
/// with their profiles' answers; its messages are delivered in turns of about this many.
const EVENTS_PER_DELIVERY: usize = 2_000;

fn add(counts: &mut Counts, more: Counts) {
    for (name, value) in more {
        *counts.entry(name).or_default() += value;
    }
}

/// After a batch failed: its events are grouped by person across its messages (events
/// linked by their identifiers), and each group is delivered on its own, so one person
/// whose events keep failing holds up nobody else, at one delivery per person rather than
/// per message. Then each message is settled: acknowledged when all of it went through,
/// retried when none did, and otherwise its failed events go back to the queue on their own.
async fn isolate(
    env: &Env,
    readable: &[&(RawMessage, QueuedBatch)],
    audiences: &Definitions,
    counts: &mut Counts,
) -> Result<()> {
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    let events: Vec<(usize, &Event)> = readable
        .iter()
        .enumerate()
        .flat_map(|(m, (_, q))| q.events.iter().map(move |e| (m, e)))
        .collect();
    let ids: Vec<_> = events
        .iter()
        .map(|(_, e)| identifiers_of(e, &config.rules.identifiers))
        .collect();
    let mut failed: Vec<Vec<Event>> = vec![Vec::new(); readable.len()];
    let mut delivered_some = vec![false; readable.len()];
    for (n, members) in linked_groups(&ids).into_iter().enumerate() {
        // The group's part of each message it touches, archived under a name of its own.
        let mut parts: BTreeMap<usize, QueuedBatch> = BTreeMap::new();
        for i in members {
            let (m, event) = events[i];
            parts
                .entry(m)
                .or_insert_with(|| readable[m].1.part())
                .events
                .push(event.clone());
        }
        let batches: Vec<(String, &QueuedBatch)> = parts
            .iter()
            .map(|(m, part)| {
                (
                    [readable[*m].0.id(), "-".into(), n.to_string()].concat(),
                    part,
                )
            })
            .collect();
        let mut attempt = Counts::new();
        // After a failed delivery: the profiles may have stored part of it already.
        match deliver(env, &batches, audiences, true, &mut attempt).await {
            Ok(()) => {
                add(counts, attempt);
                parts.keys().for_each(|m| delivered_some[*m] = true);
            }
            Err(e) => {
                worker::console_error!("delivery failed, will retry: {e}");
                for (m, part) in parts {
                    failed[m].extend(part.events);
                }
            }
        }
    }
    for (m, (message, queued)) in readable.iter().copied().enumerate() {
        let failed = std::mem::take(&mut failed[m]);
        if failed.is_empty() {
            // Delivered in parts (which carry no job): the chunk is through as a whole.
            if let Some((job, chunk)) = &queued.job {
                report_chunk(env, job, *chunk, queued.chunk_events()).await;
            }
            message.ack();
            continue;
        }
        stats::bump(counts, Counter::QueueRetries, 1);
        if !delivered_some[m] {
            message.retry();
            continue;
        }
        // Part of the message went through: only its failed events are tried again, as a
        // message of their own (its own retries, then the dead-letter queue).
        match queue::requeue(env, queued, failed).await {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("requeue failed, retrying the whole message: {e}");
                message.retry();
            }
        }
    }
    Ok(())
}

/// Records that an import chunk reached the profiles. Progress is a report, not delivery:
/// a failure here is logged, not retried.
async fn report_chunk(env: &Env, job: &str, chunk: u32, events: usize) {
    if let Err(e) = import_job::chunk_delivered(env, job, chunk, events).await {
        worker::console_error!("import progress of {job} not recorded: {e}");
    }
}

/// Delivers `batches` to their profiles; `again` when they may have reached them before.
async fn deliver(
    env: &Env,
    batches: &[(String, &QueuedBatch)],
    audiences: &Definitions,
    again: bool,
    counts: &mut Counts,
) -> Result<()> {
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    let mut fresh = Vec::new();
    let mut in_batch = HashSet::new();
    let mut sources = BTreeMap::new();
    for (_, queued) in batches {
        let source = match config.sources.by_key(&queued.source) {
            Some(s) => s.name.clone(),
            None if queued.source == catalog::CATALOG_SOURCE => "catalog".to_owned(),
            None => "unknown source".to_owned(),
        };
        for event in &queued.events {
            // A copy within the delivery is dropped here; one delivered before is dropped
            // by its profile, which stores each messageId once.
            if !in_batch.insert(event.message_id.clone()) {
                stats::bump(counts, Counter::Duplicates, 1);
                continue;
            }
            sources.insert(event.message_id.clone(), source.clone());
            fresh.push(event.clone());
        }
    }
    // Before identity and the profiles, so computed traits, audiences and reports all see
    // the catalog's fields.
    let enriched = catalog::Enricher::apply(env, &mut fresh).await?;
    stats::bump(counts, Counter::CatalogEnriched, enriched as i64);
    let routed = resolver::resolve(env, fresh, &config.rules, counts, !again).await?;
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
        profile_store::ingest(env, profile, events, links, &sources, audiences, again)
    });
    let mut summaries = Vec::new();
    let mut changes = Vec::new();
    let mut suppressed = routed.suppressed.clone();
    // What reached a profile: erased people's events and those without a usable
    // identifier are counted as such by the resolver; what a profile held already is a
    // duplicate.
    let mut newly_stored = 0;
    let mut held_before = 0;
    for (profile, outcome) in profiles_written
        .into_iter()
        .zip(futures_util::future::join_all(writes).await)
    {
        let report = outcome?;
        newly_stored += report.stored as i64;
        held_before += report.duplicates as i64;
        if let Some(summary) = report.summary {
            summaries.push((profile.clone(), summary));
        }
        changes.extend(report.changes);
        // Erased after resolution: the erased person's, dropped and not archived.
        stats::bump(counts, Counter::Suppressed, report.erased.len() as i64);
        suppressed.extend(report.erased);
    }
    if !summaries.is_empty() {
        directory::put(env, summaries).await?;
    }
    archive::store(env, batches, &suppressed).await?;
    // The profiles handed their membership changes to the delivery; if sending them fails,
    // the delivery is tried again, and the profiles hand them over again (`again`).
    activation::publish(env, &changes).await?;
    let replay = batches.iter().all(|(_, q)| q.replay);
    if replay {
        // What a replay meets again was counted when it was first delivered.
        for counted in [
            Counter::Duplicates,
            Counter::Suppressed,
            Counter::Unlinked,
            Counter::CatalogEnriched,
        ] {
            counts.remove(counted.name());
        }
        let sent_again: usize = batches.iter().map(|(_, q)| q.events.len()).sum();
        stats::bump(counts, Counter::Replayed, sent_again as i64);
    }
    stats::bump(counts, Counter::Delivered, newly_stored);
    if !replay {
        stats::bump(counts, Counter::Duplicates, held_before);
    }
    let events = batches.iter().flat_map(|(_, q)| q.events.iter());
    crate::event_schema::learn(env, events, Date::now().as_millis() as i64).await;
    for (_, queued) in batches {
        if let Some((job, chunk)) = &queued.job {
            // Progress is a report, not delivery: a failure here is logged, not retried.
            report_chunk(env, job, *chunk, queued.chunk_events()).await;
        }
    }
    Ok(())
}
