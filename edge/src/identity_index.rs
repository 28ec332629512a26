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
    /// For a conditional assignment: where each key pointed when the delivery read it
    /// (a key absent here was unassigned then).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    expected: BTreeMap<String, String>,
    /// Keys of erased people: their events are dropped, never stored again.
    #[serde(default)]
    suppressed: Vec<String>,
    /// How long the delivery that looked these keys up pauses, by [`Pause`] stage (an
    /// injected pause, local development only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pauses: BTreeMap<String, u64>,
}

/// Where an injected pause holds a delivery (local development only), to show what
/// happens when another consumer, an erasure or a merge lands in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// Between resolving the events and writing the profiles.
    Write,
    /// Between reading the identity index and writing it.
    Assign,
    /// In a merge, between copying the merged profile and forwarding it.
    Forward,
}

impl Pause {
    /// Every stage.
    pub const ALL: [Pause; 3] = [Pause::Write, Pause::Assign, Pause::Forward];

    /// The stage's name, as `/v1/admin/faults?pauseAt=` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Pause::Write => "write",
            Pause::Assign => "assign",
            Pause::Forward => "forward",
        }
    }

    /// The stage named `name`.
    pub fn named(name: &str) -> Option<Pause> {
        Pause::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Waits what `known` says for this stage, if anything.
    pub async fn hold(self, known: &BTreeMap<String, u64>) {
        if let Some(ms) = known.get(self.name()).filter(|ms| **ms > 0) {
            worker::Delay::from(std::time::Duration::from_millis(*ms)).await;
        }
    }
}

