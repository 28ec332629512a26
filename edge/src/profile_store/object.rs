//! The Durable Object itself: its schema, and everything that writes (ingest, merge,
//! erasure), each ending in the one change hook ([`change`](super::change)).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use cdp_protocol::audience::Definition;
use std::collections::BTreeMap;

use cdp_protocol::computed::Aggregate;
use cdp_protocol::destination::Change as MembershipChange;
use cdp_protocol::event::Event;
use cdp_protocol::identity::Identifier;
use cdp_protocol::timeline::TimelineQuery;
use serde_json::{json, Map, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::meter::Sql;

use super::change::{Notify, Plan};
use super::table::{self, IDENTITY};
use super::{events, membership};
use super::{
    to_json, Absorb, Ask, Count, Dump, Erased, EventRow, FactRow, Holding, IdentityRow,
    IngestReport, Text,
};
use crate::{config, http};

/// Tables most profiles never write (traits come with identify calls; the rest with merges
/// and unmerges): created on their first write, and read as empty until then. What every
/// profile has is kept in its one table (see [`table`](super::table)). Those keyed by what
/// they are looked up by have no rowid: an insert writes one row, not a row and its key's
/// index.
pub(super) const LAZY: [(&str, &str, &str); 4] = [
    (
        "traits",
        "CREATE TABLE IF NOT EXISTS traits (key TEXT PRIMARY KEY, value TEXT NOT NULL, timestamp INTEGER NOT NULL, source TEXT, message_id TEXT) WITHOUT ROWID",
        "key, value, timestamp, source, message_id",
    ),
    (
        "kept_apart",
        "CREATE TABLE IF NOT EXISTS kept_apart (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID",
        "a, b",
    ),
    (
        "merge_log",
        "CREATE TABLE IF NOT EXISTS merge_log (at INTEGER NOT NULL, absorbed TEXT NOT NULL, message_id TEXT NOT NULL, identifiers TEXT NOT NULL)",
        "",
    ),
    (
        "unmerge_log",
        "CREATE TABLE IF NOT EXISTS unmerge_log (at INTEGER NOT NULL, identifier TEXT NOT NULL, kept_apart_from TEXT NOT NULL, profile TEXT NOT NULL, identifiers TEXT NOT NULL)",
        "",
    ),
];

/// Columns added since the first schema: `(table, column)`, added to objects created before.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("events", "source"),
    ("traits", "source"),
    ("traits", "message_id"),
];
/// The schema version this code writes (kept in `meta`).
/// 3: the aggregate holds the report ledger, so objects of version 2 rebuild it.
/// 4: the keyed tables have no rowid, and events no index by time.
/// 5: the outbox has no rowid, and deadlines are worked out, not stored.
/// 6: events are kept in blocks (see [`events`](super::events)).
/// 7: audience definitions are held in memory, not copied into each profile.
/// 8: a membership keeps the number of its latest change, and an exit keeps its row.
/// 9: events are read through a common table expression, not a view, and the outbox
///    is keys of `meta`.
/// 10: identifiers, memberships and event blocks are keys of `meta` too (see
///    [`table`](super::table)). An object created at this version or later holds no
///    `schema` key (a row written per profile) until a later version upgrades it: no key
///    and no `identity` table is version 10.
const SCHEMA_VERSION: &str = "10";
/// A table every object before version 10 has.
const BEFORE_10: &str = "identity";
/// The oldest version whose aggregate is what this code computes (3 added the report
/// ledger); an object older than it is rebuilt from its events when upgraded.
const AGGREGATE_SINCE: u32 = 3;

/// How many blocks of events are stored before the aggregate is saved again; until then
/// it is read as saved with the blocks since folded in. Saving it with every write was a
/// row written per write, and most profiles are a few writes.
const SAVE_AGGREGATE_EVERY: usize = 8;

