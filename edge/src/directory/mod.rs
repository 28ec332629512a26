//! The profile directory: a searchable summary of every profile (identifiers, traits,
//! computed traits), kept beside the profile partitions so that listing and searching never
//! wake the profiles themselves.
//!
//! Partitioned by profile id over a fixed set of Durable Objects. Each profile publishes
//! its summary after every change; a search asks every partition for its first matches
//! after the cursor, in profile id order, and merges the answers.
//!
//! Each partition also keeps the reports' rollups of its profiles ([`ledger`]): a summary
//! carries the profile's ledger, so the reports are partitioned as the profiles are, and
//! a report asks every partition once, never every profile.

mod ledger;

use cdp_protocol::report::answer::Row;
use cdp_protocol::report::entry::Entry;
use cdp_protocol::report::funnel::Funnel;
use cdp_protocol::search::{self, Param};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::config::DIRECTORY;
use crate::schema::Schema;
use crate::{http, shard};

/// How many objects share the directory.
pub const SHARDS: u64 = 16;
/// Most profiles one page returns.
pub const MAX_PAGE: usize = 200;

#[derive(Serialize, Deserialize, Default)]
struct Call {
    /// The profile (remove).
    #[serde(default)]
    id: String,
    /// Profiles and their summaries (put).
    #[serde(default)]
    docs: Vec<(String, Value)>,
    /// `where` conditions (search).
    #[serde(default)]
    conditions: Vec<String>,
    /// Profiles after this id (search).
    #[serde(default)]
    after: String,
    /// Page size (search).
    #[serde(default)]
    limit: usize,
    /// Only members of any of these audiences (search).
    #[serde(default)]
    any_of: Vec<String>,
    /// Fail this many writes of profile `id` (local development's fault injection).
    #[serde(default)]
    failures: i64,
    /// Rollup metrics (reports).
    #[serde(default)]
    metrics: Vec<String>,
    /// The first hour (reports).
    #[serde(default)]
    from: i64,
    /// The hour after the last (reports).
    #[serde(default)]
    to: i64,
    /// A funnel's steps (reports).
    #[serde(default)]
    steps: Vec<String>,
    /// A funnel's conversion window (reports).
    #[serde(default)]
    window: i64,
}

#[derive(Serialize, Deserialize, Default)]
struct Found {
    #[serde(default)]
    profiles: Vec<Summary>,
    /// Members per audience (counts).
    #[serde(default)]
    counts: std::collections::BTreeMap<String, i64>,
    /// Rollup rows (reports).
    #[serde(default)]
    rows: Vec<Row>,
    /// Profiles that reached each funnel step.
    #[serde(default)]
    reached: Vec<u64>,
}

#[derive(Deserialize)]
struct AudienceCount {
    key: String,
    n: i64,
}

/// One profile as the directory lists it.
#[derive(Serialize, Deserialize, Clone)]
struct Summary {
    id: String,
    doc: String,
}

async fn call(env: &Env, shard: u64, path: &str, body: &Call) -> Result<Found> {
    shard::post(env, DIRECTORY, "directory", shard, path, body).await
}

/// Records (or replaces) the summaries of profiles, one call per shard.
pub async fn put(env: &Env, docs: Vec<(String, Value)>) -> Result<()> {
    let mut by_shard: std::collections::BTreeMap<u64, Vec<(String, Value)>> = Default::default();
    for (id, doc) in docs {
        by_shard
            .entry(shard::of(&id, SHARDS))
            .or_default()
            .push((id, doc));
    }
    let calls = by_shard.into_iter().map(|(s, docs)| async move {
        let body = Call {
            docs,
            ..Call::default()
        };
        call(env, s, "/put", &body).await
    });
    for answer in futures_util::future::join_all(calls).await {
        answer?;
    }
    Ok(())
}

/// Removes profile `id` (merged into another, or erased).
pub async fn remove(env: &Env, id: &str) -> Result<()> {
    let body = Call {
        id: id.to_owned(),
        ..Call::default()
    };
    call(env, shard::of(id, SHARDS), "/remove", &body).await?;
    Ok(())
}