/// What the index knows of some identifiers.
#[derive(Default)]
pub struct Known {
    /// Identifier key → profile id.
    pub profiles: BTreeMap<String, String>,
    /// Identifier keys of erased people.
    pub suppressed: Vec<String>,
    /// Injected pauses, by [`Pause`] stage name (see [`inject_pause`]).
    pub pauses: BTreeMap<String, u64>,
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
        for (stage, ms) in answer.pauses {
            let at = known.pauses.entry(stage).or_default();
            *at = (*at).max(ms);
        }
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

/// Points each key at its profile only where the key still points where the delivery read
/// it (`read`: key → profile; a key absent there was unassigned), or points there already:
/// the compare-and-set that lets consumers of different partitions resolve at once. A shard
/// changes none of its keys when one of them moved, or was erased, meanwhile; the keys that
/// did are returned (key → where it points now, empty when erased).
pub async fn assign_if(
    env: &Env,
    entries: &BTreeMap<String, String>,
    read: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let answers = post_pairs_with(env, "/assign-if", entries, read).await?;
    Ok(answers.into_iter().flat_map(|a| a.found).collect())
}

/// Sends each shard its part of `entries` (key → profile) at `path`.
async fn post_pairs(env: &Env, path: &str, entries: &BTreeMap<String, String>) -> Result<()> {
    post_pairs_with(env, path, entries, &BTreeMap::new()).await?;
    Ok(())
}

/// Sends each shard its part of `entries` (key → profile), with what was read of those
/// keys, at `path`; the shards' answers.
async fn post_pairs_with(
    env: &Env,
    path: &str,
    entries: &BTreeMap<String, String>,
    read: &BTreeMap<String, String>,
) -> Result<Vec<Entries>> {
    let keys: Vec<String> = entries.keys().cloned().collect();
    let part = |keys: &[String], of: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        keys.iter()
            .filter_map(|k| of.get(k).map(|p| (k.clone(), p.clone())))
            .collect()
    };
    let calls = shard::group(&keys, SHARDS).into_iter().map(|(s, keys)| {
        let body = Entries {
            found: part(&keys, entries),
            expected: part(&keys, read),
            ..Entries::default()
        };
        async move { call(env, s, path, &body).await }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect()
}

/// Makes lookups of `key` fail `failures` times (local development only: shows that
/// delivery is retried and loses nothing).
pub async fn inject_failures(env: &Env, key: &str, failures: u32) -> Result<()> {
    put_fault(env, key, key.to_owned(), u64::from(failures)).await
}

/// Makes the next delivery that looks `key` up pause `ms` at stage `at` (local development
/// only: shows that a profile erased or merged meanwhile refuses the write, that another
/// consumer's assignment wins over a stale one, and that a merge copies again a profile
/// that changed while it was copied).
pub async fn inject_pause(env: &Env, key: &str, at: Pause, ms: u64) -> Result<()> {
    put_fault(env, key, pause_row(at, key), ms).await
}

/// Where the faults table keeps an injected pause.
fn pause_row(at: Pause, key: &str) -> String {
    format!("pause:{}:{key}", at.name())
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
                let mut pauses = BTreeMap::new();
                let delivery = body.delivery && self.faults_possible(&sql)?;
                for key in body.keys {
                    if delivery {
                        for at in Pause::ALL {
                            if let Some(ms) = self.take_pause(&sql, at, &key)? {
                                pauses.insert(at.name().to_owned(), ms);
                            }
                        }
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
                    if erased(&sql, &key)? {
                        suppressed.push(key.clone());
                    }
                    if let Some(profile) = pointed(&sql, &key)? {
                        found.insert(key, profile);
                    }
                }
                http::json(
                    200,
                    &Entries {
                        found,
                        suppressed,
                        pauses,
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
                    point(&sql, key, profile)?;
                }
                http::json(200, &Entries::default())
            }
            "/assign-if" => {
                // All of this shard's keys or none: a delivery that loses one is resolved
                // again from what the index says now.
                let mut moved = BTreeMap::new();
                for (key, profile) in &body.found {
                    let erased = erased(&sql, key)?;
                    let now = pointed(&sql, key)?;
                    let kept = now.as_ref() == body.expected.get(key) || now.as_ref() == Some(profile);
                    if erased || !kept {
                        moved.insert(key.clone(), if erased { String::new() } else { now.unwrap_or_default() });
                    }
                }
                if moved.is_empty() {
                    for (key, profile) in body.found {
                        point(&sql, key, profile)?;
                    }
                }
                http::json(
                    200,
                    &Entries {
                        found: moved,
                        ..Entries::default()
                    },
                )
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

/// Whether `key` belongs to an erased person.
fn erased(sql: &crate::meter::Sql, key: &str) -> Result<bool> {
    let rows = sql
        .exec("SELECT key FROM suppressed WHERE key = ?", vec![key.into()])?
        .to_array::<Key>()?;
    Ok(rows.iter().any(|row| row.key == key))
}

/// The profile `key` points at, if any.
fn pointed(sql: &crate::meter::Sql, key: &str) -> Result<Option<String>> {
    let rows = sql
        .exec(
            "SELECT profile FROM identities WHERE key = ?",
            vec![key.into()],
        )?
        .to_array::<Row>()?;
    Ok(rows.into_iter().next().map(|r| r.profile))
}

/// Points `key` at `profile` (written only when it changes).
fn point(sql: &crate::meter::Sql, key: String, profile: String) -> Result<()> {
    sql.exec(
        "INSERT INTO identities (key, profile) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET profile = excluded.profile WHERE profile != excluded.profile",
        vec![key.into(), profile.into()],
    )?;
    Ok(())
}

/// Faults injected into lookups (`/faults`, local development only).
const FAULTS: &str =
    "CREATE TABLE IF NOT EXISTS faults (key TEXT PRIMARY KEY, remaining INTEGER NOT NULL)";

impl IdentityShard {
    /// The pause injected for `key` at stage `at`, if any; taken once.
    fn take_pause(&self, sql: &crate::meter::Sql, at: Pause, key: &str) -> Result<Option<u64>> {
        let pause = pause_row(at, key);
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
