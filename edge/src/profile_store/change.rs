//! What a change to a profile sends out, and when: one hook, an outbox and deadlines.
//!
//! [`after_change`](ProfileStore::after_change) runs after every write that changes what the
//! profile shows (ingest, a merge in or out, an unmerge, erasure, a deadline that came). In
//! the same synchronous stretch as the change, so in the same SQLite transaction, it writes
//! the profile's notice for the directory (its summary, or its removal) and works out the
//! profile's deadlines. [`drain`](ProfileStore::drain) then sends what the outbox holds and
//! removes what was sent; what could not be sent stays, and a deadline retries it. A change
//! is never saved while its notice is lost.
//!
//! Ingest is the one exception to the outbox: its caller, the queue consumer, publishes the
//! summaries of a whole delivery at once (one directory call per shard, not one per
//! profile), and its delivery is retried until that succeeds, which is the same guarantee.
//! It sends the delivery's membership changes too. A retried delivery meets its events as
//! duplicates, which cause no change, so the profile hands back the changes its timeline
//! recorded with them (`again`): sent at least once, as the outbox sends them, without the
//! outbox's two rows per change (the entry and its removal).
//!
//! The deadlines (the abandoned cart, so search learns of it on time with no new event;
//! the audiences' next verdict change, see [`membership`](super::membership); retention;
//! the outbox's retry) are worked out, not stored: the object's one alarm is set to the
//! earliest, and when it comes everything is worked out again. Most ingests move a
//! deadline (a new product view moves a "viewed within 30 days" window), and a row
//! written costs a thousand rows read; an alarm that comes early only works things out
//! once more.

use cdp_protocol::computed::Aggregate;
use serde_json::{json, Value};
use worker::Result;

use super::object::ProfileStore;
use super::table::OUTBOX;
use super::Text;
use crate::{config, directory};

/// The deadlines an evaluation in this request worked out (the cart's, the audiences' and
/// retention's), for [`ProfileStore::arm`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Plan {
    /// Whether the deadlines were worked out since the alarm was last set.
    pub worked_out: bool,
    /// The earliest of them.
    pub earliest: Option<i64>,
}

/// Who sends the directory notice of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notify {
    /// The outbox (then [`ProfileStore::drain`]).
    Outbox,
    /// The caller, with the answer (ingest: the consumer publishes a delivery at once).
    Caller,
}

/// How long a failed send waits before the alarm tries it again.
const RETRY_AFTER_MS: i64 = 5_000;

impl ProfileStore {
    /// The hook every change ends with (synchronous: it belongs to the change's
    /// transaction): the directory notice, in the outbox or for the caller, and the
    /// deadlines as of `now`. Returns the summary (`None`: the profile is gone).
    pub(super) fn after_change(
        &self,
        aggregate: &Aggregate,
        now: i64,
        notify: Notify,
    ) -> Result<Option<Value>> {
        let mut summary = self.summary(aggregate, now)?;
        let (audiences, audience_change) = self.evaluate_audiences(summary.as_ref(), now)?;
        if let Some(doc) = summary.as_mut() {
            doc["audiences"] = json!(audiences);
        }
        if notify == Notify::Outbox {
            self.notify_directory(summary.as_ref())?;
        }
        let abandon_after = config::computed_settings(&self.env).abandon_after;
        // A second late: the cart counts as abandoned from its instant on.
        let cart = aggregate
            .abandons_at(abandon_after)
            .filter(|at| *at > now && summary.is_some())
            .map(|at| at + 1_000);
        let retention = if self.meta("merged_into")?.is_some() {
            None
        } else {
            self.retention_deadline(aggregate)?
        };
        self.plan.set(Plan {
            worked_out: true,
            earliest: earliest([cart, audience_change, retention]),
        });
        Ok(summary)
    }

    /// Puts the directory's notice of the profile as `summary` shows it (`None`: gone) in
    /// the outbox.
    pub(super) fn notify_directory(&self, summary: Option<&Value>) -> Result<()> {
        let Some(id) = self.meta("id")? else {
            return Ok(());
        };
        let notice = match summary {
            Some(doc) => json!({"put": doc}),
            None => json!({"remove": id}),
        };
        // One notice per target: a newer change replaces one not yet sent.
        self.put_in_outbox("directory", &notice.to_string())
    }