/// The aggregate as `meta` keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum SavedAggregate {
    /// The aggregate of the events up to block `through` (a key; `None`: before the first).
    Through {
        through: Option<String>,
        aggregate: Aggregate,
    },
    /// Before version 10: the aggregate of every event stored.
    Whole(Aggregate),
}

/// The time now (ms), read once per request and passed down.
fn now() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// Audience definitions as parsed: their version, and checked definitions.
pub(super) type ParsedDefinitions = (i64, Rc<Vec<Definition>>);

/// The Durable Object class holding one profile.
#[durable_object]
pub struct ProfileStore {
    state: State,
    pub(super) env: Env,
    /// The schema is current (checked once per object instance).
    ready: Cell<bool>,
    /// The audience definitions held, parsed once per version.
    pub(super) parsed: RefCell<Option<ParsedDefinitions>>,
    /// The deadlines this request worked out, for the alarm.
    pub(super) plan: Cell<Plan>,
    /// The lazily created tables this object has (read once per instance).
    lazy: RefCell<Option<std::collections::BTreeSet<String>>>,
    /// Events stored in this change and not written yet: one block at its end (see
    /// [`in_one_block`](Self::in_one_block)).
    pub(super) unwritten: RefCell<Option<Vec<EventRow>>>,
    /// Membership changes an ingest hands to its caller rather than to the outbox (see
    /// [`change`](super::change)).
    pub(super) for_caller: RefCell<Option<Vec<MembershipChange>>>,
}

