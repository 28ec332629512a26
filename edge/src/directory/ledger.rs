//! The reports' side of a directory partition: each profile's ledger (its events as the
//! reports count them) and the partition's hourly rollups, kept equal to the sum of its
//! profiles' contributions.
//!
//! A put replaces the profile's ledger (one row) and adds the difference between its
//! contribution now and before to the partition's pending change (one row per put call,
//! whatever the number of profiles in it). The rollups catch up in a fold, which adds the
//! pending change and empties it. A fold runs before any report reads the rollups (so a
//! report is never behind), on an alarm ten minutes after a change (it only bounds what a
//! report's fold finds waiting), and when the pending change grows past
//! [`PENDING_KEYS`]; so a partition writes a rollup row at most once in ten minutes, not
//! once per profile change. A removal adds the negative of the profile's contribution.
//! The rollups need no log of increments, and a notice repeated or replaced changes
//! nothing twice (an unchanged ledger adds nothing).
//!
//! A rollup row is one metric's hour, its dimensions in one JSON object (`{"tent": 3,
//! "lamp": 1}`): a fold writes a row per metric and hour it touched, not one per product,
//! referrer or event name, and a report expands the rows it reads (rows read cost a
//! thousandth of rows written).

use std::collections::BTreeMap;

use cdp_protocol::computed::Settings;
use cdp_protocol::report::answer::Row;
use cdp_protocol::report::entry::Entry;
use cdp_protocol::report::funnel::Funnel;
use cdp_protocol::report::rollup::{accumulate, contributions, difference, Rollup};
use serde::Deserialize;
use worker::Result;

use crate::meter::Sql;

/// The ledger's columns in the partition's `profiles` rows (beside the summary, so a
/// change to both is one row written).
pub const COLUMNS: &str =
    "entries TEXT, steps TEXT, first_at INTEGER, last_at INTEGER, as_of INTEGER";

/// The partition's tables for the reports (the ledgers are in `profiles`, see [`COLUMNS`]).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollup_hours (metric TEXT NOT NULL, hour INTEGER NOT NULL, dims TEXT NOT NULL, PRIMARY KEY (metric, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY CHECK (id = 0), delta TEXT NOT NULL);
";

/// Brings an older partition up to date: rollups kept a row per dimension are regrouped
/// by metric and hour; ledgers kept in a table of their own move into the profiles' rows,
/// after those marked changed since their last fold (kept as `folded`) are folded the
/// old way, once.
pub fn upgrade(sql: &Sql, settings: &Settings) -> Result<()> {
    if crate::schema::table_exists(sql, "rollups")? {
        sql.exec(
            "INSERT OR REPLACE INTO rollup_hours (metric, hour, dims)
               SELECT metric, hour, json_group_object(dim, value) FROM rollups WHERE value != 0 GROUP BY metric, hour;
             DROP TABLE rollups;",
            None,
        )?;
    }
    if sql
        .exec("SELECT entries FROM profiles LIMIT 0", None)
        .is_err()
    {
        for column in COLUMNS.split(", ") {
            sql.exec(&["ALTER TABLE profiles ADD COLUMN ", column].concat(), None)?;
        }
    }
    if crate::schema::table_exists(sql, "ledgers")? {
        if sql
            .exec("SELECT changed FROM ledgers LIMIT 0", None)
            .is_ok()
        {
            fold_marked(sql, settings)?;
        }
        sql.exec(
            "UPDATE profiles SET entries = l.entries, steps = l.steps, first_at = l.first_at,
               last_at = l.last_at, as_of = l.as_of
             FROM ledgers AS l WHERE l.id = profiles.id;
             DROP TABLE ledgers;",
            None,
        )?;
    }
    Ok(())
}

/// How long after a change the alarm folds (a report folds sooner if it reads first).
pub const FOLD_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// How many rollup keys the pending change may hold before a put folds it (it is read and
/// written whole by every put call).
pub const PENDING_KEYS: usize = 5_000;

#[derive(Deserialize)]
struct Held {
    entries: String,
    as_of: i64,
}

fn ledger_of(entries: &str, as_of: i64) -> (Vec<Entry>, i64) {
    (serde_json::from_str(entries).unwrap_or_default(), as_of)
}

fn contribution(ledger: Option<&(Vec<Entry>, i64)>, settings: &Settings) -> Rollup {
    ledger.map_or_else(Rollup::new, |(entries, as_of)| {
        contributions(entries, settings, *as_of)
    })
}

