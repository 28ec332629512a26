//! The identity index: which profile holds an identifier (`userId:u-42` → `p-…`).
//!
//! Partitioned by identifier over many Durable Objects, so a lookup touches only the
//! objects of the identifiers asked about and no object sees all traffic.

use std::collections::BTreeMap;

use cdp_protocol::identity::Identifier;
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::config::IDENTITIES;
use crate::schema::Schema;
use crate::{http, shard};

/// How many objects share the index.
pub const SHARDS: u64 = 64;

#[derive(Serialize, Deserialize, Default)]
struct Entries {
    #[serde(default)]
    keys: Vec<String>,
    /// A lookup for delivery (injected faults apply), not for the admin API.
    #[serde(default)]
    delivery: bool,
    #[serde(default)]
    found: BTreeMap<String, String>,
    /// Keys of erased people: their events are dropped, never stored again.
    #[serde(default)]
    suppressed: Vec<String>,
    /// How long the delivery that looked these keys up pauses before writing its profiles
    /// (an injected pause, local development only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pause_ms: Option<u64>,
}

/// What the index knows of some identifiers.
#[derive(Default)]
pub struct Known {
    /// Identifier key → profile id.
    pub profiles: BTreeMap<String, String>,
    /// Identifier keys of erased people.
    pub suppressed: Vec<String>,
    /// An injected pause before the delivery writes its profiles (see [`inject_pause`]).
    pub pause_ms: u64,
}

async fn call(env: &Env, shard: u64, path: &str, body: &Entries) -> Result<Entries> {
    shard::post(env, IDENTITIES, "identities", shard, path, body).await
}

/// The profiles holding `keys` (absent keys are not in the map); `delivery` for the
/// consumer's lookups, which injected faults (local development) make fail.
pub async fn lookup(env: &Env, keys: &[String], delivery: bool) -> Result<Known> {
    let calls = shard::group(keys, SHARDS)
        .into_iter()
        .map(|(s, keys)| async move {
            call(
                env,
                s,
                "/lookup",
                &Entries {
                    keys,
                    delivery,
                    ..Entries::default()
                },
            )
            .await
        });
    let mut known = Known::default();
    for answer in futures_util::future::join_all(calls).await {
        let answer = answer?;
        known.profiles.extend(answer.found);
        known.suppressed.extend(answer.suppressed);
        known.pause_ms = known.pause_ms.max(answer.pause_ms.unwrap_or_default());
    }
    Ok(known)
}

/// Forgets `keys` and suppresses them, and their values under any kind: later events
/// carrying one are dropped.
pub async fn suppress(env: &Env, keys: &[String]) -> Result<()> {
    let keys: Vec<String> = keys
        .iter()
        .filter_map(|k| Identifier::from_key(k))
        .flat_map(|id| id.suppression_keys())
        .collect();
    let calls = shard::group(&keys, SHARDS)
        .into_iter()
        .map(|(s, keys)| async move {
            call(
                env,
                s,
                "/suppress",
                &Entries {
                    keys,
                    ..Entries::default()
                },
            )
            .await
        });
    for answer in futures_util::future::join_all(calls).await {
        answer?;
    }
    Ok(())
}

/// Forgets the identifiers `keys` of `profile`, deleted under retention: each only while
/// it still points there (a later merge may have moved it).
pub async fn forget(env: &Env, keys: &[String], profile: &str) -> Result<()> {
    let entries = keys
        .iter()
        .map(|k| (k.clone(), profile.to_owned()))
        .collect();
    post_pairs(env, "/forget", &entries).await
}

/// Points each key at its profile (replacing what was there).
pub async fn assign(env: &Env, entries: &BTreeMap<String, String>) -> Result<()> {
    post_pairs(env, "/assign", entries).await
}