impl DurableObject for ProfileStore {
    fn new(state: State, env: Env) -> Self {
        // Whether to count (see crate::meter), known before the first statement runs.
        crate::meter::enabled(&env);
        Self {
            state,
            env,
            ready: Cell::new(false),
            parsed: RefCell::new(None),
            plan: Cell::new(Plan::default()),
            lazy: RefCell::new(None),
            unwritten: RefCell::new(None),
            for_caller: RefCell::new(None),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        crate::meter::add(crate::meter::Cost::ObjectAlarm, 1);
        self.ensure_schema()?;
        self.take_definitions(None).await?;
        self.run_deadlines(now()).await?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        self.ensure_schema()?;
        let ask: Ask = match req.json().await {
            Ok(ask) => ask,
            Err(e) => return http::error(400, "invalid_request", &e.to_string()),
        };
        if matches!(
            ask,
            Ask::Absorb(_) | Ask::Detach(_) | Ask::Forward { .. } | Ask::Erase
        ) {
            // These changes end in evaluating the audiences (see `changed`).
            self.take_definitions(None).await?;
        }
        match ask {
            Ask::Ingest(body) => {
                if self.meta("erased_at")?.is_some() {
                    // Erased after the delivery resolved its events here: they are the erased
                    // person's, dropped (the caller counts them as suppressed), never stored.
                    let erased = body.events.iter().map(|e| e.message_id.clone()).collect();
                    let report = IngestReport {
                        erased,
                        ..IngestReport::default()
                    };
                    return http::json(200, &report);
                }
                if self.meta("merged_into")?.is_some() {
                    // Merged away after the delivery resolved its events here: the delivery
                    // is tried again, resolved again, and lands in the survivor.
                    return gone();
                }
                // Before the change: it is one synchronous stretch, so one transaction.
                self.take_definitions(body.audiences.as_ref()).await?;
                self.set_meta("id", &body.profile)?;
                for link in &body.links {
                    self.link(link)?;
                }
                let now = now();
                let held = if body.again {
                    let ids = body.events.iter().map(|e| e.message_id.as_str());
                    self.stored_ids(ids)?.into_iter().collect()
                } else {
                    Vec::new()
                };
                // The delivery's events and the audience changes they cause: one block.
                *self.for_caller.borrow_mut() = Some(Vec::new());
                let written = self.in_one_block(|me| {
                    let (mut report, aggregate, save) = me.store(&body.events, &body.sources)?;
                    report.summary = me.after_change(&aggregate, now, Notify::Caller)?;
                    Ok((report, save.then_some(aggregate)))
                });
                let mut changes = self.for_caller.borrow_mut().take().unwrap_or_default();
                let (mut report, save) = written?;
                if report.stored == 0 {
                    // No event of this delivery was stored with them, so a retry could not
                    // find these changes again in the timeline: the outbox sends them.
                    for change in changes.drain(..) {
                        self.put_change_in_outbox(&change)?;
                    }
                }
                if let Some(aggregate) = save {
                    self.save_aggregate(&aggregate)?;
                }
                report.changes = self.changes_recorded_with(&held)?;
                report.changes.extend(changes);
                if self.outbox_waiting()? {
                    // Membership changes: sent now (a failed send is retried by alarm).
                    self.drain(now).await?;
                } else if report.stored > 0 {
                    self.arm(now).await?;
                }
                http::json(200, &report)
            }
            Ask::Holding => http::json(200, &self.holding()?),
            Ask::Dump => {
                if self.meta("merged_into")?.is_some() || self.meta("erased_at")?.is_some() {
                    return gone();
                }
                let mut dump = self.dump()?;
                dump.version = Some(dump.version()?);
                http::json(200, &dump)
            }
            Ask::Absorb(absorb) => {
                // Merged away or erased since the delivery resolved to it (a consumer of
                // another partition): the merge is resolved again.
                if self.meta("merged_into")?.is_some() || self.meta("erased_at")?.is_some() {
                    return gone();
                }
                self.absorb(absorb)?;
                self.changed().await?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::Split(ask) => match self.split(&ask)? {
                Some(split) => http::json(200, &split),
                None => http::error(
                    409,
                    "cannot_unmerge",
                    "the profile does not hold that identifier, or holds nothing else",
                ),
            },
            Ask::Detach(detach) => {
                self.detach(&detach)?;
                self.changed().await?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::Forward { to, version } => {
                if to.is_empty() {
                    return http::error(400, "invalid_forward", "to names no profile");
                }
                match self.meta("merged_into")? {
                    // Forwarded already by this merge, tried again.
                    Some(already) if already == to => return http::json(200, &json!({"ok": true})),
                    Some(_) => return gone(),
                    None => {}
                }
                if let Some(version) = version {
                    if self.dump()?.version()? != version {
                        return http::error(
                            409,
                            super::CHANGED,
                            "the profile changed since it was copied; copy it again",
                        );
                    }
                }
                self.clear_ranges(&[table::BLOCKS, IDENTITY])?;
                self.clear(&["traits"])?;
                self.sql().exec(
                    "DELETE FROM meta WHERE key IN ('aggregate', 'expired', 'audience_facts', 'oldest')",
                    None,
                )?;
                self.set_meta("merged_into", &to)?;
                self.changed().await?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::Profile => self.answer(|me| me.profile()),
            Ask::Timeline { query } => {
                match TimelineQuery::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    Ok(query) => self.answer(|me| me.timeline(&query)),
                    Err(e) => http::bad_parameter("invalid_parameter", &e.parameter, &e.message),
                }
            }
            Ask::Export => self.answer(|me| me.export()),
            Ask::Erase => {
                let erased = self.erase()?;
                self.changed().await?;
                http::json(200, &erased)
            }
            Ask::Explain => self.answer(|me| me.explain()),
            Ask::Evaluate { audiences } => {
                // A backfill: only a change of membership is a change to publish.
                self.take_definitions(Some(&audiences)).await?;
                let before = self.memberships()?;
                let now = now();
                let summary = self.after_change(&self.aggregate()?, now, Notify::Caller)?;
                let changed = self.memberships()? != before;
                if changed {
                    self.notify_directory(summary.as_ref())?;
                    self.drain(now).await?;
                } else {
                    self.arm(now).await?;
                }
                http::json(200, &json!({"changed": changed}))
            }
            Ask::Preview { audiences, key } => {
                let now = now();
                let member = match self.summary(&self.aggregate()?, now)? {
                    Some(doc) => self
                        .verdicts(&audiences.parsed(), &doc, now)?
                        .get(&key)
                        .is_some_and(|v| v.member),
                    None => false,
                };
                http::json(200, &json!({"member": member}))
            }
            Ask::Memberships => {
                let gone = self.meta("merged_into")?;
                let held: Vec<Value> = self
                    .memberships()?
                    .iter()
                    .map(|(k, since)| super::membership::shown(k, *since))
                    .collect();
                http::json(200, &json!({"mergedInto": gone, "audiences": held}))
            }
        }
        }.await)
    }
}

/// The answer of a profile merged away (or erased) to a write that assumed it was not.
fn gone() -> Result<Response> {
    http::error(
        409,
        "profile_gone",
        "the profile was merged into another or erased; resolve the events again",
    )
}

impl ProfileStore {
    /// Whether lazily created table `table` exists here.
    pub(super) fn has(&self, table: &str) -> Result<bool> {
        if self.lazy.borrow().is_none() {
            let names: std::collections::BTreeSet<String> = self
                .sql()
                .exec(
                    "SELECT name AS value FROM sqlite_master WHERE type = 'table'",
                    None,
                )?
                .to_array::<Text>()?
                .into_iter()
                .map(|t| t.value)
                .collect();
            *self.lazy.borrow_mut() = Some(names);
        }
        Ok(self
            .lazy
            .borrow()
            .as_ref()
            .is_some_and(|names| names.contains(table)))
    }

