//! The queue between the collector and the profile store: what a message holds and how
//! the collector sends accepted events into it.

use cdp_protocol::event::Event;
use serde::{Deserialize, Serialize};
use worker::{Env, Result};

use crate::config::{EVENTS, MAX_EVENT_PARTITIONS};
use crate::meter;
use crate::stats::Counts;

/// How many times the queue has handed over each message of a batch (its `attempts`: 1 the
/// first time), by message id.
#[derive(Debug, Default)]
pub struct Deliveries(std::collections::HashMap<String, u32>);

impl Deliveries {
    /// Read from the batch as the runtime gives it (the `worker` crate's messages do not
    /// carry `attempts`).
    pub fn of(batch: &worker::worker_sys::MessageBatch) -> Self {
        let field = |message: &wasm_bindgen::JsValue, name: &str| {
            js_sys::Reflect::get(message, &name.into()).ok()
        };
        let messages = batch.messages().map(|a| a.to_vec()).unwrap_or_default();
        Self(
            messages
                .iter()
                .filter_map(|m| {
                    let id = field(m, "id")?.as_string()?;
                    let attempts = field(m, "attempts")?.as_f64()?;
                    Some((id, attempts as u32))
                })
                .collect(),
        )
    }

    /// Whether message `id` may have been handed over before: its attempts say so, or the
    /// runtime did not tell.
    pub fn seen_before(&self, id: &str) -> bool {
        self.0.get(id).is_none_or(|attempts| *attempts > 1)
    }
}

thread_local! {
    /// How many event queue partitions are bound, learnt once per isolate.
    static PARTITIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many event queues are bound: `EVENTS`, then `EVENTS_1`, `EVENTS_2`, … as far as they
/// go without a gap. Each has its own consumer, one at a time, so the consumers of
/// different partitions run at once (see README, Scale).
pub fn partitions(env: &Env) -> usize {
    PARTITIONS.with(|known| {
        if known.get() == 0 {
            let bound = (1..MAX_EVENT_PARTITIONS)
                .take_while(|p| env.queue(&event_binding(*p)).is_ok())
                .count();
            known.set(1 + bound);
        }
        known.get()
    })
}

/// The binding of event queue partition `p`.
fn event_binding(p: usize) -> String {
    if p == 0 {
        EVENTS.to_owned()
    } else {
        format!("{EVENTS}_{p}")
    }
}

/// The event queue binding that `events` go to: the partition of their device.
fn events_queue(env: &Env, events: &[Event]) -> String {
    event_binding(cdp_protocol::routing::partition(events, partitions(env)))
}

/// Most messages one send may carry.
const SEND_MESSAGES: usize = 100;
/// Most bytes one send may carry (the queue's 256 KB, less room for the envelopes).
const SEND_BYTES: usize = 240 * 1024;

/// Sends `bodies` (text messages) to the queue bound as `binding`, in as few sends as the
/// queue's limits per send allow (messages and bytes).
pub async fn send_texts(env: &Env, binding: &str, bodies: Vec<String>) -> Result<()> {
    if bodies.is_empty() {
        return Ok(());
    }
    let queue = env.queue(binding)?;
    for turn in cdp_protocol::routing::turns(&bodies, String::len, SEND_BYTES) {
        for chunk in turn.chunks(SEND_MESSAGES) {
            let messages: Vec<_> = chunk
                .iter()
                .map(|b| worker::MessageBuilder::new(b.clone()).build())
                .collect();
            chunk.iter().for_each(|b| meter::queue_write(b.len()));
            queue.send_batch(messages).await?;
        }
    }
    Ok(())
}

/// A queue message must stay under 128 KB; leave room for the envelope.
const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// One queue message: accepted, enriched events of one source.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedBatch {
    /// The source's write key.
    pub source: String,
    /// When the collector received them (ms).
    pub received_at: i64,
    /// The events.
    pub events: Vec<Event>,
    /// Re-ingested from the archive: what its profiles held already is not counted as a
    /// duplicate (it was counted when first delivered), and what they lost is restored.
    #[serde(default)]
    pub replay: bool,
    /// The collector's counters for the request, added by the consumer: one write to the
    /// counters per delivered batch instead of one per request.
    #[serde(default)]
    pub counts: Counts,
    /// The offline import job and the chunk number this message is, for its progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<(String, u32)>,
    /// How many events the job's chunk held, when this message is only the part of it that
    /// failed (its progress reports the whole chunk once this part is through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_events: Option<usize>,
    /// Its events may have reached their profiles before (the part of a message that failed
    /// after the rest went through, or a dead letter sent again), though the queue hands it
    /// over for the first time: its profiles hand back the membership changes they recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
}