/// Sends each shard its part of `entries` (key → profile) at `path`.
async fn post_pairs(env: &Env, path: &str, entries: &BTreeMap<String, String>) -> Result<()> {
    let keys: Vec<String> = entries.keys().cloned().collect();
    let calls = shard::group(&keys, SHARDS).into_iter().map(|(s, keys)| {
        let found = keys
            .iter()
            .filter_map(|k| entries.get(k).map(|p| (k.clone(), p.clone())))
            .collect();
        async move {
            call(
                env,
                s,
                path,
                &Entries {
                    found,
                    ..Entries::default()
                },
            )
            .await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        answer?;
    }
    Ok(())
}

/// Makes lookups of `key` fail `failures` times (local development only: shows that
/// delivery is retried and loses nothing).
pub async fn inject_failures(env: &Env, key: &str, failures: u32) -> Result<()> {
    put_fault(env, key, key.to_owned(), u64::from(failures)).await
}

/// Makes the next delivery that looks `key` up pause `ms` between resolving its events and
/// writing its profiles (local development only: shows that a profile erased or merged
/// meanwhile refuses the write, and the delivery is resolved again).
pub async fn inject_pause(env: &Env, key: &str, ms: u64) -> Result<()> {
    put_fault(env, key, [PAUSE, key].concat(), ms).await
}

/// Stores fault `row` with its number in the faults table of `key`'s shard.
async fn put_fault(env: &Env, key: &str, row: String, n: u64) -> Result<()> {
    let found = BTreeMap::from([(row, n.to_string())]);
    call(
        env,
        shard::of(key, SHARDS),
        "/faults",
        &Entries {
            found,
            ..Entries::default()
        },
    )
    .await?;
    Ok(())
}

/// Where the faults table keeps an injected pause: the key, so prefixed.
const PAUSE: &str = "pause:";

/// One partition of the index.
#[durable_object]
pub struct IdentityShard {
    state: State,
    schema: Schema,
    /// Whether a fault may be injected here (local development's `/faults`): known once
    /// per instance, so production lookups never query the faults table.
    faults: std::cell::Cell<Option<bool>>,
}

#[derive(Deserialize)]
struct Row {
    key: String,
    profile: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

#[derive(Deserialize)]
struct Remaining {
    remaining: i64,
}

impl DurableObject for IdentityShard {
    fn new(state: State, env: Env) -> Self {
        // Whether to count (see crate::meter), known before the first statement runs.
        crate::meter::enabled(&env);
        Self {
            state,
            schema: Schema::default(),
            faults: std::cell::Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        let sql = crate::meter::Sql::of(&self.state, "identities");
        self.schema.ensure_with(&sql, |sql| {
            crate::schema::without_rowid(
                sql,
                "identities",
                "CREATE TABLE IF NOT EXISTS identities (key TEXT PRIMARY KEY, profile TEXT NOT NULL) WITHOUT ROWID",
                "key, profile",
            )?;
            crate::schema::without_rowid(
                sql,
                "suppressed",
                "CREATE TABLE IF NOT EXISTS suppressed (key TEXT PRIMARY KEY) WITHOUT ROWID",
                "key",
            )?;
            Ok(())
        })?;
        let body: Entries = req.json().await?;
        match req.path().as_str() {
            "/lookup" => {
                let mut found = BTreeMap::new();
                let mut suppressed = Vec::new();
                let mut pause_ms = None;
                let delivery = body.delivery && self.faults_possible(&sql)?;
                for key in body.keys {
                    if delivery {
                        pause_ms = pause_ms.or(self.take_pause(&sql, &key)?);
                    }
                    // Only where a fault was ever injected: production never reads the table.
                    let fault = if delivery {
                        sql.exec(
                            "SELECT remaining FROM faults WHERE key = ?",
                            vec![key.as_str().into()],
                        )?
                        .to_array::<Remaining>()?
                    } else {
                        Vec::new()
                    };
                    if fault.first().is_some_and(|f| f.remaining > 0) {
                        sql.exec(
                            "UPDATE faults SET remaining = remaining - 1 WHERE key = ?",
                            vec![key.as_str().into()],
                        )?;
                        return http::error(
                            500,
                            "injected_failure",
                            "a failure injected for testing",
                        );
                    }
                    let gone = sql
                        .exec(
                            "SELECT key FROM suppressed WHERE key = ?",
                            vec![key.as_str().into()],
                        )?
                        .to_array::<Key>()?;
                    suppressed.extend(gone.into_iter().map(|k| k.key));
                    let rows = sql
                        .exec(
                            "SELECT key, profile FROM identities WHERE key = ?",
                            vec![key.into()],
                        )?
                        .to_array::<Row>()?;
                    found.extend(rows.into_iter().map(|r| (r.key, r.profile)));
                }
                http::json(
                    200,
                    &Entries {
                        found,
                        suppressed,
                        pause_ms,
                        ..Entries::default()
                    },
                )
            }
            "/suppress" => {
                for key in body.keys {
                    sql.exec(
                        "DELETE FROM identities WHERE key = ?",
                        vec![key.as_str().into()],
                    )?;
                    sql.exec(
                        "INSERT OR IGNORE INTO suppressed (key) VALUES (?)",
                        vec![key.into()],
                    )?;
                }
                http::json(200, &Entries::default())
            }
            "/assign" => {
                for (key, profile) in body.found {
                    sql.exec(
                        "INSERT INTO identities (key, profile) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET profile = excluded.profile WHERE profile != excluded.profile",
                        vec![key.into(), profile.into()],
                    )?;
                }
                http::json(200, &Entries::default())
            }
            "/forget" => {
                for (key, profile) in body.found {
                    sql.exec(
                        "DELETE FROM identities WHERE key = ? AND profile = ?",
                        vec![key.into(), profile.into()],
                    )?;
                }
                http::json(200, &Entries::default())
            }
            "/faults" => {
                self.faults.set(Some(true));
                // Local development's only: production shards never create it (a table
                // created is two rows written, in each of the 64 shards).
                sql.exec(FAULTS, None)?;
                for (key, failures) in body.found {
                    let n: i64 = failures.parse().unwrap_or(0);
                    sql.exec(
                        "INSERT OR REPLACE INTO faults (key, remaining) VALUES (?, ?)",
                        vec![key.into(), n.into()],
                    )?;
                }
                http::json(200, &Entries::default())
            }
            _ => http::error(404, "not_found", "no such identity index route"),
        }
        }.await)
    }
}

/// Faults injected into lookups (`/faults`, local development only).
const FAULTS: &str =
    "CREATE TABLE IF NOT EXISTS faults (key TEXT PRIMARY KEY, remaining INTEGER NOT NULL)";

impl IdentityShard {
    /// The pause injected for `key`, if any; taken once.
    fn take_pause(&self, sql: &crate::meter::Sql, key: &str) -> Result<Option<u64>> {
        let pause = [PAUSE, key].concat();
        let found = sql
            .exec(
                "SELECT remaining FROM faults WHERE key = ?",
                vec![pause.as_str().into()],
            )?
            .to_array::<Remaining>()?;
        let Some(found) = found.first() else {
            return Ok(None);
        };
        sql.exec("DELETE FROM faults WHERE key = ?", vec![pause.into()])?;
        Ok(Some(found.remaining.max(0) as u64))
    }

    /// Whether any fault was ever injected into this shard (one query per instance).
    fn faults_possible(&self, sql: &crate::meter::Sql) -> Result<bool> {
        if let Some(known) = self.faults.get() {
            return Ok(known);
        }
        let any = crate::schema::table_exists(sql, "faults")?
            && !sql
                .exec("SELECT key FROM faults LIMIT 1", None)?
                .to_array::<Key>()?
                .is_empty();
        self.faults.set(Some(any));
        Ok(any)
    }
}