    /// Creates lazily created table `table` before its first write.
    pub(super) fn create(&self, table: &str) -> Result<()> {
        if self.has(table)? {
            return Ok(());
        }
        if let Some((_, create, _)) = LAZY.iter().find(|(name, _, _)| *name == table) {
            self.sql().exec(create, None)?;
            if let Some(names) = self.lazy.borrow_mut().as_mut() {
                names.insert(table.to_owned());
            }
        }
        Ok(())
    }

    /// Deletes the keys of `ranges`.
    pub(super) fn clear_ranges(&self, ranges: &[table::Range]) -> Result<()> {
        for range in ranges {
            self.sql().exec(&range.delete(), None)?;
        }
        Ok(())
    }

    /// Empties lazily created `tables` (those that exist; the rest of a profile is key
    /// ranges, see [`clear_ranges`](Self::clear_ranges)).
    pub(super) fn clear(&self, tables: &[&str]) -> Result<()> {
        for table in tables {
            if self.has(table)? {
                self.sql().exec(&format!("DELETE FROM {table}"), None)?;
            }
        }
        Ok(())
    }

    pub(super) fn sql(&self) -> Sql {
        Sql::of(&self.state, "profile")
    }

    /// Creates the profile's table, and brings an object created by older code up to date
    /// (once per instance).
    pub(super) fn ensure_schema(&self) -> Result<()> {
        if self.ready.get() {
            return Ok(());
        }
        let sql = self.sql();
        sql.exec(table::CREATE, None)?;
        let held = self.meta("schema")?;
        if held.as_deref() != Some(SCHEMA_VERSION) && (held.is_some() || self.has(BEFORE_10)?) {
            self.upgrade(held)?;
        }
        self.ready.set(true);
        Ok(())
    }

