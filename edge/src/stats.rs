//! Counters (`GET /v1/stats`): accepted, rejected by reason, duplicates, bots, consent-
//! dropped, queue retries, dead-lettered. Kept in a few Durable Objects chosen at random
//! per write, so no single object counts all traffic; a read sums them.

use std::collections::BTreeMap;

use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State,
};

use cdp_protocol::report::answer::Row;
use cdp_protocol::report::rollup::hour_of;

use crate::config::STATS;
use crate::http;
use crate::schema::Schema;

/// How many objects share the counters.
const SHARDS: u32 = 8;

/// Counter increments, by name.
pub type Counts = BTreeMap<String, i64>;

/// A counter of `/v1/stats`, its name written once (the README explains each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Events the collector queued.
    Accepted,
    /// Events that reached their profile.
    Delivered,
    /// Events dropped as delivered before.
    Duplicates,
    /// Events of erased people, dropped.
    Suppressed,
    /// Events with no usable identifier, dropped.
    Unlinked,
    /// Events that went to the dead-letter store.
    DeadLettered,
    /// Events sent back from the dead-letter store.
    DeadLettersReplayed,
    /// Events an archive replay sent again.
    Replayed,
    /// Queue messages retried.
    QueueRetries,
    /// Profiles merged.
    Merges,
    /// Links the identity guards refused.
    KeptApart,
    /// Events from bots (flagged or dropped).
    Bots,
    /// Events from bots, dropped.
    BotsDropped,
    /// Events without the consent their source requires, dropped.
    ConsentDropped,
    /// Event times replaced for being too far off.
    ClockClamped,
    /// Events trackers' full queues dropped, as they report it.
    ClientDropped,
    /// Audience entries and exits that reached the activation queue.
    MembershipChanges,
    /// Deliveries a destination accepted (2xx).
    DeliveriesSent,
    /// Deliveries tried again later.
    DeliveriesRetried,
    /// Deliveries not sent by rule (no consent, the person erased, a 4xx not retried).
    DeliveriesDropped,
    /// Deliveries refused for good (410).
    DeliveriesFailed,
    /// Deliveries given up after their time, kept in the dead-letter store.
    DeliveriesDeadLettered,
    /// Events given fields of the catalog items they name.
    CatalogEnriched,
    /// Events that left under the workspace's retention.
    RetentionEventsExpired,
    /// Anonymous profiles deleted for having gone quiet.
    RetentionProfilesExpired,
}

impl Counter {
    /// The name in `/v1/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Delivered => "delivered",
            Self::Duplicates => "duplicates",
            Self::Suppressed => "suppressed",
            Self::Unlinked => "unlinked",
            Self::DeadLettered => "dead_lettered",
            Self::DeadLettersReplayed => "dead_letters_replayed",
            Self::Replayed => "replayed",
            Self::QueueRetries => "queue_retries",
            Self::Merges => "merges",
            Self::KeptApart => "kept_apart",
            Self::Bots => "bots",
            Self::BotsDropped => "bots_dropped",
            Self::ConsentDropped => "consent_dropped",
            Self::ClockClamped => "clock_clamped",
            Self::ClientDropped => "client_dropped",
            Self::MembershipChanges => "membership_changes",
            Self::DeliveriesSent => "deliveries_sent",
            Self::DeliveriesRetried => "deliveries_retried",
            Self::DeliveriesDropped => "deliveries_dropped",
            Self::DeliveriesFailed => "deliveries_failed",
            Self::DeliveriesDeadLettered => "deliveries_dead_lettered",
            Self::CatalogEnriched => "catalog_enriched",
            Self::RetentionEventsExpired => "retention.events_expired",
            Self::RetentionProfilesExpired => "retention.profiles_expired",
        }
    }
}

/// Adds `n` to `counter`.
pub fn bump(counts: &mut Counts, counter: Counter, n: i64) {
    *counts.entry(counter.name().to_owned()).or_default() += n;
}

/// Counts one refusal for `reason` (`rejected.<reason>`).
pub fn reject(counts: &mut Counts, reason: &str) {
    *counts.entry(["rejected.", reason].concat()).or_default() += 1;
}

/// Adds `counts` to a random shard. Counting never fails a request: errors are logged.
pub async fn add(env: &Env, mut counts: Counts) {
    crate::meter::flush_into(env, &mut counts);
    if counts.is_empty() {
        return;
    }
    let shard = (js_sys::Math::random() * f64::from(SHARDS)) as u32 % SHARDS;
    post(env, shard, "add", &counts).await;
}

