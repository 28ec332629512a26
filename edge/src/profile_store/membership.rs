//! The profile's audiences: which it is in, kept by evaluating every definition after each
//! change and again, by alarm, at the instant a verdict says it can change by itself.
//!
//! Every entry and exit is recorded three ways, in the change's transaction: the
//! memberships (keys of the profile's table, see [`table`](super::table): what the
//! profile shows), an `Audience Entered` / `Audience Exited` event in its timeline (in
//! the ingest's own block when an ingest caused it), and a numbered membership change for
//! the activation queue: in the outbox, which the drain sends, or, for an ingest, handed to
//! the queue consumer with its answer (see [`change`](super::change)).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use cdp_protocol::audience::{self, Definition, Fact};
use cdp_protocol::destination::Change as MembershipChange;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Result;

use super::events;
use super::object::ProfileStore;
use super::table::{self, MEMBERSHIPS};
use super::{to_json, EventRow as StoredEvent};
use crate::audiences::registry::{self, Definitions};

/// Where membership changes go (the source of the timeline events they write).
pub(super) const SOURCE: &str = "audiences";

#[derive(Deserialize)]
struct Member {
    key: String,
    name: String,
    grp: Option<String>,
    since: i64,
}

#[derive(Deserialize)]
struct EventRow {
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    body: String,
}

/// An entry into an audience or an exit, numbered in the profile's order of changes.
struct Change<'a> {
    entered: bool,
    key: &'a str,
    name: &'a str,
    group: Option<&'a str>,
    seq: i64,
}

/// One audience the profile is in, as the profile shows it.
pub(super) fn shown(key: &str, since: i64) -> Value {
    json!({"key": key, "since": cdp_protocol::time::format_rfc3339(since)})
}

impl ProfileStore {
    /// Keeps `incoming` when it is newer than the definitions this instance holds; with
    /// none held and none incoming, asks the registry. Definitions are held in memory
    /// only: a copy in every profile's storage was a row written per profile. Every
    /// request that evaluates audiences calls this first, before its change begins.
    pub(super) async fn take_definitions(&self, incoming: Option<&Definitions>) -> Result<()> {
        let held = self.parsed.borrow().as_ref().map(|(version, _)| *version);
        match (incoming, held) {
            (Some(incoming), held) if held.is_none_or(|v| incoming.version > v) => {
                self.hold(incoming);
            }
            (None, None) => self.hold(&registry::definitions(&self.env).await?),
            _ => {}
        }
        Ok(())
    }

    fn hold(&self, definitions: &Definitions) {
        *self.parsed.borrow_mut() = Some((definitions.version, Rc::new(definitions.parsed())));
    }

    /// The definitions held (see [`take_definitions`](Self::take_definitions)).
    pub(super) fn definitions(&self) -> Result<(i64, Rc<Vec<Definition>>)> {
        Ok(self
            .parsed
            .borrow()
            .clone()
            .unwrap_or_else(|| (-1, Rc::new(Vec::new()))))
    }