    /// Brings an object created by older code (`held`: its schema version) up to date:
    /// adds the columns it lacks, moves its tables into `meta` (see
    /// [`table`](super::table)) and computes its aggregate from its events if it must.
    fn upgrade(&self, held: Option<String>) -> Result<()> {
        let sql = self.sql();
        let mut upgraded = false;
        for (table, column) in ADDED_COLUMNS {
            // A table created lazily is created with its columns, when it is; events are
            // in blocks now, and a table of them is only an older object's.
            if !self.has(table)? {
                continue;
            }
            let probe = ["SELECT ", column, " FROM ", table, " LIMIT 0"].concat();
            if sql.exec(&probe, None).is_err() {
                let alter = ["ALTER TABLE ", table, " ADD COLUMN ", column, " TEXT"].concat();
                sql.exec(&alter, None)?;
                upgraded = true;
            }
        }
        crate::schema::without_rowid(&sql, "meta", table::CREATE, "key, value")?;
        if crate::schema::table_exists(&sql, "identity")? {
            sql.exec(
                &format!(
                    "INSERT OR REPLACE INTO meta (key, value)
                     SELECT '{}' || json_array(kind, value), json_array(kind, value, first_seen, message_id, via) FROM identity",
                    IDENTITY.prefix()
                ),
                None,
            )?;
            sql.exec("DROP TABLE identity", None)?;
        }
        if crate::schema::table_exists(&sql, "memberships")? {
            // Before version 8 a membership had no number and an exit no row.
            let numbered = sql
                .exec("SELECT seq FROM memberships LIMIT 0", None)
                .is_ok();
            let (seq, member) = if numbered {
                ("seq", "member")
            } else {
                ("0", "1")
            };
            sql.exec(
                &format!(
                    "INSERT OR REPLACE INTO meta (key, value)
                     SELECT '{}' || key, json_array(name, grp, since, {seq}, {member}) FROM memberships",
                    table::MEMBERSHIPS.prefix()
                ),
                None,
            )?;
            sql.exec("DROP TABLE memberships", None)?;
        }
        self.events_into_blocks()?;
        if crate::schema::table_exists(&sql, "outbox")? {
            sql.exec(
                &format!(
                    "INSERT OR REPLACE INTO meta (key, value) SELECT '{}' || target, body FROM outbox",
                    table::OUTBOX.prefix()
                ),
                None,
            )?;
            sql.exec("DROP TABLE outbox", None)?;
        }
        for (table, create, columns) in LAZY.iter().filter(|(_, _, c)| !c.is_empty()) {
            if self.has(table)? {
                crate::schema::without_rowid(&sql, table, create, columns)?;
            }
        }
        // Deadlines were a table before version 5, definitions a copy before 7.
        sql.exec("DROP TABLE IF EXISTS deadlines", None)?;
        sql.exec("DELETE FROM meta WHERE key = 'audiences'", None)?;
        // What the instance read of the tables is out of date now.
        *self.lazy.borrow_mut() = None;
        // Before version 10 every write saved the aggregate: it summarises every block.
        if let Some(text) = self.meta("aggregate")? {
            if let Ok(SavedAggregate::Whole(whole)) = serde_json::from_str(&text) {
                self.save_aggregate(&whole)?;
            }
        }
        // An object from older code may hold events its aggregate does not summarise yet.
        let version: u32 = held.and_then(|v| v.parse().ok()).unwrap_or(0);
        let stale = self.meta("aggregate")?.is_some() && version < AGGREGATE_SINCE;
        if upgraded || stale {
            self.rebuild()?;
        }
        self.set_meta("schema", SCHEMA_VERSION)
    }

    /// The profile's aggregate: as last saved, with the events stored since folded in.
    pub(super) fn aggregate(&self) -> Result<Aggregate> {
        Ok(self.aggregate_and_unsaved()?.0)
    }