/// Posts `body` to a shard; counting never fails a request, so errors are logged.
async fn post<T: serde::Serialize>(env: &Env, shard: u32, path: &str, body: &T) {
    let outcome = async {
        let body = serde_json::to_string(body).map_err(worker::Error::from)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init(&["https://stats/", path].concat(), &init)?;
        crate::meter::call(&stub(env, shard)?, req).await
    }
    .await;
    if let Err(e) = outcome {
        worker::console_error!("counting failed: {e}");
    }
}

/// How long a shard remembers which queue messages' counters it added: past the queue's
/// retries (a few minutes) with days to spare.
const APPLIED_FOR_MS: i64 = 8 * 24 * 3_600_000;
/// How often a shard forgets ids older than that (an offset: `set_alarm` reads integers
/// as offsets from now).
const FORGET_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Adds the counters each queue message carries exactly once, however often the queue
/// delivers the message: the shard of the message's id remembers the ids it applied. One
/// call per shard the batch's messages fall in.
pub async fn add_once(env: &Env, per_message: Vec<(String, Counts)>) {
    let mut by_shard: BTreeMap<u32, Vec<(String, Counts)>> = BTreeMap::new();
    for (id, counts) in per_message.into_iter().filter(|(_, c)| !c.is_empty()) {
        let shard = crate::shard::of(&id, u64::from(SHARDS)) as u32;
        by_shard.entry(shard).or_default().push((id, counts));
    }
    let calls = by_shard
        .iter()
        .map(|(shard, entries)| post(env, *shard, "add-once", entries));
    futures_util::future::join_all(calls).await;
}

/// Every shard's hourly counters between `from` (included) and `to` (excluded), as
/// report rows (a counter added by several shards appears once per shard).
pub async fn hourly(env: &Env, from: i64, to: i64) -> Result<Vec<Row>> {
    let url = [
        "https://stats/hourly?from=",
        &from.to_string(),
        "&to=",
        &to.to_string(),
    ]
    .concat();
    let asks = (0..SHARDS).map(|shard| {
        let url = url.clone();
        async move {
            let req = Request::new(&url, Method::Get)?;
            let mut res = crate::meter::call(&stub(env, shard)?, req).await?;
            res.json::<Vec<Row>>().await
        }
    });
    let mut rows = Vec::new();
    for answer in futures_util::future::join_all(asks).await {
        rows.extend(answer?);
    }
    Ok(rows)
}

/// The sum of every shard's counters.
pub async fn read(env: &Env) -> Result<Counts> {
    let mut total = Counts::new();
    for shard in 0..SHARDS {
        let req = Request::new("https://stats/", Method::Get)?;
        let mut res = crate::meter::call(&stub(env, shard)?, req).await?;
        let counts: Counts = res.json().await?;
        for (name, value) in counts {
            *total.entry(name).or_default() += value;
        }
    }
    Ok(total)
}

/// Events accepted but not yet settled: in the queue, or lost (a local `wrangler dev`
/// restart loses what its in-memory queue held). Every accepted event ends as exactly one
/// of delivered, duplicate, suppressed, unlinked or dead-lettered (less those replayed
/// from the dead-letter store), so this is what the counters do not account for yet.
pub fn pending(counts: &Counts) -> i64 {
    let get = |counter: Counter| counts.get(counter.name()).copied().unwrap_or(0);
    get(Counter::Accepted)
        - get(Counter::Delivered)
        - get(Counter::Duplicates)
        - get(Counter::Suppressed)
        - get(Counter::Unlinked)
        - (get(Counter::DeadLettered) - get(Counter::DeadLettersReplayed))
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
    schema: Schema,
}

#[derive(Deserialize)]
struct Total {
    name: String,
    value: i64,
}

