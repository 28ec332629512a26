//! The event schema: the track event names and property keys the platform has seen, kept in
//! the registry object so that the dashboard's pickers offer what is really sent.
//!
//! The consumer learns from each delivery; an isolate remembers the pairs it already
//! reported, so the registry is called only when a delivery brings a name or key not seen
//! before (almost never, once a site's events are known).

use std::cell::RefCell;
use std::collections::HashSet;

use cdp_protocol::event::Event;
use cdp_protocol::report::schema;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::{Env, Response, Result};

use crate::meter::Sql;

use crate::audiences::registry::{self, Ask};
use crate::http;

/// The registry's table.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS event_schema (name TEXT NOT NULL, key TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, PRIMARY KEY (name, key)) WITHOUT ROWID;";
/// Most pairs an isolate remembers before starting afresh.
const REMEMBERED: usize = 20_000;
/// Most event names the schema keeps.
const MAX_NAMES: i64 = 2_000;

thread_local! {
    static REPORTED: RefCell<HashSet<(String, String)>> = RefCell::new(HashSet::new());
}

/// Reports the names and keys of `events` not reported by this isolate yet. Learning is a
/// report, not delivery: a failure is logged and tried again with a later delivery.
pub async fn learn<'a>(env: &Env, events: impl Iterator<Item = &'a Event>, now: i64) {
    let new: Vec<(String, String)> = REPORTED.with(|seen| {
        let seen = seen.borrow();
        schema::pairs(events)
            .into_iter()
            .filter(|p| !seen.contains(p))
            .collect()
    });
    if new.is_empty() {
        return;
    }
    match registry::call(
        env,
        &Ask::LearnSchema {
            pairs: new.clone(),
            at: now,
        },
    )
    .await
    {
        Ok(_) => REPORTED.with(|seen| {
            let mut seen = seen.borrow_mut();
            if seen.len() + new.len() > REMEMBERED {
                seen.clear();
            }
            seen.extend(new);
        }),
        Err(e) => worker::console_error!("event schema not learnt: {e}"),
    }
}

/// `LearnSchema`, in the registry: records the pairs (new names only while fewer than
/// [`MAX_NAMES`] are known).
pub fn record(sql: &Sql, pairs: Vec<(String, String)>, at: i64) -> Result<Response> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let names = sql
        .exec(
            "SELECT COUNT(*) AS n FROM event_schema WHERE key = ''",
            None,
        )?
        .to_array::<Count>()?
        .first()
        .map_or(0, |c| c.n);
    for (name, key) in pairs {
        let known = !sql
            .exec(
                "SELECT name AS n FROM event_schema WHERE name = ? AND key = ''",
                vec![name.clone().into()],
            )?
            .raw()
            .collect::<Vec<_>>()
            .is_empty();
        if !known && names >= MAX_NAMES {
            continue;
        }
        sql.exec(
            "INSERT INTO event_schema (name, key, first_seen, last_seen) VALUES (?, ?, ?, ?)
             ON CONFLICT (name, key) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
            vec![name.into(), key.into(), at.into(), at.into()],
        )?;
    }
    http::json(200, &json!({"ok": true}))
}

/// `EventSchema`, in the registry: each event name with its property keys.
pub fn read(sql: &Sql) -> Result<Response> {
    #[derive(Deserialize)]
    struct Pair {
        name: String,
        key: String,
    }
    let pairs = sql
        .exec(
            "SELECT name, key FROM event_schema ORDER BY name, key",
            None,
        )?
        .to_array::<Pair>()?;
    let mut schema = serde_json::Map::new();
    for p in pairs {
        let keys = schema.entry(p.name).or_insert_with(|| json!([]));
        if let (false, Some(list)) = (p.key.is_empty(), keys.as_array_mut()) {
            list.push(Value::String(p.key));
        }
    }
    http::json(200, &json!({"events": schema}))
}