    /// The audiences the profile is in: key and since.
    pub(super) fn memberships(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.held()?.into_iter().map(|m| (m.key, m.since)).collect())
    }

    /// The audiences the profile is in, in the order of their keys.
    fn held(&self) -> Result<Vec<Member>> {
        self.sql()
            .exec(
                &table::with(
                    &[table::memberships()],
                    "SELECT key, name, grp, since FROM memberships WHERE member = 1 ORDER BY key",
                ),
                None,
            )?
            .to_array()
    }

    /// Evaluates every audience for the profile as `doc` shows it (`None`: the profile is
    /// gone, merged away or erased, and leaves them all) at `now`; records entries and
    /// exits, and returns the keys it is in and when a verdict can next change by itself.
    pub(super) fn evaluate_audiences(
        &self,
        doc: Option<&Value>,
        now: i64,
    ) -> Result<(Vec<String>, Option<i64>)> {
        let (_, definitions) = self.definitions()?;
        let verdicts = match doc {
            Some(doc) => self.verdicts(&definitions, doc, now)?,
            None => BTreeMap::new(),
        };
        let held = self.held()?;
        let held_keys: BTreeSet<&str> = held.iter().map(|m| m.key.as_str()).collect();
        let mut seq = self.last_membership_seq()?;
        for d in definitions.iter() {
            let member = verdicts.get(&d.key).is_some_and(|v| v.member);
            if member && !held_keys.contains(d.key.as_str()) {
                seq += 1;
                self.sql().exec(
                    "INSERT INTO meta (key, value) VALUES (?, json_array(?, ?, ?, ?, 1))
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    vec![
                        [MEMBERSHIPS.prefix(), &d.key].concat().into(),
                        d.name.clone().into(),
                        d.group.clone().into(),
                        now.into(),
                        seq.into(),
                    ],
                )?;
                let change = Change {
                    entered: true,
                    key: &d.key,
                    name: &d.name,
                    group: d.group.as_deref(),
                    seq,
                };
                self.record(change, now, doc.is_some())?;
            }
        }
        for m in &held {
            let member = verdicts.get(&m.key).is_some_and(|v| v.member);
            if !member {
                seq += 1;
                // The exit keeps the row, with its number, so the next change is numbered
                // after it (a profile that is gone keeps none: see below).
                if doc.is_some() {
                    self.sql().exec(
                        "UPDATE meta SET value = json_set(value, '$[2]', ?, '$[3]', ?, '$[4]', 0) WHERE key = ?",
                        vec![
                            now.into(),
                            seq.into(),
                            [MEMBERSHIPS.prefix(), &m.key].concat().into(),
                        ],
                    )?;
                }
                let name = definitions
                    .iter()
                    .find(|d| d.key == m.key)
                    .map_or(m.name.as_str(), |d| d.name.as_str());
                let change = Change {
                    entered: false,
                    key: &m.key,
                    name,
                    group: m.grp.as_deref(),
                    seq,
                };
                self.record(change, now, doc.is_some())?;
            }
        }
        if doc.is_none() {
            // A profile that is gone (merged away, erased) keeps no trace of its audiences,
            // the exits it kept before either.
            self.clear_ranges(&[MEMBERSHIPS])?;
        }
        let next_change = verdicts.values().filter_map(|v| v.next_change).min();
        let mut keys: Vec<String> = verdicts
            .into_iter()
            .filter(|(_, v)| v.member)
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        Ok((keys, next_change))
    }

    /// Every audience's verdict for the profile as `doc` shows it, at `now`.
    pub(super) fn verdicts(
        &self,
        definitions: &[Definition],
        doc: &Value,
        now: i64,
    ) -> Result<BTreeMap<String, audience::Verdict>> {
        if definitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows = self.facts_for(definitions)?;
        let bodies: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap_or(Value::Null))
            .collect();
        let facts: Vec<Fact<'_>> = rows
            .iter()
            .zip(&bodies)
            .map(|(r, body)| Fact {
                r#type: &r.r#type,
                name: r.name.as_deref(),
                timestamp: r.timestamp,
                body,
            })
            .collect();
        Ok(audience::evaluate_all(definitions, &facts, doc, now))
    }

    /// The events any definition looks at (by name or type), so evaluation reads only those.
    fn facts_for(&self, definitions: &[Definition]) -> Result<Vec<EventRow>> {
        let (names, types) = audience::events_read(definitions);
        if names.is_empty() && types.is_empty() {
            return Ok(Vec::new());
        }
        let (names_json, types_json) = (
            serde_json::to_string(&names)?,
            serde_json::to_string(&types)?,
        );
        let mut rows: Vec<EventRow> = self
            .sql()
            .exec(
                &events::with(
                    "SELECT type, name, timestamp, body FROM events
                 WHERE (type = 'track' AND name IN (SELECT value FROM json_each(?)))
                    OR type IN (SELECT value FROM json_each(?))",
                ),
                vec![names_json.into(), types_json.into()],
            )?
            .to_array()?;
        // This change's events, not written yet (see `in_one_block`).
        rows.extend(
            self.unwritten_events()
                .into_iter()
                .filter(|e| {
                    let named =
                        e.r#type == "track" && e.name.as_ref().is_some_and(|n| names.contains(n));
                    named || types.contains(&e.r#type)
                })
                .map(|e| EventRow {
                    r#type: e.r#type,
                    name: e.name,
                    timestamp: e.timestamp,
                    body: e.body,
                }),
        );
        // Expired events the audiences read were kept as facts (see `retention`).
        rows.extend(self.kept_facts()?.into_iter().map(|f| EventRow {
            r#type: f.r#type,
            name: f.name,
            timestamp: f.timestamp,
            body: f.body,
        }));
        Ok(rows)
    }

    /// The number of the profile's latest membership change: the highest kept with its
    /// audience, or (an object from before version 8) the counter kept in `meta`.
    fn last_membership_seq(&self) -> Result<i64> {
        #[derive(Deserialize)]
        struct Last {
            seq: Option<i64>,
        }
        let kept = self
            .sql()
            .exec(
                &table::with(
                    &[table::memberships()],
                    "SELECT MAX(seq) AS seq FROM memberships",
                ),
                None,
            )?
            .to_array::<Last>()?
            .into_iter()
            .next()
            .and_then(|l| l.seq)
            .unwrap_or(0);
        let counted = self
            .meta("membership_seq")?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        Ok(kept.max(counted))
    }

    /// One entry or exit: the timeline event (`timeline`: not for a profile that is gone,
    /// which keeps no events, an erased one least of all) and the numbered change for
    /// activation. `now` is the instant.
    fn record(&self, change: Change<'_>, now: i64, timeline: bool) -> Result<()> {
        let Change {
            entered,
            key,
            name,
            group,
            seq,
        } = change;
        let change = MembershipChange {
            profile: self.meta("id")?.unwrap_or_default(),
            seq,
            audience: key.to_owned(),
            name: name.to_owned(),
            group: group.map(str::to_owned),
            change: if entered { "entered" } else { "exited" }.to_owned(),
            at: cdp_protocol::time::format_rfc3339(now),
        };
        let body = change.timeline_event();
        let message_id = body["messageId"].as_str().unwrap_or_default().to_owned();
        let recorded = timeline && self.stored_ids([message_id.as_str()])?.is_empty();
        if recorded {
            self.append_events(&[StoredEvent {
                message_id,
                r#type: "track".to_owned(),
                name: body["event"].as_str().map(str::to_owned),
                timestamp: now,
                received_at: now,
                body: body.to_string(),
                source: Some(SOURCE.to_owned()),
                seq: 0,
            }])?;
        }
        // An ingest hands the change to its caller, which sends it with the rest of its
        // delivery (and, if that fails, gets it again from the timeline when the delivery
        // is retried: see `changes_recorded_with`); every other change goes through the
        // outbox. Two rows fewer per change than the outbox: its entry, and its removal.
        if let (true, Some(pending)) = (recorded, self.for_caller.borrow_mut().as_mut()) {
            pending.push(change);
            return Ok(());
        }
        self.put_change_in_outbox(&change)
    }

    /// Puts `change` in the outbox, which the drain sends to the activation queue.
    pub(super) fn put_change_in_outbox(&self, change: &MembershipChange) -> Result<()> {
        let target = ["membership:", &change.seq.to_string()].concat();
        self.put_in_outbox(&target, &to_json(change)?)
    }

    /// The membership changes recorded in the timeline with the events `held` (message ids
    /// stored before): what an ingest of those events handed its caller, for a delivery
    /// that is retried because the caller may not have sent them.
    pub(super) fn changes_recorded_with(&self, held: &[String]) -> Result<Vec<MembershipChange>> {
        #[derive(Deserialize)]
        struct Body {
            body: String,
        }
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let held = serde_json::to_string(held)?;
        let rows = self
            .sql()
            .exec(
                &events::with(
                    "SELECT body FROM events WHERE source = ? AND block IN
                       (SELECT block FROM events WHERE message_id IN (SELECT value FROM json_each(?)))
                     ORDER BY seq",
                ),
                vec![SOURCE.into(), held.into()],
            )?
            .to_array::<Body>()?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter_map(|body| MembershipChange::from_timeline_event(&body))
            .collect())
    }
}