impl DurableObject for StatsShard {
    fn new(state: State, env: Env) -> Self {
        // Whether to count (see crate::meter), known before the first statement runs.
        crate::meter::enabled(&env);
        Self {
            state,
            schema: Schema::default(),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        crate::meter::add(crate::meter::Cost::ObjectAlarm, 1);
        let now = worker::Date::now().as_millis() as i64;
        crate::meter::Sql::of(&self.state, "counters").exec(
            "DELETE FROM applied WHERE at < ?",
            vec![(now - APPLIED_FOR_MS).into()],
        )?;
        self.state.storage().set_alarm(FORGET_EVERY).await?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        let sql = crate::meter::Sql::of(&self.state, "counters");
        self.schema.ensure_with(&sql, |sql| {
            crate::schema::without_rowid(
                sql,
                "counters",
                "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
                "name, value",
            )?;
            crate::schema::without_rowid(
                sql,
                "applied",
                "CREATE TABLE IF NOT EXISTS applied (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID",
                "id, at",
            )?;
            sql.exec("CREATE TABLE IF NOT EXISTS hourly (hour INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (hour, name)) WITHOUT ROWID", None)?;
            Ok(())
        })?;
        let unmetered = crate::meter::Sql::unmetered(&self.state);
        if req.method() == Method::Post && req.path() == "/add-once" {
            let now = worker::Date::now().as_millis() as i64;
            let entries: Vec<(String, Counts)> = req.json().await?;
            // The messages' counts are summed first: one write per counter per call, not
            // one per counter per message.
            let mut fresh_counts = Counts::new();
            for (id, counts) in entries {
                let fresh = sql
                    .exec(
                        "INSERT OR IGNORE INTO applied (id, at) VALUES (?, ?)",
                        vec![id.into(), now.into()],
                    )?
                    .rows_written();
                if fresh > 0 {
                    for (name, n) in counts {
                        *fresh_counts.entry(name).or_default() += n;
                    }
                }
            }
            add_to(&sql, &unmetered, fresh_counts, now)?;
            // The ids are forgotten by an hourly alarm, not here: a scan per batch would
            // read the whole table each time.
            let storage = self.state.storage();
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(FORGET_EVERY).await?;
            }
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        if req.method() == Method::Post && req.path() == "/set" {
            // Entries that are set, not added to (an import job's progress).
            let entries: Counts = req.json().await?;
            for (name, value) in entries {
                sql.exec(
                    "INSERT INTO counters (name, value) VALUES (?, ?)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    vec![name.into(), value.into()],
                )?;
            }
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        if req.method() == Method::Post {
            let now = worker::Date::now().as_millis() as i64;
            add_to(&sql, &unmetered, req.json().await?, now)?;
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        if req.path() == "/hourly" {
            let url = req.url()?;
            let bound = |name: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == name)
                    .and_then(|(_, v)| v.parse::<i64>().ok())
                    .unwrap_or_default()
            };
            #[derive(Deserialize)]
            struct Hourly {
                hour: i64,
                name: String,
                value: i64,
            }
            let rows: Vec<Row> = sql
                .exec(
                    "SELECT hour, name, value FROM hourly WHERE hour >= ? AND hour < ?",
                    vec![bound("from").into(), bound("to").into()],
                )?
                .to_array::<Hourly>()?
                .into_iter()
                .map(|h| Row {
                    hour: h.hour,
                    metric: h.name,
                    dim: String::new(),
                    value: h.value as f64,
                })
                .collect();
            return http::json(200, &rows);
        }
        let rows: Counts = sql
            .exec("SELECT name, value FROM counters", None)?
            .to_array::<Total>()?
            .into_iter()
            .map(|r| (r.name, r.value))
            .collect();
        http::json(200, &rows)
        }.await)
    }
}

/// Adds to the totals and to the hour of `now` (the overview's pipeline series: counted
/// when the pipeline handled the events, not at their event time). The meter's own counts
/// (`meter.*`) are written unmetered and have no hourly series: they describe the run.
fn add_to(
    sql: &crate::meter::Sql,
    unmetered: &crate::meter::Sql,
    counts: Counts,
    now: i64,
) -> Result<()> {
    let hour = hour_of(now);
    for (name, value) in counts {
        if name.starts_with("meter.") {
            unmetered.exec(
                "INSERT INTO counters (name, value) VALUES (?, ?)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                vec![name.into(), value.into()],
            )?;
            continue;
        }
        sql.exec(
            "INSERT INTO counters (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            vec![name.clone().into(), value.into()],
        )?;
        sql.exec(
            "INSERT INTO hourly (hour, name, value) VALUES (?, ?, ?)
             ON CONFLICT (hour, name) DO UPDATE SET value = value + excluded.value",
            vec![hour.into(), name.into(), value.into()],
        )?;
    }
    Ok(())
}
