//! What a change to a profile sends out, and when: one hook, an outbox and deadlines.
//!
//! [`after_change`](ProfileStore::after_change) runs after every write that changes what the
//! profile shows (ingest, a merge in or out, an unmerge, erasure, a deadline that came). In
//! the same synchronous stretch as the change, so in the same SQLite transaction, it writes
//! the profile's notice for the directory (its summary, or its removal) and sets the
//! profile's deadlines. [`drain`](ProfileStore::drain) then sends what the outbox holds and
//! removes what was sent; what could not be sent stays, and a deadline retries it. A change
//! is never saved while its notice is lost.
//!
//! Ingest is the one exception to the outbox: its caller, the queue consumer, publishes the
//! summaries of a whole delivery at once (one directory call per shard, not one per
//! profile), and its delivery is retried until that succeeds, which is the same guarantee.
//!
//! Deadlines are one table of `(kind, at)` behind the object's single alarm, set to the
//! earliest: the abandoned cart (search learns of it on time, with no new event), the
//! audiences' next verdict change (see [`membership`](super::membership)) and the
//! outbox's retry.

use cdp_protocol::computed::Aggregate;
use serde_json::{json, Value};
use worker::Result;

use super::object::ProfileStore;
use super::Text;
use crate::{config, directory};

/// A deadline's kind: what the alarm does when it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    /// The cart turns abandoned: the directory must learn it.
    Cart,
    /// The outbox holds notices a send failed to deliver.
    Outbox,
    /// An audience verdict can change by itself (a window runs out).
    Audience,
}

impl Deadline {
    fn name(self) -> &'static str {
        match self {
            Self::Cart => "cart",
            Self::Outbox => "outbox",
            Self::Audience => "audience",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "cart" => Some(Self::Cart),
            "outbox" => Some(Self::Outbox),
            "audience" => Some(Self::Audience),
            _ => None,
        }
    }
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
        let audiences = self.evaluate_audiences(summary.as_ref(), now)?;
        if let Some(doc) = summary.as_mut() {
            doc["audiences"] = json!(audiences);
        }
        if notify == Notify::Outbox {
            self.notify_directory(summary.as_ref())?;
        }
        let abandon_after = config::computed_settings(&self.env).abandon_after;
        match aggregate.abandons_at(abandon_after).filter(|at| *at > now) {
            // A second late: the cart counts as abandoned from its instant on.
            Some(at) if summary.is_some() => self.schedule(Deadline::Cart, at + 1_000)?,
            _ => self.unschedule(Deadline::Cart)?,
        }
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
        self.sql().exec(
            "INSERT OR REPLACE INTO outbox (target, body) VALUES ('directory', ?)",
            vec![notice.to_string().into()],
        )?;
        Ok(())
    }

    /// Whether the outbox holds anything to send.
    pub(super) fn outbox_waiting(&self) -> Result<bool> {
        Ok(!self
            .sql()
            .exec("SELECT target AS value FROM outbox LIMIT 1", None)?
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
            .exec("SELECT target, body FROM outbox ORDER BY rowid", None)?
            .to_array::<Notice>()?;
        for notice in notices {
            let sent = if notice.target.starts_with("membership:") {
                self.send_membership(&notice.body).await
            } else {
                self.send(&notice.body).await
            };
            if let Err(e) = sent {
                worker::console_error!("profile notice not sent, retrying: {e}");
                self.schedule(Deadline::Outbox, now + RETRY_AFTER_MS)?;
                return self.arm(now).await;
            }
            self.sql().exec(
                "DELETE FROM outbox WHERE target = ? AND body = ?",
                vec![notice.target.into(), notice.body.into()],
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

    /// The alarm: runs the deadlines that have come, then waits for the next.
    pub(super) async fn run_deadlines(&self, now: i64) -> Result<()> {
        let due = self
            .sql()
            .exec(
                "SELECT kind AS value FROM deadlines WHERE at <= ?",
                vec![now.into()],
            )?
            .to_array::<Text>()?;
        for kind in due.iter().filter_map(|d| Deadline::parse(&d.value)) {
            self.unschedule(kind)?;
            if matches!(kind, Deadline::Cart | Deadline::Audience) {
                self.after_change(&self.aggregate()?, now, Notify::Outbox)?;
            }
        }
        // Retention's deadline is worked out, not stored: an anonymous profile's follows
        // its last event, which every ingest moves.
        let aggregate = self.aggregate()?;
        if self
            .retention_deadline(&aggregate)?
            .is_some_and(|at| at <= now)
            && self.meta("merged_into")?.is_none()
        {
            self.expire(now).await?;
            self.after_change(&self.aggregate()?, now, Notify::Outbox)?;
        }
        // Every deadline kind ends in sending what is waiting.
        self.drain(now).await
    }

    /// Sets deadline `kind` to `at`; written only when it changes (most ingests leave the
    /// cart's deadline where it was, and a row read costs less than a row written).
    pub(super) fn schedule(&self, kind: Deadline, at: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO deadlines (kind, at) VALUES (?, ?)
             ON CONFLICT (kind) DO UPDATE SET at = excluded.at WHERE at != excluded.at",
            vec![kind.name().into(), at.into()],
        )?;
        Ok(())
    }

    pub(super) fn unschedule(&self, kind: Deadline) -> Result<()> {
        self.sql().exec(
            "DELETE FROM deadlines WHERE kind = ?",
            vec![kind.name().into()],
        )?;
        Ok(())
    }

    /// Sets the alarm to the earliest deadline (retention's among them), or clears it
    /// when there is none.
    pub(super) async fn arm(&self, now: i64) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct Next {
            at: Option<i64>,
        }
        let stored = self
            .sql()
            .exec("SELECT MIN(at) AS at FROM deadlines", None)?
            .to_array::<Next>()?
            .into_iter()
            .next()
            .and_then(|n| n.at);
        let retention = if self.meta("merged_into")?.is_some() {
            None
        } else {
            self.retention_deadline(&self.aggregate()?)?
        };
        let next = match (stored, retention) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let storage = self.state().storage();
        match next {
            // `set_alarm` reads an integer as an offset from now, not as a time.
            Some(at) => {
                let offset = std::time::Duration::from_millis((at - now).max(0) as u64);
                storage.set_alarm(offset).await
            }
            None => storage.delete_alarm().await,
        }
    }
}
