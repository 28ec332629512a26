//! Counters (`GET /v1/stats`): accepted, rejected by reason, duplicates, bots, consent-
//! dropped, queue retries, dead-lettered. Kept in a few Durable Objects chosen at random
//! per write, so no single object counts all traffic; a read sums them.

use std::collections::BTreeMap;

use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State,
};

use crate::config::STATS;
use crate::http;

/// How many objects share the counters.
const SHARDS: u32 = 8;

/// Counter increments, by name.
pub type Counts = BTreeMap<String, i64>;

/// Adds `counts` to a random shard. Counting never fails a request: errors are logged.
pub async fn add(env: &Env, counts: Counts) {
    if counts.is_empty() {
        return;
    }
    let shard = (js_sys::Math::random() * f64::from(SHARDS)) as u32 % SHARDS;
    let outcome = async {
        let body =
            serde_json::to_string(&counts).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init("https://stats/add", &init)?;
        stub(env, shard)?.fetch_with_request(req).await
    }
    .await;
    if let Err(e) = outcome {
        worker::console_error!("counting failed: {e}");
    }
}

/// The sum of every shard's counters.
pub async fn read(env: &Env) -> Result<Counts> {
    let mut total = Counts::new();
    for shard in 0..SHARDS {
        let mut res = stub(env, shard)?.fetch_with_str("https://stats/").await?;
        let counts: Counts = res.json().await?;
        for (name, value) in counts {
            *total.entry(name).or_default() += value;
        }
    }
    Ok(total)
}

fn stub(env: &Env, shard: u32) -> Result<worker::Stub> {
    env.durable_object(STATS)?
        .id_from_name(&["stats-", &shard.to_string()].concat())?
        .get_stub()
}

/// One shard of the counters.
#[durable_object]
pub struct StatsShard {
    state: State,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    value: i64,
}

impl DurableObject for StatsShard {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            None,
        )?;
        if req.method() == Method::Post && req.path() == "/set" {
            // Entries that are set, not added to (an import job's progress).
            let entries: Counts = req.json().await?;
            for (name, value) in entries {
                sql.exec(
                    "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                    vec![name.into(), value.into()],
                )?;
            }
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        if req.method() == Method::Post {
            let counts: Counts = req.json().await?;
            for (name, value) in counts {
                sql.exec(
                    "INSERT INTO counters (name, value) VALUES (?, ?)
                     ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    vec![name.into(), value.into()],
                )?;
            }
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        let rows: Counts = sql
            .exec("SELECT name, value FROM counters", None)?
            .to_array::<Row>()?
            .into_iter()
            .map(|r| (r.name, r.value))
            .collect();
        http::json(200, &rows)
    }
}