/// One page of profiles matching every condition, in profile id order after `after`;
/// with the cursor of the next page, if there is one.
pub async fn search(
    env: &Env,
    conditions: &[String],
    after: &str,
    limit: usize,
) -> Result<(Vec<Value>, Option<String>)> {
    page(env, conditions, &[], after, limit).await
}

/// One page of the members of any of `audiences` (one audience, or a segment group's),
/// each once, as [`search`] pages.
pub async fn members(
    env: &Env,
    audiences: &[String],
    after: &str,
    limit: usize,
) -> Result<(Vec<Value>, Option<String>)> {
    page(env, &[], audiences, after, limit).await
}

/// How many members each audience has, summed over the partitions.
pub async fn counts(env: &Env) -> Result<std::collections::BTreeMap<String, i64>> {
    let asks = (0..SHARDS).map(|s| async move { call(env, s, "/counts", &Call::default()).await });
    let mut total = std::collections::BTreeMap::new();
    for answer in futures_util::future::join_all(asks).await {
        for (key, n) in answer?.counts {
            *total.entry(key).or_insert(0) += n;
        }
    }
    Ok(total)
}

/// How many profiles the directory lists.
pub async fn size(env: &Env) -> Result<i64> {
    Ok(counts(env).await?.remove("").unwrap_or(0))
}

/// Up to `limit` profile ids of partition `shard` after `after`, for a backfill.
pub async fn ids(env: &Env, shard: u64, after: &str, limit: usize) -> Result<Vec<String>> {
    let body = Call {
        after: after.to_owned(),
        limit,
        ..Call::default()
    };
    Ok(call(env, shard, "/search", &body)
        .await?
        .profiles
        .into_iter()
        .map(|s| s.id)
        .collect())
}

async fn page(
    env: &Env,
    conditions: &[String],
    any_of: &[String],
    after: &str,
    limit: usize,
) -> Result<(Vec<Value>, Option<String>)> {
    let asks = (0..SHARDS).map(|s| {
        let body = Call {
            conditions: conditions.to_vec(),
            after: after.to_owned(),
            limit: limit + 1,
            any_of: any_of.to_vec(),
            ..Call::default()
        };
        async move { call(env, s, "/search", &body).await }
    });
    merge_pages(futures_util::future::join_all(asks).await, limit)
}

/// The first `limit` profiles over every partition's page, in id order, and the cursor.
fn merge_pages(answers: Vec<Result<Found>>, limit: usize) -> Result<(Vec<Value>, Option<String>)> {
    let mut all: Vec<Summary> = Vec::new();
    for answer in answers {
        all.extend(answer?.profiles);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = all.last().filter(|_| more).map(|s| s.id.clone());
    let docs = all
        .into_iter()
        .filter_map(|s| serde_json::from_str(&s.doc).ok())
        .collect();
    Ok((docs, next))
}

/// Every partition's rollup rows of `metrics` between hours `from` and `to` (excluded).
pub async fn rollups(env: &Env, metrics: &[&str], from: i64, to: i64) -> Result<Vec<Row>> {
    let body = Call {
        metrics: metrics.iter().map(|m| (*m).to_owned()).collect(),
        from,
        to,
        ..Call::default()
    };
    let asks = (0..SHARDS).map(|s| call(env, s, "/rollups", &body));
    let mut rows = Vec::new();
    for answer in futures_util::future::join_all(asks).await {
        rows.extend(answer?.rows);
    }
    Ok(rows)
}

/// How many profiles reached each step of `funnel`, over every partition.
pub async fn funnel(env: &Env, funnel: &Funnel) -> Result<Vec<u64>> {
    let body = Call {
        steps: funnel.steps.clone(),
        window: funnel.window,
        from: funnel.from,
        to: funnel.to,
        ..Call::default()
    };
    let asks = (0..SHARDS).map(|s| call(env, s, "/funnel", &body));
    let mut total = vec![0; funnel.steps.len()];
    for answer in futures_util::future::join_all(asks).await {
        for (slot, n) in total.iter_mut().zip(answer?.reached) {
            *slot += n;
        }
    }
    Ok(total)
}

/// Makes the next `failures` writes of profile `id`'s entry fail (local development only:
/// shows that a profile's outbox sends its notice again until it lands).
pub async fn inject_failures(env: &Env, id: &str, failures: i64) -> Result<()> {
    let body = Call {
        id: id.to_owned(),
        failures,
        ..Call::default()
    };
    call(env, shard::of(id, SHARDS), "/faults", &body).await?;
    Ok(())
}

/// One partition of the directory.
#[durable_object]
pub struct ProfileDirectory {
    state: State,
    env: Env,
    schema: Schema,
    /// Whether a fault was ever injected here: known once per instance, so production
    /// writes never query the faults table.
    faults: std::cell::Cell<Option<bool>>,
}

impl ProfileDirectory {
    /// Stores the pending change; a fold follows within [`ledger::FOLD_AFTER`].
    async fn keep_pending(&self, sql: &crate::meter::Sql, pending: ledger::Pending) -> Result<()> {
        if pending.save(sql)? {
            let storage = self.state.storage();
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(ledger::FOLD_AFTER).await?;
            }
        }
        Ok(())
    }

    /// The partition's tables, brought up to date once per instance.
    fn ensure(&self, sql: &crate::meter::Sql) -> Result<()> {
        self.schema.ensure_with(sql, |sql| {
            crate::schema::without_rowid(
                sql,
                "profiles",
                &[
                    "CREATE TABLE IF NOT EXISTS profiles (id TEXT PRIMARY KEY, doc TEXT NOT NULL, ",
                    ledger::COLUMNS,
                    ") WITHOUT ROWID",
                ]
                .concat(),
                "id, doc",
            )?;
            sql.exec(
                &[
                    "CREATE TABLE IF NOT EXISTS faults (id TEXT PRIMARY KEY, remaining INTEGER NOT NULL);",
                    ledger::SCHEMA,
                ]
                .concat(),
                None,
            )?;
            ledger::upgrade(sql, &crate::config::computed_settings(&self.env))
        })
    }
}