impl QueuedBatch {
    /// An empty message of the same source, time and kind, for part of this one's events;
    /// it carries no counters (they were counted with this message).
    pub fn part(&self) -> Self {
        Self {
            source: self.source.clone(),
            received_at: self.received_at,
            events: Vec::new(),
            replay: self.replay,
            counts: Counts::new(),
            job: None,
            chunk_events: None,
            again: false,
        }
    }

    /// The message as the queue carries it.
    pub fn to_text(&self) -> Result<String> {
        serde_json::to_string(self).map_err(worker::Error::from)
    }

    /// The events of the job's chunk this message completes.
    pub fn chunk_events(&self) -> usize {
        self.chunk_events.unwrap_or(self.events.len())
    }
}

/// Sends `events`, the part of `queued` that failed while the rest was delivered, back to
/// the queue as a message of their own, a little later (the queue's first retry delay).
pub async fn requeue(env: &Env, queued: &QueuedBatch, events: Vec<Event>) -> Result<()> {
    let message = QueuedBatch {
        events,
        job: queued.job.clone(),
        chunk_events: Some(queued.chunk_events()),
        again: true,
        ..queued.part()
    };
    let text = message.to_text()?;
    meter::queue_write(text.len());
    let delayed = worker::MessageBuilder::new(text).delay_seconds(1).build();
    env.queue(&events_queue(env, &message.events))?
        .send(delayed)
        .await
}

/// Sends messages read back from the dead-letter store to the queue again, as they were
/// but without their counters (counted when they were first accepted).
pub async fn resend(env: &Env, messages: Vec<QueuedBatch>) -> Result<()> {
    let mut by_queue: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for mut message in messages {
        message.counts = Counts::new();
        message.again = true;
        let text = message.to_text()?;
        by_queue
            .entry(events_queue(env, &message.events))
            .or_default()
            .push(text);
    }
    for (binding, texts) in by_queue {
        send_texts(env, &binding, texts).await?;
    }
    Ok(())
}

/// Splits events into messages under the queue's size limit, in order. `source_bytes` is the
/// size of the request body they came from: when it and what enrichment adds (well under
/// 2 KB an event) fit in one message, nothing needs measuring.
fn split(events: Vec<Event>, source_bytes: usize) -> Vec<Vec<Event>> {
    if source_bytes.saturating_add(events.len().saturating_mul(2_048)) < MAX_MESSAGE_BYTES {
        return vec![events];
    }
    let mut messages = vec![Vec::new()];
    let mut bytes = 0;
    for event in events {
        let size = serde_json::to_string(&event.body)
            .map(|s| s.len())
            .unwrap_or(0)
            + 256;
        if bytes + size > MAX_MESSAGE_BYTES && messages.last().is_some_and(|m| !m.is_empty()) {
            messages.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = messages.last_mut() {
            last.push(event);
        }
    }
    messages.retain(|m| !m.is_empty());
    messages
}

/// What the collector knows of a request whose events it enqueues.
pub struct Origin<'a> {
    /// The source's write key.
    pub source: &'a str,
    /// When the request was received (ms).
    pub received_at: i64,
    /// Size of the (decompressed) request body; `usize::MAX` when unknown.
    pub body_bytes: usize,
    /// Re-ingested from the archive.
    pub replay: bool,
    /// The offline import job the events belong to.
    pub job: Option<&'a str>,
}

/// Sends events durably into the queue; resolves once the queue has them all, to the
/// number of messages sent. `counts` travel with the first message.
pub async fn enqueue(
    env: &Env,
    origin: Origin<'_>,
    events: Vec<Event>,
    mut counts: Counts,
) -> Result<u32> {
    // Every part of one request to one partition, so they are delivered in order.
    let queue = env.queue(&events_queue(env, &events))?;
    let Origin {
        source,
        received_at,
        body_bytes,
        replay,
        job,
    } = origin;
    let mut sent = 0;
    for chunk in split(events, body_bytes) {
        let mut message = QueuedBatch {
            source: source.to_owned(),
            received_at,
            events: chunk,
            replay,
            counts: Counts::new(),
            job: job.map(|j| (j.to_owned(), sent)),
            chunk_events: None,
            again: false,
        };
        if sent == 0 {
            // The first message carries the request's counters, and with them what the
            // request cost (its own write included, measured without the counters).
            meter::queue_write(message.to_text()?.len());
            meter::flush_into(env, &mut counts);
            message.counts = std::mem::take(&mut counts);
            queue.send(message.to_text()?).await?;
        } else {
            let text = message.to_text()?;
            meter::queue_write(text.len());
            queue.send(text).await?;
        }
        sent += 1;
    }
    Ok(sent)
}
