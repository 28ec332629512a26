//! Exact duplicate detection: has `(source, messageId)` been delivered in the last 7 days?
//!
//! Keys are spread over many Durable Objects by a hash, so each object sees a small share
//! of traffic and the set scales by adding shards; each object forgets keys older than the
//! window with an alarm. The consumer asks before delivering and records after delivering,
//! so a failure in between can only lead to a second delivery (which the profile store
//! absorbs, being idempotent by `messageId`), never to a lost event.

use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::config::DEDUP;
use crate::http;
use crate::schema::Schema;

/// How often old keys are expired. `set_alarm` takes an integer as an offset from now, not
/// as a time: a `Duration` says so in the type.
const EXPIRY_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How long a delivered `(source, messageId)` is remembered.
pub const WINDOW_MS: i64 = 8 * 24 * 3_600_000; // 7 days promised, one more of margin
/// How many objects share the keys.
pub const SHARDS: u64 = 64;

/// The dedup key of an event.
pub fn key(source: &str, message_id: &str) -> String {
    [source, "\u{1f}", message_id].concat()
}

#[derive(Serialize, Deserialize)]
struct Keys {
    keys: Vec<String>,
    #[serde(default)]
    at: i64,
}

async fn call(env: &Env, shard: u64, path: &str, body: &Keys) -> Result<Keys> {
    crate::shard::post(env, DEDUP, "dedup", shard, path, body).await
}

/// Which of `keys` were delivered already.
pub async fn seen(env: &Env, keys: &[String]) -> Result<Vec<String>> {
    let calls = crate::shard::group(keys, SHARDS)
        .into_iter()
        .map(|(shard, keys)| async move { call(env, shard, "/seen", &Keys { keys, at: 0 }).await });
    let mut seen = Vec::new();
    for answer in futures_util::future::join_all(calls).await {
        seen.extend(answer?.keys);
    }
    Ok(seen)
}

/// Records `keys` as delivered at `at`.
pub async fn record(env: &Env, keys: &[String], at: i64) -> Result<()> {
    let calls = crate::shard::group(keys, SHARDS)
        .into_iter()
        .map(|(shard, keys)| async move { call(env, shard, "/record", &Keys { keys, at }).await });
    for answer in futures_util::future::join_all(calls).await {
        answer?;
    }
    Ok(())
}

/// One shard of the delivered-keys set.
#[durable_object]
pub struct DedupShard {
    state: State,
    schema: Schema,
}

#[derive(Deserialize)]
struct KeyRow {
    key: String,
}

impl DurableObject for DedupShard {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            schema: Schema::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(
            async {
                let sql = crate::meter::Sql::of(&self.state, "dedup");
                self.schema.ensure(
            &sql,
            "CREATE TABLE IF NOT EXISTS delivered (key TEXT PRIMARY KEY, at INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS delivered_by_time ON delivered (at);",
        )?;
                let body: Keys = req.json().await?;
                match req.path().as_str() {
                    "/seen" => {
                        let mut seen = Vec::new();
                        for key in body.keys {
                            let found = sql
                                .exec("SELECT key FROM delivered WHERE key = ?", vec![key.into()])?
                                .to_array::<KeyRow>()?;
                            seen.extend(found.into_iter().map(|r| r.key));
                        }
                        http::json(200, &Keys { keys: seen, at: 0 })
                    }
                    "/record" => {
                        for key in &body.keys {
                            sql.exec(
                                "INSERT OR IGNORE INTO delivered (key, at) VALUES (?, ?)",
                                vec![key.as_str().into(), body.at.into()],
                            )?;
                        }
                        let storage = self.state.storage();
                        if storage.get_alarm().await?.is_none() {
                            storage.set_alarm(EXPIRY_EVERY).await?;
                        }
                        http::json(
                            200,
                            &Keys {
                                keys: Vec::new(),
                                at: body.at,
                            },
                        )
                    }
                    _ => http::error(404, "not_found", "no such dedup route"),
                }
            }
            .await,
        )
    }

    async fn alarm(&self) -> Result<Response> {
        crate::meter::add(crate::meter::Cost::ObjectAlarm, 1);
        let now = worker::Date::now().as_millis() as i64;
        let sql = crate::meter::Sql::of(&self.state, "dedup");
        sql.exec(
            "DELETE FROM delivered WHERE at < ?",
            vec![(now - WINDOW_MS).into()],
        )?;
        self.state.storage().set_alarm(EXPIRY_EVERY).await?;
        Response::empty()
    }
}
