//! The reports' side of a directory partition: each profile's ledger (its events as the
//! reports count them) and the partition's hourly rollups, kept equal to the sum of its
//! profiles' contributions. A put adds the difference between a profile's new contribution
//! and its old one; a removal takes the old one back. So the rollups never need a log of
//! increments, and a notice repeated or replaced changes nothing twice.

use cdp_protocol::computed::Settings;
use cdp_protocol::report::answer::Row;
use cdp_protocol::report::entry::Entry;
use cdp_protocol::report::funnel::Funnel;
use cdp_protocol::report::rollup::{contributions, difference, Rollup};
use serde::Deserialize;
use worker::Result;

use crate::meter::Sql;

/// The partition's tables for the reports.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledgers (id TEXT PRIMARY KEY, entries TEXT NOT NULL, steps TEXT NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, as_of INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (hour INTEGER NOT NULL, metric TEXT NOT NULL, dim TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (metric, hour, dim)) WITHOUT ROWID;
";

#[derive(Deserialize)]
struct Held {
    entries: String,
    as_of: i64,
}

fn held(sql: &Sql, id: &str) -> Result<Option<(Vec<Entry>, i64)>> {
    let rows = sql
        .exec(
            "SELECT entries, as_of FROM ledgers WHERE id = ?",
            vec![id.into()],
        )?
        .to_array::<Held>()?;
    Ok(rows.into_iter().next().map(|h| {
        (
            serde_json::from_str(&h.entries).unwrap_or_default(),
            h.as_of,
        )
    }))
}

fn contribution(ledger: Option<&(Vec<Entry>, i64)>, settings: &Settings) -> Rollup {
    ledger.map_or_else(Rollup::new, |(entries, as_of)| {
        contributions(entries, settings, *as_of)
    })
}

fn apply(sql: &Sql, delta: Rollup) -> Result<()> {
    for ((hour, metric, dim), value) in delta {
        sql.exec(
            "INSERT INTO rollups (hour, metric, dim, value) VALUES (?, ?, ?, ?)
             ON CONFLICT (metric, hour, dim) DO UPDATE SET value = value + excluded.value",
            vec![hour.into(), metric.into(), dim.into(), value.into()],
        )?;
    }
    Ok(())
}

/// Replaces profile `id`'s ledger with `entries` (in the ledger's order) as of `as_of`
/// (the summary's time: a cart's window is judged then), and moves the rollups by the
/// difference.
pub fn put(
    sql: &Sql,
    settings: &Settings,
    id: &str,
    entries: Vec<Entry>,
    as_of: i64,
) -> Result<()> {
    let old = held(sql, id)?;
    let new = (entries, as_of);
    let delta = difference(
        &contribution(old.as_ref(), settings),
        &contribution(Some(&new), settings),
    );
    if old.as_ref().is_some_and(|(e, _)| *e == new.0) && delta.is_empty() {
        return Ok(());
    }
    apply(sql, delta)?;
    let (entries, as_of) = new;
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        sql.exec("DELETE FROM ledgers WHERE id = ?", vec![id.into()])?;
        return Ok(());
    };
    let steps: Vec<(i64, &str)> = entries
        .iter()
        .filter(|e| e.kind == "track")
        .filter_map(|e| Some((e.at, e.name.as_deref()?)))
        .collect();
    sql.exec(
        "INSERT OR REPLACE INTO ledgers (id, entries, steps, first_at, last_at, as_of) VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            id.into(),
            serde_json::to_string(&entries)?.into(),
            serde_json::to_string(&steps)?.into(),
            first.at.into(),
            last.at.into(),
            as_of.into(),
        ],
    )?;
    Ok(())
}

/// Takes profile `id` (merged away, or erased) out of the rollups.
pub fn remove(sql: &Sql, settings: &Settings, id: &str) -> Result<()> {
    if let Some(old) = held(sql, id)? {
        apply(
            sql,
            difference(&contribution(Some(&old), settings), &Rollup::new()),
        )?;
        sql.exec("DELETE FROM ledgers WHERE id = ?", vec![id.into()])?;
    }
    Ok(())
}

/// The partition's rollup rows of `metrics` in `[from, to)`.
pub fn rows(sql: &Sql, metrics: &[String], from: i64, to: i64) -> Result<Vec<Row>> {
    sql.exec(
        "SELECT hour, metric, dim, value FROM rollups
         WHERE metric IN (SELECT value FROM json_each(?)) AND hour >= ? AND hour < ? AND value != 0",
        vec![serde_json::to_string(metrics)?.into(), from.into(), to.into()],
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
            "SELECT steps FROM ledgers WHERE last_at >= ? AND first_at < ?",
            vec![funnel.from.into(), funnel.to.into()],
        )?
        .to_array::<Steps>()?;
    for profile in profiles {
        let events: Vec<(i64, String)> = serde_json::from_str(&profile.steps).unwrap_or_default();
        funnel.count(&events, &mut counts);
    }
    Ok(counts)
}