    /// Puts `body` in the outbox for `target` (`directory`, or `membership:<number>`).
    /// The outbox is keys of `meta` (see [`table`](super::table)).
    pub(super) fn put_in_outbox(&self, target: &str, body: &str) -> Result<()> {
        self.sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![[OUTBOX.prefix(), target].concat().into(), body.into()],
        )?;
        Ok(())
    }

    /// Whether the outbox holds anything to send.
    pub(super) fn outbox_waiting(&self) -> Result<bool> {
        Ok(!self
            .sql()
            .exec(
                &[
                    "SELECT key AS value FROM meta WHERE ",
                    &OUTBOX.picks(""),
                    " LIMIT 1",
                ]
                .concat(),
                None,
            )?
            .to_array::<Text>()?
            .is_empty())
    }

    /// Sends what the outbox holds, removing each notice once sent (unless a newer change
    /// replaced it meanwhile); on a failure, the alarm tries again shortly.
    pub(super) async fn drain(&self, now: i64) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct Notice {
            target: String,
            body: String,
        }
        let notices = self
            .sql()
            .exec(
                &format!(
                    "SELECT substr(key, {}) AS target, value AS body FROM meta
                     WHERE {} ORDER BY length(key), key",
                    OUTBOX.prefix().len() + 1,
                    OUTBOX.picks("")
                ),
                None,
            )?
            .to_array::<Notice>()?;
        for notice in notices {
            let sent = if notice.target.starts_with("membership:") {
                self.send_membership(&notice.body).await
            } else {
                self.send(&notice.body).await
            };
            if let Err(e) = sent {
                // It stays in the outbox, so the alarm retries it.
                worker::console_error!("profile notice not sent, retrying: {e}");
                return self.arm(now).await;
            }
            self.sql().exec(
                "DELETE FROM meta WHERE key = ? AND value = ?",
                vec![
                    [OUTBOX.prefix(), &notice.target].concat().into(),
                    notice.body.into(),
                ],
            )?;
        }
        self.arm(now).await
    }

    /// A membership change, to the activation queue (in order: the outbox is read by
    /// rowid, and a failed send stops the drain).
    async fn send_membership(&self, change: &str) -> Result<()> {
        crate::meter::add(crate::meter::Cost::QueueWrite, 1);
        self.env
            .queue(config::ACTIVATION)?
            .send(worker::MessageBuilder::new(change.to_owned()).build())
            .await
    }

    async fn send(&self, notice: &str) -> Result<()> {
        let notice: Value = serde_json::from_str(notice).map_err(worker::Error::from)?;
        match (
            notice.get("put"),
            notice.get("remove").and_then(Value::as_str),
        ) {
            (Some(doc), _) => {
                let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
                directory::put(&self.env, vec![(id.to_owned(), doc.clone())]).await
            }
            (None, Some(id)) => directory::remove(&self.env, id).await,
            (None, None) => Ok(()),
        }
    }

    /// The alarm: whichever deadline came (or none, if one moved later since), the
    /// profile is evaluated again, retention applied if due, and the outbox sent.
    pub(super) async fn run_deadlines(&self, now: i64) -> Result<()> {
        // Retention's deadline follows the last event, which every ingest moves.
        let aggregate = self.aggregate()?;
        if self
            .retention_deadline(&aggregate)?
            .is_some_and(|at| at <= now)
            && self.meta("merged_into")?.is_none()
        {
            self.expire(now).await?;
        }
        self.after_change(&self.aggregate()?, now, Notify::Outbox)?;
        self.drain(now).await
    }

    /// Sets the alarm to the earliest deadline: the cart's, the audiences' and retention's
    /// as this request worked them out (retention's is worked out here otherwise), and a
    /// retry while the outbox holds notices a send failed to deliver. Without deadlines
    /// worked out in this request, an alarm set earlier is only ever brought forward, never
    /// dropped.
    pub(super) async fn arm(&self, now: i64) -> Result<()> {
        let plan = self.plan.take();
        // Worked out with the plan when there is one (it had the aggregate at hand).
        let retention = if plan.worked_out || self.meta("merged_into")?.is_some() {
            None
        } else {
            self.retention_deadline(&self.aggregate()?)?
        };
        let retry = self.outbox_waiting()?.then_some(now + RETRY_AFTER_MS);
        let storage = self.state().storage();
        let set = storage.get_alarm().await?;
        let kept = if plan.worked_out { None } else { set };
        let next = earliest([plan.earliest, retention, retry, kept]);
        match next {
            // Setting the alarm is a write: not when it is set at most a second early (it
            // was set as an offset, so it is rarely exact; an early alarm only works the
            // deadlines out again and sets it anew).
            Some(at) if set.is_some_and(|s| s <= at && s > at - 1_000) => Ok(()),
            // `set_alarm` reads an integer as an offset from now, not as a time.
            Some(at) => {
                let offset = std::time::Duration::from_millis((at - now).max(0) as u64);
                storage.set_alarm(offset).await
            }
            None if set.is_none() => Ok(()),
            None => storage.delete_alarm().await,
        }
    }
}

/// The earliest of `deadlines`, if any.
fn earliest<const N: usize>(deadlines: [Option<i64>; N]) -> Option<i64> {
    deadlines.into_iter().flatten().min()
}
