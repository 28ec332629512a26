//! The queue between the collector and the profile store: what a message holds and how
//! the collector sends accepted events into it.

use cdp_protocol::event::Event;
use serde::{Deserialize, Serialize};
use worker::{Env, Result};

use crate::config::EVENTS;

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
    /// Re-ingested from the archive: skip the dedup check (the profile store's own
    /// idempotency still holds), so a replay can restore what a store lost.
    #[serde(default)]
    pub replay: bool,
}

/// Splits events into messages under the queue's size limit, in order.
fn split(events: Vec<Event>) -> Vec<Vec<Event>> {
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

/// Sends events durably into the queue; resolves once the queue has them all.
pub async fn enqueue(
    env: &Env,
    source: &str,
    received_at: i64,
    events: Vec<Event>,
    replay: bool,
) -> Result<()> {
    let queue = env.queue(EVENTS)?;
    for chunk in split(events) {
        let message = QueuedBatch {
            source: source.to_owned(),
            received_at,
            events: chunk,
            replay,
        };
        let text =
            serde_json::to_string(&message).map_err(|e| worker::Error::RustError(e.to_string()))?;
        queue.send(text).await?;
    }
    Ok(())
}