impl DurableObject for ProfileDirectory {
    fn new(state: State, env: Env) -> Self {
        // Whether to count (see crate::meter), known before the first statement runs.
        crate::meter::enabled(&env);
        Self {
            state,
            env,
            schema: Schema::default(),
            faults: std::cell::Cell::new(None),
        }
    }

    /// Ten minutes after a change: the changed ledgers are folded into the rollups.
    async fn alarm(&self) -> Result<Response> {
        crate::meter::add(crate::meter::Cost::ObjectAlarm, 1);
        let sql = crate::meter::Sql::of(&self.state, "directory");
        self.ensure(&sql)?;
        ledger::fold(&sql)?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        let sql = crate::meter::Sql::of(&self.state, "directory");
        self.ensure(&sql)?;
        let settings = crate::config::computed_settings(&self.env);
        let body: Call = req.json().await?;
        let path = req.path();
        if matches!(path.as_str(), "/put" | "/remove") && self.faulty(&sql, &body)? {
            return http::error(503, "injected_fault", "a fault injected for this profile");
        }
        match path.as_str() {
            "/faults" => {
                self.faults.set(Some(true));
                sql.exec(
                    "INSERT OR REPLACE INTO faults (id, remaining) VALUES (?, ?)",
                    vec![body.id.into(), body.failures.into()],
                )?;
                http::json(200, &Found::default())
            }
            "/put" => {
                let mut pending = ledger::Pending::load(&sql)?;
                for (id, mut doc) in body.docs {
                    // The ledger is the reports', not part of what a search shows.
                    let entries = doc
                        .as_object_mut()
                        .and_then(|d| d.remove("report"))
                        .map(serde_json::from_value::<Vec<Entry>>)
                        .transpose()?;
                    let as_of = doc
                        .get("updatedAt")
                        .and_then(Value::as_str)
                        .and_then(cdp_protocol::time::parse_rfc3339)
                        .unwrap_or_default();
                    let put = ledger::Put {
                        id: &id,
                        doc: doc.to_string(),
                        entries,
                        as_of,
                    };
                    ledger::put(&sql, &settings, &mut pending, put)?;
                }
                self.keep_pending(&sql, pending).await?;
                http::json(200, &Found::default())
            }
            "/remove" => {
                let mut pending = ledger::Pending::load(&sql)?;
                ledger::remove(&sql, &settings, &mut pending, &body.id)?;
                self.keep_pending(&sql, pending).await?;
                http::json(200, &Found::default())
            }
            "/rollups" => {
                // The changes not folded yet are folded first: a report is never behind.
                ledger::fold(&sql)?;
                let rows = ledger::rows(&sql, &body.metrics, body.from, body.to)?;
                http::json(
                    200,
                    &Found {
                        rows,
                        ..Found::default()
                    },
                )
            }
            "/funnel" => {
                let funnel = Funnel {
                    steps: body.steps,
                    window: body.window,
                    from: body.from,
                    to: body.to,
                };
                let reached = ledger::funnel(&sql, &funnel)?;
                http::json(
                    200,
                    &Found {
                        reached,
                        ..Found::default()
                    },
                )
            }
            "/search" => {
                let mut conditions = Vec::new();
                for text in &body.conditions {
                    match search::parse(text) {
                        Ok(c) => conditions.push(c),
                        Err(e) => return http::error(400, "invalid_condition", &e.to_string()),
                    }
                }
                let (clause, params) = search::to_sql(&conditions);
                let mut bound: Vec<SqlStorageValue> = params
                    .into_iter()
                    .map(|p| match p {
                        Param::Text(t) => t.into(),
                        Param::Number(n) => n.into(),
                    })
                    .collect();
                let any_of = serde_json::to_string(&body.any_of)?;
                bound.push(any_of.clone().into());
                bound.push(any_of.into());
                bound.push(body.after.into());
                bound.push((body.limit.clamp(1, MAX_PAGE + 1) as i64).into());
                let query = [
                    "SELECT id, doc FROM profiles WHERE ",
                    &clause,
                    " AND (? = '[]' OR EXISTS (SELECT 1 FROM json_each(profiles.doc, '$.audiences') AS a WHERE a.value IN (SELECT value FROM json_each(?))))",
                    " AND id > ? ORDER BY id LIMIT ?",
                ]
                .concat();
                let profiles = sql.exec(&query, bound)?.to_array::<Summary>()?;
                http::json(
                    200,
                    &Found {
                        profiles,
                        ..Found::default()
                    },
                )
            }
            "/counts" => {
                // The whole partition under "" and each audience under its key.
                let rows = sql
                    .exec(
                        "SELECT '' AS key, COUNT(*) AS n FROM profiles
                         UNION ALL
                         SELECT a.value AS key, COUNT(*) AS n FROM profiles, json_each(profiles.doc, '$.audiences') AS a GROUP BY a.value",
                        None,
                    )?
                    .to_array::<AudienceCount>()?;
                let counts = rows.into_iter().map(|r| (r.key, r.n)).collect();
                http::json(
                    200,
                    &Found {
                        counts,
                        ..Found::default()
                    },
                )
            }
            _ => http::error(404, "not_found", "no such directory route"),
        }
        }.await)
    }
}

impl ProfileDirectory {
    /// Whether this write meets an injected fault (and uses one up). Reads the faults table
    /// only in an instance where a fault was ever injected.
    fn faulty(&self, sql: &crate::meter::Sql, body: &Call) -> Result<bool> {
        #[derive(Deserialize)]
        struct Remaining {
            remaining: i64,
        }
        let possible = match self.faults.get() {
            Some(known) => known,
            None => {
                let any = !sql
                    .exec("SELECT remaining FROM faults LIMIT 1", None)?
                    .to_array::<Remaining>()?
                    .is_empty();
                self.faults.set(Some(any));
                any
            }
        };
        if !possible {
            return Ok(false);
        }
        let ids: Vec<String> = if body.id.is_empty() {
            body.docs.iter().map(|(id, _)| id.clone()).collect()
        } else {
            vec![body.id.clone()]
        };
        for id in ids {
            let left = sql
                .exec(
                    "SELECT remaining FROM faults WHERE id = ?",
                    vec![id.clone().into()],
                )?
                .to_array::<Remaining>()?;
            if left.first().is_some_and(|r| r.remaining > 0) {
                sql.exec(
                    "UPDATE faults SET remaining = remaining - 1 WHERE id = ?",
                    vec![id.into()],
                )?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}
