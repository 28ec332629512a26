//! The profile store: one Durable Object per profile (named by its profile id), with the
//! profile's events, identifiers (each with the event that linked it), traits and merge log
//! in the object's own SQLite database.
//!
//! Writing is idempotent by `messageId` (the events table's primary key), which is what
//! turns at-least-once delivery into exactly-once in the profile. A merge copies a profile
//! into another (idempotent too), then leaves a forward in the emptied one, so a stale
//! reference still finds the person.

use cdp_protocol::computed;
use cdp_protocol::event::{Event, EventType};
use cdp_protocol::identity::Identifier;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, SqlStorage,
    State,
};

use crate::config::PROFILES;
use crate::http;

/// How many events a profile view returns, newest first.
const VIEW_EVENTS: i64 = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    message_id  TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    name        TEXT,
    timestamp   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL
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
CREATE TABLE IF NOT EXISTS traits (key TEXT PRIMARY KEY, value TEXT NOT NULL, timestamp INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS merge_log (at INTEGER NOT NULL, absorbed TEXT NOT NULL, message_id TEXT NOT NULL, identifiers TEXT NOT NULL);
";

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
}

#[derive(Serialize, Deserialize)]
struct IngestBody {
    profile: String,
    events: Vec<Event>,
    links: Vec<IdentityRow>,
}

#[derive(Serialize, Deserialize)]
struct EventRow {
    message_id: String,
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    received_at: i64,
    body: String,
}

#[derive(Serialize, Deserialize)]
struct TraitRow {
    key: String,
    value: String,
    timestamp: i64,
}

#[derive(Serialize, Deserialize)]
struct Dump {
    events: Vec<EventRow>,
    identity: Vec<IdentityRow>,
    traits: Vec<TraitRow>,
}

#[derive(Serialize, Deserialize)]
struct Absorb {
    from: String,
    message_id: String,
    at: i64,
    dump: Dump,
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
) -> Result<IngestReport> {
    let body = to_json(&IngestBody {
        profile: profile.to_owned(),
        events: events.to_vec(),
        links: links.to_vec(),
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
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    body: String,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize, Serialize)]
struct MergeRow {
    at: i64,
    absorbed: String,
    message_id: String,
    identifiers: String,
}

impl DurableObject for ProfileStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let sql = self.sql();
        sql.exec(SCHEMA, None)?;
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
                http::json(200, &self.store(&body.events)?)
            }
            (Method::Get, "/identity") => http::json(200, &self.holding()?),
            (Method::Get, "/dump") => http::json(200, &self.dump()?),
            (Method::Post, "/absorb") => {
                let absorb: Absorb = req.json().await?;
                self.absorb(absorb)?;
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
                    "DELETE FROM events; DELETE FROM identity; DELETE FROM traits;",
                    None,
                )?;
                self.set_meta("merged_into", &to)?;
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
        })
    }

    fn dump(&self) -> Result<Dump> {
        let sql = self.sql();
        Ok(Dump {
            events: sql
                .exec(
                    "SELECT message_id, type, name, timestamp, received_at, body FROM events",
                    None,
                )?
                .to_array()?,
            identity: sql
                .exec(
                    "SELECT kind, value, first_seen, message_id, via FROM identity",
                    None,
                )?
                .to_array()?,
            traits: sql
                .exec("SELECT key, value, timestamp FROM traits", None)?
                .to_array()?,
        })
    }

    /// Takes in a merged profile: events by `messageId` once, identifiers with their
    /// earliest cause, traits by event time. Writing it twice changes nothing.
    fn absorb(&self, absorb: Absorb) -> Result<()> {
        let sql = self.sql();
        for e in &absorb.dump.events {
            sql.exec(
                "INSERT OR IGNORE INTO events (message_id, type, name, timestamp, received_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                vec![
                    e.message_id.as_str().into(),
                    e.r#type.as_str().into(),
                    e.name.clone().into(),
                    e.timestamp.into(),
                    e.received_at.into(),
                    e.body.as_str().into(),
                ],
            )?;
        }
        for row in &absorb.dump.identity {
            self.link(row)?;
        }
        for t in &absorb.dump.traits {
            self.put_trait(&t.key, &t.value, t.timestamp)?;
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
    fn store(&self, events: &[Event]) -> Result<IngestReport> {
        let sql = self.sql();
        let mut report = IngestReport {
            stored: 0,
            duplicates: 0,
        };
        for event in events {
            let body = serde_json::to_string(&event.body)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            let cursor = sql.exec(
                "INSERT OR IGNORE INTO events (message_id, type, name, timestamp, received_at, body)
                 VALUES (?, ?, ?, ?, ?, ?)",
                vec![
                    event.message_id.as_str().into(),
                    event.kind.as_str().into(),
                    event.name.clone().into(),
                    event.timestamp.into(),
                    event.received_at.into(),
                    body.into(),
                ],
            )?;
            // Drain the cursor so the statement runs before rows_written is read.
            let _ = cursor.to_array::<Value>()?;
            if cursor.rows_written() == 0 {
                report.duplicates += 1;
                continue;
            }
            report.stored += 1;
            if matches!(event.kind, EventType::Identify | EventType::Group) {
                if let Some(Value::Object(traits)) = event.body.get("traits") {
                    for (key, value) in traits {
                        self.put_trait(key, &value.to_string(), event.timestamp)?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Latest value by event time wins, so late-arriving old events cannot overwrite news.
    fn put_trait(&self, key: &str, value: &str, timestamp: i64) -> Result<()> {
        self.sql().exec(
            "INSERT INTO traits (key, value, timestamp) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp
             WHERE excluded.timestamp >= traits.timestamp",
            vec![key.into(), value.into(), timestamp.into()],
        )?;
        Ok(())
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
        let traits: Map<String, Value> = sql
            .exec(
                "SELECT key, value, timestamp FROM traits ORDER BY key",
                None,
            )?
            .to_array::<TraitRow>()?
            .into_iter()
            .map(|r| {
                (
                    r.key,
                    serde_json::from_str(&r.value).unwrap_or(Value::String(r.value)),
                )
            })
            .collect();
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
            "DELETE FROM events; DELETE FROM identity; DELETE FROM traits; DELETE FROM merge_log;",
            None,
        )?;
        self.set_meta("erased_at", &worker::Date::now().as_millis().to_string())?;
        Ok(Erased {
            message_ids,
            identifiers,
        })
    }

    /// The computed traits, from every stored event by event time (so duplicates, stored
    /// once, and late events cannot skew them).
    fn computed(&self) -> Result<computed::Computed> {
        let rows: Vec<FactRow> = self
            .sql()
            .exec("SELECT type, name, timestamp, body FROM events", None)?
            .to_array()?;
        let bodies: Vec<Map<String, Value>> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap_or_default())
            .collect();
        let facts: Vec<computed::Fact> = rows
            .iter()
            .zip(&bodies)
            .map(|(r, body)| computed::Fact {
                kind: &r.r#type,
                name: r.name.as_deref(),
                timestamp: r.timestamp,
                body,
            })
            .collect();
        let now = worker::Date::now().as_millis() as i64;
        Ok(computed::compute(
            &facts,
            now,
            computed::DEFAULT_ABANDON_AFTER_MS,
        ))
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
        Ok(Some(
            json!({"id": self.meta("id")?.unwrap_or_default(), "identifiers": why, "merges": merges}),
        ))
    }
}