/// Adds `delta` to the rollups: one row written per metric and hour.
fn apply(sql: &Sql, delta: Rollup) -> Result<()> {
    #[derive(Deserialize)]
    struct Dims {
        dims: String,
    }
    let mut by_hour: BTreeMap<(String, i64), Vec<(String, f64)>> = BTreeMap::new();
    for ((hour, metric, dim), value) in delta {
        by_hour
            .entry((metric, hour))
            .or_default()
            .push((dim, value));
    }
    for ((metric, hour), changes) in by_hour {
        let held: Vec<Dims> = sql
            .exec(
                "SELECT dims FROM rollup_hours WHERE metric = ? AND hour = ?",
                vec![metric.as_str().into(), hour.into()],
            )?
            .to_array()?;
        let mut dims: BTreeMap<String, f64> = match held.first() {
            Some(h) => serde_json::from_str(&h.dims)?,
            None => BTreeMap::new(),
        };
        accumulate(&mut dims, changes);
        sql.exec(
            "INSERT OR REPLACE INTO rollup_hours (metric, hour, dims) VALUES (?, ?, ?)",
            vec![
                metric.into(),
                hour.into(),
                serde_json::to_string(&dims)?.into(),
            ],
        )?;
    }
    Ok(())
}

/// The partition's change not yet added to the rollups, read once per call and written
/// once (see [`Pending::save`]).
pub struct Pending {
    delta: Rollup,
    changed: bool,
}

impl Pending {
    /// The pending change as stored.
    pub fn load(sql: &Sql) -> Result<Self> {
        #[derive(Deserialize)]
        struct Row {
            delta: String,
        }
        let rows: Vec<Row> = sql
            .exec("SELECT delta FROM pending WHERE id = 0", None)?
            .to_array()?;
        let listed: Vec<(i64, String, String, f64)> = match rows.first() {
            Some(r) => serde_json::from_str(&r.delta)?,
            None => Vec::new(),
        };
        Ok(Self {
            delta: listed
                .into_iter()
                .map(|(hour, metric, dim, value)| ((hour, metric, dim), value))
                .collect(),
            changed: false,
        })
    }

    fn add(&mut self, delta: Rollup) {
        if !delta.is_empty() {
            accumulate(&mut self.delta, delta);
            self.changed = true;
        }
    }

    /// Adds what is pending to the rollups and empties it.
    fn fold_into_rollups(self, sql: &Sql) -> Result<()> {
        apply(sql, self.delta)?;
        sql.exec("DELETE FROM pending", None)?;
        Ok(())
    }

    /// Whether anything waits to be folded.
    pub fn waiting(&self) -> bool {
        !self.delta.is_empty()
    }

    /// Stores what this call added (folding it at once past [`PENDING_KEYS`]); whether
    /// anything waits for a fold.
    pub fn save(self, sql: &Sql) -> Result<bool> {
        if !self.changed {
            return Ok(self.waiting());
        }
        // Differences that cancelled out leave nothing to keep.
        if self.delta.is_empty() || self.delta.len() > PENDING_KEYS {
            self.fold_into_rollups(sql)?;
            return Ok(false);
        }
        let listed: Vec<(i64, &str, &str, f64)> = self
            .delta
            .iter()
            .map(|((hour, metric, dim), value)| (*hour, metric.as_str(), dim.as_str(), *value))
            .collect();
        sql.exec(
            "INSERT OR REPLACE INTO pending (id, delta) VALUES (0, ?)",
            vec![serde_json::to_string(&listed)?.into()],
        )?;
        Ok(self.waiting())
    }
}

/// A profile's summary for the partition: its row's `doc`, and its ledger (`entries`, in
/// the ledger's order) when the summary carried one, as of `as_of` (the summary's time: a
/// cart's window is judged then).
pub struct Put<'a> {
    /// The profile.
    pub id: &'a str,
    /// The summary, as search shows it.
    pub doc: String,
    /// The ledger.
    pub entries: Option<Vec<Entry>>,
    /// The summary's time.
    pub as_of: i64,
}

/// Writes profile `put.id`'s row, summary and ledger in one, unless the row holds a newer
/// summary (a notice retried from a profile's outbox may arrive after the summary of a
/// later change); a changed ledger adds its difference to `pending`.
pub fn put(sql: &Sql, settings: &Settings, pending: &mut Pending, put: Put<'_>) -> Result<()> {
    let held: Vec<Held> = sql
        .exec(
            "SELECT entries, as_of FROM profiles WHERE id = ? AND entries IS NOT NULL",
            vec![put.id.into()],
        )?
        .to_array()?;
    let mut ledger: Option<(String, String, i64, i64)> = None;
    let mut delta = Rollup::new();
    if let Some(entries) = put.entries {
        let text = serde_json::to_string(&entries)?;
        let same = held
            .first()
            .is_some_and(|h| h.entries == text && h.as_of == put.as_of);
        if !same {
            let (first, last) = match (entries.first(), entries.last()) {
                (Some(first), Some(last)) => (first.at, last.at),
                // Nothing to count: an empty ledger still takes its old contribution away.
                _ => (0, 0),
            };
            let steps: Vec<(i64, &str)> = entries
                .iter()
                .filter(|e| e.kind == "track")
                .filter_map(|e| Some((e.at, e.name.as_deref()?)))
                .collect();
            ledger = Some((text, serde_json::to_string(&steps)?, first, last));
            let old = held.first().map(|h| ledger_of(&h.entries, h.as_of));
            delta = difference(
                &contribution(old.as_ref(), settings),
                &contribution(Some(&(entries, put.as_of)), settings),
            );
        }
    }
    let (entries, steps, first, last) = match ledger {
        Some((entries, steps, first, last)) => {
            (Some(entries), Some(steps), Some(first), Some(last))
        }
        None => (None, None, None, None),
    };
    let as_of = entries.as_ref().map(|_| put.as_of);
    let written = sql
        .exec(
            "INSERT INTO profiles (id, doc, entries, steps, first_at, last_at, as_of) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc,
               entries = coalesce(excluded.entries, profiles.entries), steps = coalesce(excluded.steps, profiles.steps),
               first_at = coalesce(excluded.first_at, profiles.first_at), last_at = coalesce(excluded.last_at, profiles.last_at),
               as_of = coalesce(excluded.as_of, profiles.as_of)
             WHERE coalesce(json_extract(excluded.doc, '$.updatedAt'), '')
                >= coalesce(json_extract(profiles.doc, '$.updatedAt'), '')",
            vec![
                put.id.into(),
                put.doc.into(),
                entries.into(),
                steps.into(),
                first.into(),
                last.into(),
                as_of.into(),
            ],
        )?
        .rows_written();
    if written > 0 {
        pending.add(delta);
    }
    Ok(())
}

