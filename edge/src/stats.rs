//! Counters (`GET /v1/stats`): accepted, rejected by reason, duplicates, bots, consent-
//! dropped, queue retries, dead-lettered. Kept in a few Durable Objects chosen at random
//! per write, so no single object counts all traffic; a read sums them.

use std::collections::{BTreeMap, BTreeSet};

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
    post(env, random_shard(), "add", &counts).await;
}

fn random_shard() -> u32 {
    (js_sys::Math::random() * f64::from(SHARDS)) as u32 % SHARDS
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

/// One queue message's counters, for [`add_once`].
pub struct Carried {
    /// The message's id.
    pub id: String,
    /// Whether the queue hands the message over for the first time (its `attempts` is 1).
    pub first_time: bool,
    /// What it carries.
    pub counts: Counts,
}

/// What one call adds: the counters of messages not added before, and their ids.
#[derive(serde::Serialize, Deserialize)]
struct AddOnce {
    ids: Vec<String>,
    counts: Counts,
}

/// Adds the counters each queue message carries exactly once, however often the queue
/// delivers the message. A message handed over for the first time cannot have been added
/// yet, so only the others are looked up, in every shard (retries are rare); then one
/// shard adds what is new and remembers the ids, as one row per call. (A row per message
/// id was a fifth of a row written per event, and as much again to forget it.) `counts`
/// are added as they are (the caller's own, and the meter's), in the same call.
pub async fn add_once(env: &Env, carried: Vec<Carried>, mut counts: Counts) {
    let carried: Vec<Carried> = carried
        .into_iter()
        .filter(|c| !c.counts.is_empty())
        .collect();
    let again: Vec<&str> = carried
        .iter()
        .filter(|c| !c.first_time)
        .map(|c| c.id.as_str())
        .collect();
    let added_before = if again.is_empty() {
        BTreeSet::new()
    } else {
        match added_among(env, &again).await {
            Ok(added) => added,
            Err(e) => {
                // Counting never fails a delivery; the retried messages go uncounted
                // rather than counted twice.
                worker::console_error!("counting failed: {e}");
                again.iter().map(|id| (*id).to_owned()).collect()
            }
        }
    };
    crate::meter::flush_into(env, &mut counts);
    let mut call = AddOnce {
        ids: Vec::new(),
        counts,
    };
    for c in carried
        .into_iter()
        .filter(|c| !added_before.contains(&c.id))
    {
        for (name, n) in c.counts {
            *call.counts.entry(name).or_default() += n;
        }
        call.ids.push(c.id);
    }
    if !call.ids.is_empty() || !call.counts.is_empty() {
        post(env, random_shard(), "add-once", &call).await;
    }
}

/// Which of `ids` some shard has added.
async fn added_among(env: &Env, ids: &[&str]) -> Result<BTreeSet<String>> {
    let body = serde_json::to_string(ids).map_err(worker::Error::from)?;
    let added: Vec<String> = from_every_shard(env, "https://stats/added", Some(&body)).await?;
    Ok(added.into_iter().collect())
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
    from_every_shard(env, &url, None).await
}

/// Asks every shard at once (a `POST` of `body`, else a `GET`): their lists in one.
async fn from_every_shard<T: serde::de::DeserializeOwned>(
    env: &Env,
    url: &str,
    body: Option<&str>,
) -> Result<Vec<T>> {
    let asks = (0..SHARDS).map(|shard| async move {
        let mut init = RequestInit::new();
        if let Some(body) = body {
            init.with_method(Method::Post).with_body(Some(body.into()));
        }
        let req = Request::new_with_init(url, &init)?;
        let mut res = crate::meter::call(&stub(env, shard)?, req).await?;
        res.json::<Vec<T>>().await
    });
    let mut all = Vec::new();
    for answer in futures_util::future::join_all(asks).await {
        all.extend(answer?);
    }
    Ok(all)
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
        let sql = crate::meter::Sql::of(&self.state, "counters");
        // An object from before version 2 may meet its alarm before any request.
        self.ensure_schema(&sql)?;
        let before = now - APPLIED_FOR_MS;
        sql.exec("DELETE FROM added WHERE at < ?", vec![before.into()])?;
        if crate::schema::table_exists(&sql, "applied")? {
            // Ids kept one per row, before version 2: forgotten the same way, then dropped.
            sql.exec("DELETE FROM applied WHERE at < ?", vec![before.into()])?;
            if sql
                .exec("SELECT id FROM applied LIMIT 1", None)?
                .to_array::<serde_json::Value>()?
                .is_empty()
            {
                sql.exec("DROP TABLE applied", None)?;
            }
        }
        self.state.storage().set_alarm(FORGET_EVERY).await?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        let sql = crate::meter::Sql::of(&self.state, "counters");
        self.ensure_schema(&sql)?;
        let unmetered = crate::meter::Sql::unmetered(&self.state);
        if req.method() == Method::Post && req.path() == "/add-once" {
            let now = worker::Date::now().as_millis() as i64;
            let call: AddOnce = req.json().await?;
            if !call.ids.is_empty() {
                let ids = serde_json::to_string(&call.ids).map_err(worker::Error::from)?;
                sql.exec(
                    "INSERT INTO added (at, ids) VALUES (?, ?)",
                    vec![now.into(), ids.into()],
                )?;
            }
            add_to(&sql, &unmetered, call.counts, now)?;
            // The ids are forgotten by an hourly alarm, not here: a scan per batch would
            // read the whole table each time.
            let storage = self.state.storage();
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(FORGET_EVERY).await?;
            }
            return http::json(200, &serde_json::json!({"ok": true}));
        }
        if req.method() == Method::Post && req.path() == "/added" {
            let ids: Vec<String> = req.json().await?;
            let asked = serde_json::to_string(&ids).map_err(worker::Error::from)?;
            let mut query = String::from(
                "SELECT j.value AS value FROM added AS a, json_each(a.ids) AS j
                 WHERE j.value IN (SELECT value FROM json_each(?))",
            );
            let mut params = vec![asked.clone().into()];
            if crate::schema::table_exists(&sql, "applied")? {
                query.push_str(
                    " UNION SELECT id AS value FROM applied WHERE id IN (SELECT value FROM json_each(?))",
                );
                params.push(asked.into());
            }
            #[derive(Deserialize)]
            struct Id {
                value: String,
            }
            let found: Vec<String> = sql
                .exec(&query, params)?
                .to_array::<Id>()?
                .into_iter()
                .map(|i| i.value)
                .collect();
            return http::json(200, &found);
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

impl StatsShard {
    /// Creates the tables (once per instance).
    fn ensure_schema(&self, sql: &crate::meter::Sql) -> Result<()> {
        self.schema.ensure_with(sql, |sql| {
            crate::schema::without_rowid(
                sql,
                "counters",
                "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
                "name, value",
            )?;
            // The ids of the messages each call added, as a JSON array: one row per call.
            sql.exec("CREATE TABLE IF NOT EXISTS added (at INTEGER NOT NULL, ids TEXT NOT NULL)", None)?;
            sql.exec("CREATE TABLE IF NOT EXISTS hourly (hour INTEGER NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (hour, name)) WITHOUT ROWID", None)?;
            Ok(())
        })
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
