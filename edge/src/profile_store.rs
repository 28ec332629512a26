//! The profile store: one Durable Object per profile (named by its profile id), with the
//! profile's events, identifiers (each with the event that linked it), traits and merge log
//! in the object's own SQLite database.
//!
//! Writing is idempotent by `messageId` (the events table's primary key), which is what
//! turns at-least-once delivery into exactly-once in the profile. Each newly stored event
//! also updates the traits (latest by event time, with the source and event of each value)
//! and the computed traits' aggregate, in the same synchronous write. A merge copies a
//! profile into another (idempotent too), then leaves a forward in the emptied one, so a
//! stale reference still finds the person; an unmerge splits one off again. After every
//! change the profile publishes its summary to the [`directory`](crate::directory).

use std::cell::Cell;
use std::collections::BTreeMap;

use cdp_protocol::computed::{self, Aggregate};
use cdp_protocol::event::{Event, EventType};
use cdp_protocol::identity::{identifiers_of, Identifier, Link, Rules};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage,
    State,
};

use crate::config::PROFILES;
use crate::{config, directory, http};

/// How many events a profile view returns, newest first.
const VIEW_EVENTS: i64 = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    message_id  TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    name        TEXT,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL,
    source      TEXT
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp DESC, received_at DESC);
CREATE TABLE IF NOT EXISTS identity (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    via        TEXT,
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS traits (key TEXT PRIMARY KEY, value TEXT NOT NULL, timestamp INTEGER NOT NULL, source TEXT, message_id TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS merge_log (at INTEGER NOT NULL, absorbed TEXT NOT NULL, message_id TEXT NOT NULL, identifiers TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kept_apart (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS unmerge_log (at INTEGER NOT NULL, identifier TEXT NOT NULL, kept_apart_from TEXT NOT NULL, profile TEXT NOT NULL, identifiers TEXT NOT NULL);
";

/// Columns added since the first schema: `(table, column)`, added to objects created before.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("events", "source"),
    ("traits", "source"),
    ("traits", "message_id"),
];
/// The schema version this code writes (kept in `meta`).
const SCHEMA_VERSION: &str = "2";

/// An identifier as the profile keeps it: with the event that linked it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRow {
    /// Identifier kind.
    pub kind: String,
    /// Normalised value.
    pub value: String,
    /// Time of the linking event.
    pub first_seen: i64,
    /// The linking event.
    pub message_id: String,
    /// The identifier it was linked through, `kind:value`.
    pub via: Option<String>,
}

/// What a profile holds of identity, for resolution.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Holding {
    /// Set when this profile was merged into another.
    pub merged_into: Option<String>,
    /// Its identifiers.
    pub ids: Vec<Identifier>,
    /// Pairs of identifiers (`kind:value`) an admin said are two people (unmerge): no
    /// event may join them in one profile.
    #[serde(default)]
    pub apart: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct IngestBody {
    profile: String,
    events: Vec<Event>,
    links: Vec<IdentityRow>,
    /// Name of the source of each event, by `messageId`.
    #[serde(default)]
    sources: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct EventRow {
    message_id: String,
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    received_at: i64,
    body: String,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TraitRow {
    key: String,
    value: String,
    timestamp: i64,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Dump {
    events: Vec<EventRow>,
    identity: Vec<IdentityRow>,
    #[serde(default)]
    apart: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct Absorb {
    from: String,
    message_id: String,
    at: i64,
    dump: Dump,
    /// Set when the profile is created by an unmerge (split from `from`) rather than a merge.
    #[serde(default)]
    split_into: Option<String>,
}

/// What an unmerge moves out of a profile, as the profile computes it.
#[derive(Serialize, Deserialize)]
pub struct Split {
    /// The identifier kept apart from the detached one from now on (`kind:value`).
    pub anchor: String,
    moved: Vec<IdentityRow>,
    kept: Vec<IdentityRow>,
    events: Vec<EventRow>,
}

impl Split {
    /// The identifiers that move, `kind:value`.
    pub fn moved_keys(&self) -> Vec<String> {
        self.moved
            .iter()
            .map(|r| [r.kind.as_str(), ":", &r.value].concat())
            .collect()
    }

    /// How many events move.
    pub fn moved_events(&self) -> usize {
        self.events.len()
    }
}

#[derive(Serialize, Deserialize)]
struct SplitAsk {
    detach: Identifier,
    rules: Rules,
}

#[derive(Serialize, Deserialize)]
struct Detach {
    identifier: String,
    anchor: String,
    into: String,
    message_ids: Vec<String>,
    moved: Vec<String>,
    kept: Vec<IdentityRow>,
}

/// What an erasure removed, for the index and the archive to forget too.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Erased {
    /// The person's events.
    pub message_ids: Vec<String>,
    /// The person's identifiers, `kind:value`.
    pub identifiers: Vec<String>,
}

/// Erases profile `profile`; returns what it held.
pub async fn erase(env: &Env, profile: &str) -> Result<Erased> {
    Ok(call(env, profile, Method::Post, "/erase", None).await?.1)
}

/// What an ingest call reports back.
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestReport {
    /// Events newly stored.
    pub stored: usize,
    /// Events already held (same `messageId`), ignored.
    pub duplicates: usize,
}

async fn call<T: DeserializeOwned>(
    env: &Env,
    profile: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, T)> {
    let mut init = RequestInit::new();
    init.with_method(method).with_body(body.map(Into::into));
    let req = Request::new_with_init(&["https://profile", path].concat(), &init)?;
    let mut res = env
        .durable_object(PROFILES)?
        .id_from_name(profile)?
        .get_stub()?
        .fetch_with_request(req)
        .await?;
    let status = res.status_code();
    if status >= 500 {
        let detail = res.text().await.unwrap_or_default();
        return Err(worker::Error::RustError(format!(
            "profile store answered {status}: {detail}"
        )));
    }
    Ok((status, res.json().await?))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// Stores `events` in profile `profile` and links `links` to it; resolves once durable.
pub async fn ingest(
    env: &Env,
    profile: &str,
    events: &[Event],
    links: &[IdentityRow],
    sources: &BTreeMap<String, String>,
) -> Result<IngestReport> {
    let body = to_json(&IngestBody {
        profile: profile.to_owned(),
        events: events.to_vec(),
        links: links.to_vec(),
        sources: events
            .iter()
            .filter_map(|e| {
                sources
                    .get(&e.message_id)
                    .map(|s| (e.message_id.clone(), s.clone()))
            })
            .collect(),
    })?;
    Ok(call(env, profile, Method::Post, "/events", Some(body))
        .await?
        .1)
}

/// What profile `profile` holds of identity.
pub async fn holding(env: &Env, profile: &str) -> Result<Holding> {
    Ok(call(env, profile, Method::Get, "/identity", None).await?.1)
}

/// Merges profile `from` into `into`, because of event `message_id` at `at`: copies
/// everything, then leaves a forward in `from`. Idempotent.
pub async fn merge(env: &Env, from: &str, into: &str, message_id: &str, at: i64) -> Result<()> {
    let (_, dump): (u16, Dump) = call(env, from, Method::Get, "/dump", None).await?;
    let absorb = to_json(&Absorb {
        from: from.to_owned(),
        message_id: message_id.to_owned(),
        at,
        dump,
        split_into: None,
    })?;
    call::<Value>(env, into, Method::Post, "/absorb", Some(absorb)).await?;
    call::<Value>(
        env,
        from,
        Method::Post,
        "/forward",
        Some(to_json(&json!({"to": into}))?),
    )
    .await?;
    Ok(())
}

/// How profile `profile` would split if `detach` left it (`None`: it does not hold it, or
/// holds nothing else). Changes nothing.
pub async fn split(
    env: &Env,
    profile: &str,
    detach: &Identifier,
    rules: &Rules,
) -> Result<Option<Split>> {
    let ask = to_json(&SplitAsk {
        detach: detach.clone(),
        rules: rules.clone(),
    })?;
    let (status, split): (u16, Value) =
        call(env, profile, Method::Post, "/split", Some(ask)).await?;
    if status != 200 {
        return Ok(None);
    }
    serde_json::from_value(split)
        .map(Some)
        .map_err(|e| worker::Error::RustError(e.to_string()))
}

/// Carries out `split` of profile `from`: its moving part goes into the new profile `into`
/// (first, so nothing is lost if the second step fails), then leaves `from`.
pub async fn apply_split(
    env: &Env,
    from: &str,
    into: &str,
    detach: &Identifier,
    split: Split,
) -> Result<()> {
    let now = worker::Date::now().as_millis() as i64;
    let message_ids = split.events.iter().map(|e| e.message_id.clone()).collect();
    let moved = split.moved_keys();
    let absorb = to_json(&Absorb {
        from: from.to_owned(),
        message_id: "unmerge".to_owned(),
        at: now,
        dump: Dump {
            events: split.events,
            identity: split.moved,
            apart: vec![(detach.key(), split.anchor.clone())],
        },
        split_into: Some(into.to_owned()),
    })?;
    call::<Value>(env, into, Method::Post, "/absorb", Some(absorb)).await?;
    let detach = to_json(&Detach {
        identifier: detach.key(),
        anchor: split.anchor,
        into: into.to_owned(),
        message_ids,
        moved,
        kept: split.kept,
    })?;
    call::<Value>(env, from, Method::Post, "/detach", Some(detach)).await?;
    Ok(())
}

/// A profile as the admin API shows it, or where it went.
pub enum View {
    /// The profile.
    Found(Value),
    /// Merged into another profile.
    MergedInto(String),
    /// No such profile.
    Missing,
}

/// The view (`/profile`) or the explanation (`/explain`) of `profile`.
pub async fn view(env: &Env, profile: &str, what: &str) -> Result<View> {
    let (status, body): (u16, Value) = call(env, profile, Method::Get, what, None).await?;
    Ok(
        match (status, body.get("mergedInto").and_then(Value::as_str)) {
            (200, Some(to)) => View::MergedInto(to.to_owned()),
            (200, None) => View::Found(body),
            _ => View::Missing,
        },
    )
}

/// The Durable Object class holding one profile.
#[durable_object]
pub struct ProfileStore {
    state: State,
    env: Env,
    /// The schema is current (checked once per object instance).
    ready: Cell<bool>,
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

#[derive(Deserialize)]
struct Text {
    value: String,
}

#[derive(Deserialize)]
struct PageRow {
    row: i64,
    timestamp: i64,
    body: String,
}

#[derive(Deserialize)]
struct FactRow {
    message_id: String,
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    body: String,
    source: Option<String>,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct Pair {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct UnmergeRow {
    at: i64,
    identifier: String,
    kept_apart_from: String,
    profile: String,
    identifiers: String,
}

#[derive(Deserialize, Serialize)]
struct MergeRow {
    at: i64,
    absorbed: String,
    message_id: String,
    identifiers: String,
}

impl DurableObject for ProfileStore {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            ready: Cell::new(false),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // A cart just turned abandoned: the directory learns it without a new event.
        self.ensure_schema()?;
        self.publish().await?;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.sql();
        self.ensure_schema()?;
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/events") => {
                let body: IngestBody = match req.json().await {
                    Ok(body) => body,
                    Err(e) => return http::error(400, "invalid_events", &e.to_string()),
                };
                self.set_meta("id", &body.profile)?;
                for link in &body.links {
                    self.link(link)?;
                }
                let report = self.store(&body.events, &body.sources)?;
                self.publish().await?;
                http::json(200, &report)
            }
            (Method::Get, "/identity") => http::json(200, &self.holding()?),
            (Method::Get, "/dump") => http::json(200, &self.dump()?),
            (Method::Post, "/absorb") => {
                let absorb: Absorb = req.json().await?;
                self.absorb(absorb)?;
                self.publish().await?;
                http::json(200, &json!({"ok": true}))
            }
            (Method::Post, "/split") => {
                let ask: SplitAsk = req.json().await?;
                match self.split(&ask)? {
                    Some(split) => http::json(200, &split),
                    None => http::error(
                        409,
                        "cannot_unmerge",
                        "the profile does not hold that identifier, or holds nothing else",
                    ),
                }
            }
            (Method::Post, "/detach") => {
                let detach: Detach = req.json().await?;
                self.detach(&detach)?;
                self.publish().await?;
                http::json(200, &json!({"ok": true}))
            }
            (Method::Post, "/forward") => {
                let to: Value = req.json().await?;
                let to = to
                    .get("to")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                sql.exec(
                    "DELETE FROM events; DELETE FROM identity; DELETE FROM traits; DELETE FROM meta WHERE key = 'aggregate';",
                    None,
                )?;
                self.set_meta("merged_into", &to)?;
                self.publish().await?;
                http::json(200, &json!({"ok": true}))
            }
            (Method::Get, "/profile") => self.answer(|me| me.profile()),
            (Method::Get, "/timeline") => {
                let url = req.url()?;
                let query: Map<String, Value> = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                self.answer(|me| me.timeline(&query))
            }
            (Method::Get, "/export") => self.answer(|me| me.export()),
            (Method::Post, "/erase") => {
                let erased = self.erase()?;
                self.publish().await?;
                http::json(200, &erased)
            }
            (Method::Get, "/explain") => self.answer(|me| me.explain()),
            _ => http::error(404, "not_found", "no such profile store route"),
        }
    }
}

impl ProfileStore {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn kept_apart(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .sql()
            .exec("SELECT a AS key, b AS value FROM kept_apart", None)?
            .to_array::<Pair>()?
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect())
    }

    fn keep_apart(&self, a: &str, b: &str) -> Result<()> {
        self.sql().exec(
            "INSERT OR IGNORE INTO kept_apart (a, b) VALUES (?, ?)",
            vec![a.into(), b.into()],
        )?;
        Ok(())
    }

    /// Creates the tables, and brings an object created by older code up to date: adds
    /// the columns it lacks and computes its aggregate from its events.
    fn ensure_schema(&self) -> Result<()> {
        if self.ready.get() {
            return Ok(());
        }
        let sql = self.sql();
        sql.exec(SCHEMA, None)?;
        if self.meta("schema")?.as_deref() != Some(SCHEMA_VERSION) {
            let mut upgraded = false;
            for (table, column) in ADDED_COLUMNS {
                let probe = ["SELECT ", column, " FROM ", table, " LIMIT 0"].concat();
                if sql.exec(&probe, None).is_err() {
                    let alter = ["ALTER TABLE ", table, " ADD COLUMN ", column, " TEXT"].concat();
                    sql.exec(&alter, None)?;
                    upgraded = true;
                }
            }
            if upgraded {
                self.rebuild()?;
            }
            self.set_meta("schema", SCHEMA_VERSION)?;
        }
        self.ready.set(true);
        Ok(())
    }

    fn aggregate(&self) -> Result<Aggregate> {
        Ok(self
            .meta("aggregate")?
            .and_then(|a| serde_json::from_str(&a).ok())
            .unwrap_or_default())
    }

    fn save_aggregate(&self, aggregate: &Aggregate) -> Result<()> {
        self.set_meta("aggregate", &to_json(aggregate)?)
    }

    /// Recomputes the traits and the aggregate from the stored events (after a merge, an
    /// unmerge or a schema upgrade; rare, so reading every event is fine).
    fn rebuild(&self) -> Result<()> {
        let sql = self.sql();
        sql.exec("DELETE FROM traits", None)?;
        let rows: Vec<FactRow> = sql
            .exec(
                "SELECT message_id, type, name, timestamp, body, source FROM events ORDER BY timestamp, rowid",
                None,
            )?
            .to_array()?;
        let mut aggregate = Aggregate::default();
        for row in &rows {
            let body: Map<String, Value> = serde_json::from_str(&row.body).unwrap_or_default();
            self.take_in(&mut aggregate, row, &body)?;
        }
        self.save_aggregate(&aggregate)
    }

    /// What one newly stored event changes: its traits (identify, group) and the aggregate.
    fn take_in(
        &self,
        aggregate: &mut Aggregate,
        row: &FactRow,
        body: &Map<String, Value>,
    ) -> Result<()> {
        if matches!(row.r#type.as_str(), "identify" | "group") {
            if let Some(Value::Object(traits)) = body.get("traits") {
                for (key, value) in traits {
                    self.put_trait(
                        key,
                        &value.to_string(),
                        row.timestamp,
                        row.source.as_deref(),
                        &row.message_id,
                    )?;
                }
            }
        }
        aggregate.add(&computed::Fact {
            kind: &row.r#type,
            name: row.name.as_deref(),
            timestamp: row.timestamp,
            body,
        });
        Ok(())
    }

    /// The profile's summary for the directory: identifiers by kind, traits, computed traits.
    fn summary(&self) -> Result<Option<Value>> {
        if self.meta("merged_into")?.is_some() {
            return Ok(None);
        }
        let identities = self.identities()?;
        if identities.is_empty() {
            return Ok(None);
        }
        let mut identifiers: Map<String, Value> = Map::new();
        for r in identities {
            if let Value::Array(values) = identifiers
                .entry(r.kind)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                values.push(Value::String(r.value));
            }
        }
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": identifiers,
            "traits": self.traits()?.0,
            "computed": self.computed()?,
            "updatedAt": cdp_protocol::time::format_rfc3339(worker::Date::now().as_millis() as i64),
        })))
    }

    /// Sends the summary to the directory (or takes the profile out of it), and sets an
    /// alarm for when the cart turns abandoned, so the directory hears of it then.
    async fn publish(&self) -> Result<()> {
        let Some(id) = self.meta("id")? else {
            return Ok(());
        };
        match self.summary()? {
            Some(doc) => directory::put(&self.env, &id, doc).await?,
            None => directory::remove(&self.env, &id).await?,
        }
        let now = worker::Date::now().as_millis() as i64;
        let abandon_after = config::abandon_after_ms(&self.env);
        if let Some(at) = self
            .aggregate()?
            .abandons_at(abandon_after)
            .filter(|at| *at > now)
        {
            self.state.storage().set_alarm(at + 1_000).await?;
        }
        Ok(())
    }

    /// The events as links of identifiers, for the pure unmerge.
    fn split(&self, ask: &SplitAsk) -> Result<Option<Split>> {
        let sql = self.sql();
        let rows: Vec<EventRow> = sql
            .exec(
                "SELECT message_id, type, name, timestamp, received_at, body, source FROM events",
                None,
            )?
            .to_array()?;
        let links: Vec<Link> = rows
            .iter()
            .filter_map(|r| {
                let body: Map<String, Value> = serde_json::from_str(&r.body).ok()?;
                let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
                let event = Event {
                    kind: EventType::parse(&r.r#type)?,
                    message_id: r.message_id.clone(),
                    anonymous_id: text("anonymousId"),
                    user_id: text("userId"),
                    name: r.name.clone(),
                    timestamp: r.timestamp,
                    received_at: r.received_at,
                    body,
                };
                let ids = identifiers_of(&event, &ask.rules.identifiers)
                    .into_iter()
                    .filter(|id| ask.rules.admits(id))
                    .collect();
                Some(Link {
                    at: r.timestamp,
                    message_id: r.message_id.clone(),
                    ids,
                })
            })
            .collect();
        let Some(split) = cdp_protocol::identity::unmerge(&links, &ask.detach, &ask.rules) else {
            return Ok(None);
        };
        let rows_of = |ids: &BTreeMap<Identifier, cdp_protocol::identity::Cause>| {
            ids.iter()
                .map(|(id, cause)| IdentityRow {
                    kind: id.kind.clone(),
                    value: id.value.clone(),
                    first_seen: cause.at,
                    message_id: cause.message_id.clone(),
                    via: cause.via.as_ref().map(Identifier::key),
                })
                .collect()
        };
        Ok(Some(Split {
            anchor: split.anchor.key(),
            moved: rows_of(&split.moved),
            kept: rows_of(&split.kept),
            events: rows
                .into_iter()
                .filter(|r| split.moved_events.contains(&r.message_id))
                .collect(),
        }))
    }

    /// Lets the moved part of an unmerge go: its events and identifiers leave, the kept
    /// identifiers get their new causes, traits and aggregate are rebuilt, and it is logged.
    fn detach(&self, detach: &Detach) -> Result<()> {
        let sql = self.sql();
        for id in &detach.message_ids {
            sql.exec(
                "DELETE FROM events WHERE message_id = ?",
                vec![id.as_str().into()],
            )?;
        }
        sql.exec("DELETE FROM identity", None)?;
        for row in &detach.kept {
            self.link(row)?;
        }
        self.rebuild()?;
        self.keep_apart(&detach.identifier, &detach.anchor)?;
        sql.exec(
            "INSERT INTO unmerge_log (at, identifier, kept_apart_from, profile, identifiers) VALUES (?, ?, ?, ?, ?)",
            vec![
                (worker::Date::now().as_millis() as i64).into(),
                detach.identifier.as_str().into(),
                detach.anchor.as_str().into(),
                detach.into.as_str().into(),
                detach.moved.join(" ").into(),
            ],
        )?;
        Ok(())
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let rows = self
            .sql()
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array::<Text>()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    fn answer(&self, build: impl Fn(&Self) -> Result<Option<Value>>) -> Result<Response> {
        if let Some(to) = self.meta("merged_into")? {
            return http::json(200, &json!({"mergedInto": to}));
        }
        match build(self)? {
            Some(body) => http::json(200, &body),
            None => http::error(404, "profile_not_found", "no such profile"),
        }
    }

    fn link(&self, row: &IdentityRow) -> Result<()> {
        self.sql().exec(
            "INSERT INTO identity (kind, value, first_seen, message_id, via) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (kind, value) DO UPDATE SET first_seen = excluded.first_seen, message_id = excluded.message_id,
               via = excluded.via WHERE excluded.first_seen < identity.first_seen",
            vec![
                row.kind.as_str().into(),
                row.value.as_str().into(),
                row.first_seen.into(),
                row.message_id.as_str().into(),
                row.via.clone().into(),
            ],
        )?;
        Ok(())
    }

    fn holding(&self) -> Result<Holding> {
        let ids = self
            .sql()
            .exec(
                "SELECT kind, value, first_seen, message_id, via FROM identity",
                None,
            )?
            .to_array::<IdentityRow>()?
            .into_iter()
            .map(|r| Identifier {
                kind: r.kind,
                value: r.value,
            })
            .collect();
        Ok(Holding {
            merged_into: self.meta("merged_into")?,
            ids,
            apart: self.kept_apart()?,
        })
    }

    fn dump(&self) -> Result<Dump> {
        let sql = self.sql();
        Ok(Dump {
            events: sql
                .exec(
                    "SELECT message_id, type, name, timestamp, received_at, body, source FROM events",
                    None,
                )?
                .to_array()?,
            identity: sql
                .exec(
                    "SELECT kind, value, first_seen, message_id, via FROM identity",
                    None,
                )?
                .to_array()?,
            apart: self.kept_apart()?,
        })
    }

    /// Takes in a merged profile (or the part an unmerge splits off): events by
    /// `messageId` once, identifiers with their earliest cause, then traits and computed
    /// traits rebuilt from all events. Writing it twice changes nothing.
    fn absorb(&self, absorb: Absorb) -> Result<()> {
        let sql = self.sql();
        for e in &absorb.dump.events {
            sql.exec(
                "INSERT OR IGNORE INTO events (message_id, type, name, timestamp, received_at, body, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    e.message_id.as_str().into(),
                    e.r#type.as_str().into(),
                    e.name.clone().into(),
                    e.timestamp.into(),
                    e.received_at.into(),
                    e.body.as_str().into(),
                    e.source.clone().into(),
                ],
            )?;
        }
        for row in &absorb.dump.identity {
            self.link(row)?;
        }
        for (a, b) in &absorb.dump.apart {
            self.keep_apart(a, b)?;
        }
        self.rebuild()?;
        if let Some(me) = &absorb.split_into {
            self.set_meta("id", me)?;
            self.set_meta("split_from", &absorb.from)?;
            return Ok(());
        }
        let already = sql
            .exec(
                "SELECT COUNT(*) AS n FROM merge_log WHERE absorbed = ?",
                vec![absorb.from.as_str().into()],
            )?
            .one::<Count>()?
            .n;
        if already == 0 {
            let ids: Vec<String> = absorb
                .dump
                .identity
                .iter()
                .map(|r| [r.kind.as_str(), ":", &r.value].concat())
                .collect();
            sql.exec(
                "INSERT INTO merge_log (at, absorbed, message_id, identifiers) VALUES (?, ?, ?, ?)",
                vec![
                    absorb.at.into(),
                    absorb.from.into(),
                    absorb.message_id.into(),
                    ids.join(" ").into(),
                ],
            )?;
        }
        Ok(())
    }

    /// Stores events not seen before. No `await` between the writes, so the runtime
    /// commits them together: a crash cannot leave half a batch.
    fn store(&self, events: &[Event], sources: &BTreeMap<String, String>) -> Result<IngestReport> {
        let sql = self.sql();
        let mut report = IngestReport {
            stored: 0,
            duplicates: 0,
        };
        let mut aggregate = self.aggregate()?;
        for event in events {
            let body = to_json(&event.body)?;
            let source = sources.get(&event.message_id).cloned();
            let cursor = sql.exec(
                "INSERT OR IGNORE INTO events (message_id, type, name, timestamp, received_at, body, source)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    event.message_id.as_str().into(),
                    event.kind.as_str().into(),
                    event.name.clone().into(),
                    event.timestamp.into(),
                    event.received_at.into(),
                    body.into(),
                    source.clone().into(),
                ],
            )?;
            // Drain the cursor so the statement runs before rows_written is read.
            let _ = cursor.to_array::<Value>()?;
            if cursor.rows_written() == 0 {
                report.duplicates += 1;
                continue;
            }
            report.stored += 1;
            let row = FactRow {
                message_id: event.message_id.clone(),
                r#type: event.kind.as_str().to_owned(),
                name: event.name.clone(),
                timestamp: event.timestamp,
                body: String::new(),
                source,
            };
            self.take_in(&mut aggregate, &row, &event.body)?;
        }
        self.save_aggregate(&aggregate)?;
        Ok(report)
    }

    /// Latest value by event time wins, so late-arriving old events cannot overwrite news;
    /// each value keeps the source and the event it came from.
    fn put_trait(
        &self,
        key: &str,
        value: &str,
        timestamp: i64,
        source: Option<&str>,
        message_id: &str,
    ) -> Result<()> {
        self.sql().exec(
            "INSERT INTO traits (key, value, timestamp, source, message_id) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp,
               source = excluded.source, message_id = excluded.message_id
             WHERE excluded.timestamp >= traits.timestamp",
            vec![
                key.into(),
                value.into(),
                timestamp.into(),
                source.map(str::to_owned).into(),
                message_id.into(),
            ],
        )?;
        Ok(())
    }

    /// The traits, and where each value came from: `(traits, sources)`.
    fn traits(&self) -> Result<(Map<String, Value>, Map<String, Value>)> {
        let rows = self
            .sql()
            .exec(
                "SELECT key, value, timestamp, source, message_id FROM traits ORDER BY key",
                None,
            )?
            .to_array::<TraitRow>()?;
        let mut traits = Map::new();
        let mut sources = Map::new();
        for r in rows {
            sources.insert(
                r.key.clone(),
                json!({"updatedAt": cdp_protocol::time::format_rfc3339(r.timestamp),
                       "source": r.source, "messageId": r.message_id}),
            );
            let value = serde_json::from_str(&r.value).unwrap_or(Value::String(r.value));
            traits.insert(r.key, value);
        }
        Ok((traits, sources))
    }

    fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.sql()
            .exec("SELECT kind, value, first_seen, message_id, via FROM identity ORDER BY first_seen, kind", None)?
            .to_array()
    }

    fn profile(&self) -> Result<Option<Value>> {
        let sql = self.sql();
        let total = sql
            .exec("SELECT COUNT(*) AS n FROM events", None)?
            .one::<Count>()?
            .n;
        let identities = self.identities()?;
        if total == 0 && identities.is_empty() {
            return Ok(None);
        }
        let identifiers: Vec<Value> = identities
            .iter()
            .map(|r| json!({"type": r.kind, "value": r.value}))
            .collect();
        let (traits, trait_sources) = self.traits()?;
        let events: Vec<Value> = sql
            .exec(
                "SELECT body FROM events ORDER BY timestamp DESC, received_at DESC, rowid DESC LIMIT ?",
                vec![VIEW_EVENTS.into()],
            )?
            .to_array::<BodyRow>()?
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": identifiers,
            "traits": traits,
            "traitSources": trait_sources,
            "computedTraits": self.computed()?,
            "eventCount": total,
            "events": events,
        })))
    }

    /// A page of the timeline, newest first: `limit` (default 50, at most 500), `type`,
    /// `name`, `from` and `to` (ISO 8601 event times), and `cursor` from the previous page.
    fn timeline(&self, query: &Map<String, Value>) -> Result<Option<Value>> {
        let param = |k: &str| {
            query
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let limit = param("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .unwrap_or(50)
            .clamp(1, 500);
        let time = |k: &str| param(k).and_then(cdp_protocol::time::parse_rfc3339);
        let (cursor_time, cursor_row) = param("cursor")
            .and_then(|c| c.split_once('.'))
            .and_then(|(t, r)| Some((t.parse::<i64>().ok()?, r.parse::<i64>().ok()?)))
            .unwrap_or((i64::MAX, i64::MAX));
        let rows: Vec<PageRow> = self
            .sql()
            .exec(
                "SELECT rowid AS row, timestamp, body FROM events
                 WHERE (? IS NULL OR type = ?) AND (? IS NULL OR name = ?)
                   AND timestamp >= ? AND timestamp <= ?
                   AND (timestamp < ? OR (timestamp = ? AND rowid < ?))
                 ORDER BY timestamp DESC, rowid DESC LIMIT ?",
                vec![
                    param("type").into(),
                    param("type").into(),
                    param("name").into(),
                    param("name").into(),
                    time("from").unwrap_or(i64::MIN).into(),
                    time("to").unwrap_or(i64::MAX).into(),
                    cursor_time.into(),
                    cursor_time.into(),
                    cursor_row.into(),
                    (limit + 1).into(),
                ],
            )?
            .to_array()?;
        let more = rows.len() as i64 > limit;
        let page = &rows[..rows.len().min(limit as usize)];
        let next = page
            .last()
            .filter(|_| more)
            .map(|r| format!("{}.{}", r.timestamp, r.row));
        let events: Vec<Value> = page
            .iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        Ok(Some(json!({"events": events, "nextCursor": next})))
    }

    /// Everything held about the person (a data subject access request).
    fn export(&self) -> Result<Option<Value>> {
        let Some(mut profile) = self.profile()? else {
            return Ok(None);
        };
        let events: Vec<Value> = self
            .sql()
            .exec(
                "SELECT body FROM events ORDER BY timestamp, received_at, rowid",
                None,
            )?
            .to_array::<BodyRow>()?
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        profile["events"] = Value::Array(events);
        profile["explain"] = self.explain()?.unwrap_or(Value::Null);
        Ok(Some(profile))
    }

    /// Deletes everything held about the person; returns what the index and the archive
    /// must forget too.
    fn erase(&self) -> Result<Erased> {
        let sql = self.sql();
        let message_ids: Vec<String> = sql
            .exec("SELECT message_id AS value FROM events", None)?
            .to_array::<Text>()?
            .into_iter()
            .map(|r| r.value)
            .collect();
        let identifiers: Vec<String> = self
            .identities()?
            .iter()
            .map(|r| [r.kind.as_str(), ":", &r.value].concat())
            .collect();
        sql.exec(
            "DELETE FROM events; DELETE FROM identity; DELETE FROM traits; DELETE FROM merge_log;
             DELETE FROM unmerge_log; DELETE FROM kept_apart; DELETE FROM meta WHERE key IN ('aggregate', 'split_from');",
            None,
        )?;
        self.set_meta("erased_at", &worker::Date::now().as_millis().to_string())?;
        Ok(Erased {
            message_ids,
            identifiers,
        })
    }

    /// The computed traits, from the aggregate kept as events are stored.
    fn computed(&self) -> Result<computed::Computed> {
        let now = worker::Date::now().as_millis() as i64;
        Ok(self
            .aggregate()?
            .traits(now, config::abandon_after_ms(&self.env)))
    }

    /// Why each identifier belongs here, and which profiles were merged in.
    fn explain(&self) -> Result<Option<Value>> {
        let identities = self.identities()?;
        if identities.is_empty() {
            return Ok(None);
        }
        let merges: Vec<MergeRow> = self
            .sql()
            .exec(
                "SELECT at, absorbed, message_id, identifiers FROM merge_log ORDER BY at",
                None,
            )?
            .to_array()?;
        let why: Vec<Value> = identities
            .iter()
            .map(|r| {
                let because = match &r.via {
                    Some(via) => format!("event {} carried it together with {via}", r.message_id),
                    None => format!("event {} carried it", r.message_id),
                };
                json!({"type": r.kind, "value": r.value, "since": cdp_protocol::time::format_rfc3339(r.first_seen),
                       "messageId": r.message_id, "via": r.via, "because": because})
            })
            .collect();
        let merges: Vec<Value> = merges
            .iter()
            .map(|m| json!({"at": cdp_protocol::time::format_rfc3339(m.at), "absorbed": m.absorbed, "messageId": m.message_id,
                            "identifiers": m.identifiers.split(' ').collect::<Vec<_>>()}))
            .collect();
        let unmerges: Vec<Value> = self
            .sql()
            .exec(
                "SELECT at, identifier, kept_apart_from, profile, identifiers FROM unmerge_log ORDER BY at",
                None,
            )?
            .to_array::<UnmergeRow>()?
            .into_iter()
            .map(|u| json!({"at": cdp_protocol::time::format_rfc3339(u.at), "identifier": u.identifier,
                            "keptApartFrom": u.kept_apart_from, "movedTo": u.profile,
                            "identifiers": u.identifiers.split(' ').collect::<Vec<_>>()}))
            .collect();
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": why,
            "merges": merges,
            "unmerges": unmerges,
            "splitFrom": self.meta("split_from")?,
        })))
    }
}