    /// The aggregate, and how many blocks were stored since it was last saved.
    fn aggregate_and_unsaved(&self) -> Result<(Aggregate, usize)> {
        let saved = match self.meta("aggregate")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                worker::Error::RustError(format!("the profile's aggregate is unreadable: {e}"))
            })?,
            None => SavedAggregate::Through {
                through: None,
                aggregate: Aggregate::default(),
            },
        };
        let (through, mut aggregate) = match saved {
            SavedAggregate::Through { through, aggregate } => (through, aggregate),
            // An upgrade saves it anew (see `upgrade`), before anything reads it.
            SavedAggregate::Whole(_) => {
                return Err(worker::Error::RustError(
                    "the profile's aggregate is from before version 10 and was not upgraded".into(),
                ))
            }
        };
        let rows: Vec<FactRow> = self
            .sql()
            .exec(
                &events::with(
                    "SELECT block, message_id, type, name, timestamp, body, source FROM events
                     WHERE block > ? ORDER BY block, position",
                ),
                vec![through.unwrap_or_default().into()],
            )?
            .to_array()?;
        let blocks = rows
            .iter()
            .map(|r| r.block.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        for row in rows
            .iter()
            .filter(|r| r.source.as_deref() != Some(membership::SOURCE))
        {
            let body: Map<String, Value> = serde_json::from_str(&row.body).unwrap_or_default();
            row.add_to(&mut aggregate, &body);
        }
        Ok((aggregate, blocks))
    }

    /// Saves `aggregate` as summarising every event stored now.
    pub(super) fn save_aggregate(&self, aggregate: &Aggregate) -> Result<()> {
        let saved = SavedAggregate::Through {
            through: self.last_block()?,
            aggregate: aggregate.clone(),
        };
        self.set_meta("aggregate", &to_json(&saved)?)
    }

    /// Recomputes the traits and the aggregate from the stored events (after a merge, an
    /// unmerge or a schema upgrade; rare, so reading every event is fine).
    pub(super) fn rebuild(&self) -> Result<()> {
        let sql = self.sql();
        self.clear(&["traits"])?;
        let rows: Vec<FactRow> = sql
            .exec(
                &events::with("SELECT message_id, type, name, timestamp, body, source FROM events WHERE source IS NOT 'audiences' ORDER BY timestamp, received_at, seq, message_id"),
                None,
            )?
            .to_array()?;
        // What retention took is where the aggregate starts from.
        let mut aggregate = self.expired()?.unwrap_or_default();
        for row in &rows {
            let body: Map<String, Value> = serde_json::from_str(&row.body).unwrap_or_default();
            self.take_in(&mut aggregate, row, &body)?;
        }
        // Identifiers unmerged away stay away from the traits too, whatever events remain.
        let detached: Vec<String> = self.kept_apart()?.into_iter().map(|(a, _)| a).collect();
        self.forget_traits_of(&detached)?;
        self.save_aggregate(&aggregate)
    }

    /// What one newly stored event changes: its traits (identify, group) and the aggregate.
    pub(super) fn take_in(
        &self,
        aggregate: &mut Aggregate,
        row: &FactRow,
        body: &Map<String, Value>,
    ) -> Result<()> {
        if matches!(row.r#type.as_str(), "identify" | "group") {
            if let Some(Value::Object(traits)) = body.get("traits") {
                for (key, value) in traits {
                    self.put_trait(
                        key,
                        &value.to_string(),
                        row.timestamp,
                        row.source.as_deref(),
                        &row.message_id,
                    )?;
                }
            }
        }
        row.add_to(aggregate, body);
        Ok(())
    }

    /// The profile's summary for the directory: identifiers by kind, traits, computed traits.
    pub(super) fn summary(&self, aggregate: &Aggregate, now: i64) -> Result<Option<Value>> {
        if self.meta("merged_into")?.is_some() {
            return Ok(None);
        }
        let identities = self.identities()?;
        if identities.is_empty() {
            return Ok(None);
        }
        let mut identifiers: Map<String, Value> = Map::new();
        for r in identities {
            if let Value::Array(values) = identifiers
                .entry(r.kind)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                values.push(Value::String(r.value));
            }
        }
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": identifiers,
            "traits": self.traits()?.0,
            "computed": aggregate.traits(now, &config::computed_settings(&self.env)),
            // For the directory's report rollups (it keeps this apart from the summary).
            "report": aggregate.report(),
            "updatedAt": cdp_protocol::time::format_rfc3339(now),
        })))
    }

    /// Ends a change made by a merge, an unmerge or erasure: the hook in the change's
    /// transaction, then the outbox sent.
    async fn changed(&self) -> Result<()> {
        let now = now();
        self.after_change(&self.aggregate()?, now, Notify::Outbox)?;
        self.drain(now).await
    }

    pub(super) fn state(&self) -> &State {
        &self.state
    }

    pub(super) fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows = self
            .sql()
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array::<Text>()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// Sets `key`; written only when the value changes (an ingest sets the profile's id
    /// each time, and a row read costs a thousandth of a row written).
    pub(super) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value != excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    pub(super) fn answer(
        &self,
        build: impl Fn(&Self) -> Result<Option<Value>>,
    ) -> Result<Response> {
        if let Some(to) = self.meta("merged_into")? {
            return http::json(200, &json!({"mergedInto": to}));
        }
        match build(self)? {
            Some(body) => http::json(200, &body),
            None => http::error(404, "profile_not_found", "no such profile"),
        }
    }

    pub(super) fn link(&self, row: &IdentityRow) -> Result<()> {
        // The earliest cause wins.
        self.sql().exec(
            &format!(
                "INSERT INTO meta (key, value) VALUES ('{}' || json_array(?1, ?2), json_array(?1, ?2, ?3, ?4, ?5))
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE json_extract(excluded.value, '$[2]') < json_extract(meta.value, '$[2]')",
                IDENTITY.prefix()
            ),
            vec![
                row.kind.as_str().into(),
                row.value.as_str().into(),
                row.first_seen.into(),
                row.message_id.as_str().into(),
                row.via.clone().into(),
            ],
        )?;
        Ok(())
    }

    pub(super) fn holding(&self) -> Result<Holding> {
        let ids = self
            .identities()?
            .into_iter()
            .map(|r| Identifier {
                kind: r.kind,
                value: r.value,
            })
            .collect();
        Ok(Holding {
            merged_into: self.meta("merged_into")?,
            ids,
            apart: self.kept_apart()?,
        })
    }

    pub(super) fn dump(&self) -> Result<Dump> {
        let sql = self.sql();
        Ok(Dump {
            events: sql
                .exec(
                    &events::with("SELECT message_id, type, name, timestamp, received_at, body, source, seq FROM events WHERE source IS NOT 'audiences'"),
                    None,
                )?
                .to_array()?,
            identity: self.identities()?,
            apart: self.kept_apart()?,
            expired: self.expired()?,
            audience_facts: self.kept_facts()?,
            version: None,
        })
    }

    /// Takes in a merged profile (or the part an unmerge splits off): events by
    /// `messageId` once, identifiers with their earliest cause, then traits and computed
    /// traits rebuilt from all events. Writing it twice changes nothing.
    pub(super) fn absorb(&self, absorb: Absorb) -> Result<()> {
        let sql = self.sql();
        let held = self.stored_ids(absorb.dump.events.iter().map(|e| e.message_id.as_str()))?;
        let fresh: Vec<EventRow> = absorb
            .dump
            .events
            .into_iter()
            .filter(|e| !held.contains(&e.message_id))
            .collect();
        self.append_events(&fresh)?;
        for row in &absorb.dump.identity {
            self.link(row)?;
        }
        for (a, b) in &absorb.dump.apart {
            self.keep_apart(a, b)?;
        }
        self.take_expired(absorb.dump.expired.as_ref(), &absorb.dump.audience_facts)?;
        self.rebuild()?;
        self.recount_oldest()?;
        if let Some(me) = &absorb.split_into {
            self.set_meta("id", me)?;
            self.set_meta("split_from", &absorb.from)?;
            return Ok(());
        }
        self.create("merge_log")?;
        let already = sql
            .exec(
                "SELECT COUNT(*) AS n FROM merge_log WHERE absorbed = ?",
                vec![absorb.from.as_str().into()],
            )?
            .one::<Count>()?
            .n;
        if already == 0 {
            let ids: Vec<String> = absorb.dump.identity.iter().map(IdentityRow::key).collect();
            sql.exec(
                "INSERT INTO merge_log (at, absorbed, message_id, identifiers) VALUES (?, ?, ?, ?)",
                vec![
                    absorb.at.into(),
                    absorb.from.into(),
                    absorb.message_id.into(),
                    ids.join(" ").into(),
                ],
            )?;
        }
        Ok(())
    }

    /// Stores events not seen before, and returns the report with the profile's aggregate
    /// after them, and whether it is due to be saved (after the block is written). No
    /// `await` between the writes, so the runtime commits them together: a crash cannot
    /// leave half a batch.
    pub(super) fn store(
        &self,
        events: &[Event],
        sources: &BTreeMap<String, String>,
    ) -> Result<(IngestReport, Aggregate, bool)> {
        let mut report = IngestReport::default();
        let (mut aggregate, unsaved) = self.aggregate_and_unsaved()?;
        // A duplicate is an event stored before, or met earlier in this delivery.
        let mut seen = self.stored_ids(events.iter().map(|e| e.message_id.as_str()))?;
        let mut block = Vec::new();
        for event in events {
            if !seen.insert(event.message_id.clone()) {
                report.duplicates += 1;
                continue;
            }
            report.stored += 1;
            let source = sources.get(&event.message_id).cloned();
            block.push(EventRow {
                message_id: event.message_id.clone(),
                r#type: event.kind.as_str().to_owned(),
                name: event.name.clone(),
                timestamp: event.timestamp,
                received_at: event.received_at,
                body: to_json(&event.body)?,
                source: source.clone(),
                seq: aggregate.events_added() as i64,
            });
            let row = FactRow {
                message_id: event.message_id.clone(),
                r#type: event.kind.as_str().to_owned(),
                name: event.name.clone(),
                timestamp: event.timestamp,
                body: String::new(),
                source,
                block: None,
            };
            self.take_in(&mut aggregate, &row, &event.body)?;
        }
        self.append_events(&block)?;
        let save = report.stored > 0 && unsaved + 1 >= SAVE_AGGREGATE_EVERY;
        Ok((report, aggregate, save))
    }

    /// Latest value by event time wins, so late-arriving old events cannot overwrite news;
    /// each value keeps the source and the event it came from.
    pub(super) fn put_trait(
        &self,
        key: &str,
        value: &str,
        timestamp: i64,
        source: Option<&str>,
        message_id: &str,
    ) -> Result<()> {
        self.create("traits")?;
        self.sql().exec(
            "INSERT INTO traits (key, value, timestamp, source, message_id) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp,
               source = excluded.source, message_id = excluded.message_id
             WHERE excluded.timestamp >= traits.timestamp",
            vec![
                key.into(),
                value.into(),
                timestamp.into(),
                source.map(str::to_owned).into(),
                message_id.into(),
            ],
        )?;
        Ok(())
    }

    /// Deletes everything held about the person; returns what the index and the archive
    /// must forget too.
    pub(super) fn erase(&self) -> Result<Erased> {
        let sql = self.sql();
        let message_ids: Vec<String> = sql
            .exec(
                &events::with("SELECT message_id AS value FROM events"),
                None,
            )?
            .to_array::<Text>()?
            .into_iter()
            .map(|r| r.value)
            .collect();
        let identifiers: Vec<String> = self.identities()?.iter().map(IdentityRow::key).collect();
        self.clear_ranges(&[table::BLOCKS, IDENTITY])?;
        self.clear(&["traits", "merge_log", "unmerge_log", "kept_apart"])?;
        sql.exec(
            "DELETE FROM meta WHERE key IN ('aggregate', 'split_from', 'expired', 'audience_facts', 'oldest')",
            None,
        )?;
        self.set_meta("erased_at", &worker::Date::now().as_millis().to_string())?;
        Ok(Erased {
            message_ids,
            identifiers,
        })
    }
}