/// Adds the pending change to the rollups (one write per metric and hour) and empties it.
pub fn fold(sql: &Sql) -> Result<()> {
    let pending = Pending::load(sql)?;
    if pending.waiting() {
        pending.fold_into_rollups(sql)?;
    }
    Ok(())
}

/// Folds, the way partitions did before pending changes, the ledgers marked changed since
/// their last fold: the difference between each one's contribution and the one folded.
fn fold_marked(sql: &Sql, settings: &Settings) -> Result<()> {
    #[derive(Deserialize)]
    struct Changed {
        entries: String,
        as_of: i64,
        folded: Option<String>,
        folded_as_of: Option<i64>,
    }
    let changed: Vec<Changed> = sql
        .exec(
            "SELECT entries, as_of, folded, folded_as_of FROM ledgers WHERE changed = 1",
            None,
        )?
        .to_array()?;
    if changed.is_empty() {
        return Ok(());
    }
    let mut moved = Rollup::new();
    for c in &changed {
        let old = c
            .folded
            .as_deref()
            .map(|f| ledger_of(f, c.folded_as_of.unwrap_or(c.as_of)));
        let new = ledger_of(&c.entries, c.as_of);
        accumulate(
            &mut moved,
            difference(
                &contribution(old.as_ref(), settings),
                &contribution(Some(&new), settings),
            ),
        );
    }
    apply(sql, moved)
}

/// Takes profile `id` (merged away, or erased) out of the rollups (through `pending`),
/// and deletes its row.
pub fn remove(sql: &Sql, settings: &Settings, pending: &mut Pending, id: &str) -> Result<()> {
    let held: Vec<Held> = sql
        .exec(
            "SELECT entries, as_of FROM profiles WHERE id = ? AND entries IS NOT NULL",
            vec![id.into()],
        )?
        .to_array()?;
    if let Some(h) = held.first() {
        let old = ledger_of(&h.entries, h.as_of);
        pending.add(difference(
            &contribution(Some(&old), settings),
            &Rollup::new(),
        ));
    }
    sql.exec("DELETE FROM profiles WHERE id = ?", vec![id.into()])?;
    Ok(())
}

/// The partition's rollup rows of `metrics` in `[from, to)`.
pub fn rows(sql: &Sql, metrics: &[String], from: i64, to: i64) -> Result<Vec<Row>> {
    sql.exec(
        "SELECT r.hour AS hour, r.metric AS metric, d.key AS dim, d.value AS value
         FROM rollup_hours AS r, json_each(r.dims) AS d
         WHERE r.metric IN (SELECT value FROM json_each(?)) AND r.hour >= ? AND r.hour < ?",
        vec![
            serde_json::to_string(metrics)?.into(),
            from.into(),
            to.into(),
        ],
    )?
    .to_array()
}

/// How many of the partition's profiles reached each step of `funnel`.
pub fn funnel(sql: &Sql, funnel: &Funnel) -> Result<Vec<u64>> {
    #[derive(Deserialize)]
    struct Steps {
        steps: String,
    }
    let mut counts = vec![0; funnel.steps.len()];
    // Only profiles active in the range can start the funnel there.
    let profiles = sql
        .exec(
            "SELECT steps FROM profiles WHERE steps IS NOT NULL AND last_at >= ? AND first_at < ?",
            vec![funnel.from.into(), funnel.to.into()],
        )?
        .to_array::<Steps>()?;
    for profile in profiles {
        let events: Vec<(i64, String)> = serde_json::from_str(&profile.steps).unwrap_or_default();
        funnel.count(&events, &mut counts);
    }
    Ok(counts)
}
