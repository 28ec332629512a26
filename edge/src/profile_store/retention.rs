//! Retention in the profile: at its deadline (see `cdp_protocol::retention`), a profile
//! drops the events older than the workspace keeps them, or, anonymous and quiet for too
//! long, deletes itself.
//!
//! What the expired events contributed stays: the live aggregate is not recomputed (its
//! totals, orders and choices include them), and a summary of them alone is kept
//! (`expired` in `meta`) so that a rebuild after a merge or an unmerge starts from it; the
//! events any audience definition reads are kept as facts (`audience_facts`), so a
//! "did buy" audience keeps its members. The timeline and the reports' ledger lose them.

use cdp_protocol::audience;
use cdp_protocol::computed::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use worker::Result;

use super::events::{self, Taken};
use super::object::ProfileStore;
use super::FactRow;
use crate::stats::{self, Counter, Counts};
use crate::{config, identity_index};

/// An expired event an audience definition reads, kept for the audiences.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KeptFact {
    pub r#type: String,
    pub name: Option<String>,
    pub timestamp: i64,
    pub body: String,
}

impl ProfileStore {
    /// What retention left of the profile's events: their summary, for rebuilds.
    pub(super) fn expired(&self) -> Result<Option<Aggregate>> {
        Ok(self
            .meta("expired")?
            .and_then(|a| serde_json::from_str(&a).ok()))
    }

    /// The expired events audiences read.
    pub(super) fn kept_facts(&self) -> Result<Vec<KeptFact>> {
        Ok(self
            .meta("audience_facts")?
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default())
    }

    /// Adds another profile's expired summary and facts (a merge brings them).
    pub(super) fn take_expired(
        &self,
        expired: Option<&Aggregate>,
        facts: &[KeptFact],
    ) -> Result<()> {
        if let Some(theirs) = expired {
            let mut mine = self.expired()?.unwrap_or_default();
            mine.merge(theirs);
            self.set_meta("expired", &serde_json::to_string(&mine)?)?;
        }
        if !facts.is_empty() {
            let mut mine = self.kept_facts()?;
            mine.extend(facts.iter().cloned());
            self.set_meta("audience_facts", &serde_json::to_string(&mine)?)?;
        }
        Ok(())
    }

    /// The oldest stored event's time, read from the events.
    fn oldest_stored(&self) -> Result<Option<i64>> {
        #[derive(Deserialize)]
        struct Oldest {
            at: Option<i64>,
        }
        let stored = self
            .sql()
            .exec(
                &events::with("SELECT MIN(timestamp) AS at FROM events"),
                None,
            )?
            .to_array::<Oldest>()?
            .into_iter()
            .next()
            .and_then(|o| o.at);
        // And this change's events, not written yet (see `in_one_block`): an ingest works
        // retention's deadline out before its block is written.
        let unwritten = self.unwritten_events().iter().map(|e| e.timestamp).min();
        Ok(stored.into_iter().chain(unwritten).min())
    }

    /// Notes the oldest event's time, read from the events (after some left or came).
    pub(super) fn recount_oldest(&self) -> Result<()> {
        match self.oldest_stored()? {
            Some(at) => self.set_meta("oldest", &at.to_string()),
            None => {
                self.sql()
                    .exec("DELETE FROM meta WHERE key = 'oldest'", None)?;
                Ok(())
            }
        }
    }

    /// When retention next has something to do here (`None`: nothing, ever). The oldest
    /// event is the aggregate's first, or, once events have expired, the oldest left
    /// (counted then; a late event older than that waits for the next deadline).
    pub(super) fn retention_deadline(&self, aggregate: &Aggregate) -> Result<Option<i64>> {
        let retention = config::retention(&self.env);
        let (first, last) = aggregate.span();
        let oldest = match self.meta("oldest")?.and_then(|v| v.parse::<i64>().ok()) {
            Some(counted) => Some(counted),
            None if self.meta("expired")?.is_some() => self.oldest_stored()?,
            None => first,
        };
        Ok(retention.next_deadline(oldest, last, self.anonymous_only()?))
    }

    /// Whether the profile holds identifiers, all of them anonymous.
    fn anonymous_only(&self) -> Result<bool> {
        let ids = self.identities()?;
        Ok(!ids.is_empty() && ids.iter().all(|i| i.kind == "anonymousId"))
    }

    /// Runs retention at `now`: the profile deleted, or its expired events dropped; the
    /// counts go to `/v1/stats` (`retention.events_expired`, `retention.profiles_expired`).
    pub(super) async fn expire(&self, now: i64) -> Result<()> {
        let retention = config::retention(&self.env);
        let aggregate = self.aggregate()?;
        let (_, last) = aggregate.span();
        let mut counts = Counts::new();
        if retention.anonymous_expired(self.anonymous_only()?, last.unwrap_or(now), now) {
            let profile = self.meta("id")?.unwrap_or_default();
            let erased = self.erase()?;
            // As an erasure, less the suppression: the memberships stay until the change
            // hook that follows sends their exits, as it does for an erased person.
            self.sql()
                .exec("DELETE FROM meta WHERE key = 'erased_at'", None)?;
            self.set_meta("expired_at", &now.to_string())?;
            // The index forgets its identifiers (only while they still point here).
            identity_index::forget(&self.env, &erased.identifiers, &profile).await?;
            stats::bump(
                &mut counts,
                Counter::RetentionEventsExpired,
                erased.message_ids.len() as i64,
            );
            stats::bump(&mut counts, Counter::RetentionProfilesExpired, 1);
        } else if let Some(cutoff) = retention.events_cutoff(now) {
            let n = self.expire_events(aggregate, cutoff)?;
            stats::bump(&mut counts, Counter::RetentionEventsExpired, n as i64);
        }
        if !counts.is_empty() {
            stats::add(&self.env, counts).await;
        }
        Ok(())
    }

    /// Drops the events before `cutoff`, keeping what they contributed; how many left.
    fn expire_events(&self, mut aggregate: Aggregate, cutoff: i64) -> Result<usize> {
        let sql = self.sql();
        let rows: Vec<FactRow> = sql
            .exec(
                &events::with(
                    "SELECT message_id, type, name, timestamp, body, source FROM events
                 WHERE timestamp < ? ORDER BY timestamp, received_at, seq, message_id",
                ),
                vec![cutoff.into()],
            )?
            .to_array()?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (_, definitions) = self.definitions()?;
        let (names, types) = audience::events_read(&definitions);
        let mut expired = self.expired()?.unwrap_or_default();
        let mut facts = self.kept_facts()?;
        for row in rows
            .iter()
            .filter(|r| r.source.as_deref() != Some("audiences"))
        {
            let body: Map<String, Value> = serde_json::from_str(&row.body).unwrap_or_default();
            row.add_to(&mut expired, &body);
            let read = types.iter().any(|t| *t == row.r#type)
                || (row.r#type == "track"
                    && row
                        .name
                        .as_deref()
                        .is_some_and(|n| names.iter().any(|x| x == n)));
            if read {
                facts.push(KeptFact {
                    r#type: row.r#type.clone(),
                    name: row.name.clone(),
                    timestamp: row.timestamp,
                    body: row.body.clone(),
                });
            }
        }
        expired.forget_report_before(cutoff);
        aggregate.forget_report_before(cutoff);
        self.set_meta("expired", &serde_json::to_string(&expired)?)?;
        self.set_meta("audience_facts", &serde_json::to_string(&facts)?)?;
        self.delete_events(Taken::Before(cutoff))?;
        self.save_aggregate(&aggregate)?;
        self.recount_oldest()?;
        Ok(rows.len())
    }
}
