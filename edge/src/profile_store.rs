//! The profile store: one Durable Object per profile, with its events, identifiers and
//! traits in the object's own SQLite database.
//!
//! Writing is idempotent by `messageId` (the events table's primary key), which is what
//! turns at-least-once delivery into exactly-once in the profile.

use cdp_protocol::event::{Event, EventType};
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
CREATE TABLE IF NOT EXISTS identifiers (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS traits (
    key       TEXT PRIMARY KEY,
    value     TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
";

/// What an ingest call reports back to the collector.
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestReport {
    /// Events newly stored.
    pub stored: usize,
    /// Events already held (same `messageId`), ignored.
    pub duplicates: usize,
}

/// Stores `events` in the profile named `key`; resolves once they are durable.
pub async fn ingest(env: &Env, key: &str, events: &[Event]) -> Result<IngestReport> {
    let body =
        serde_json::to_string(events).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init("https://profile-store/events", &init)?;
    let mut res = stub(env, key)?.fetch_with_request(req).await?;
    if res.status_code() != 200 {
        let text = res.text().await.unwrap_or_default();
        return Err(worker::Error::RustError(format!(
            "status {}: {text}",
            res.status_code()
        )));
    }
    res.json().await
}

/// Fetches the view of the profile named `key`; `None` when it holds nothing.
pub async fn view(env: &Env, key: &str) -> Result<Option<Value>> {
    let mut res = stub(env, key)?
        .fetch_with_str("https://profile-store/profile")
        .await?;
    match res.status_code() {
        200 => Ok(Some(res.json().await?)),
        404 => Ok(None),
        status => Err(worker::Error::RustError(format!(
            "profile store answered {status}"
        ))),
    }
}

/// Makes the profile named `key` fail its next `failures` writes (local development only).
pub async fn inject_failures(env: &Env, key: &str, failures: u32) -> Result<()> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(failures.to_string().into()));
    let req = Request::new_with_init("https://profile-store/faults", &init)?;
    stub(env, key)?.fetch_with_request(req).await?;
    Ok(())
}

fn stub(env: &Env, key: &str) -> Result<worker::Stub> {
    env.durable_object(PROFILES)?.id_from_name(key)?.get_stub()
}

/// The Durable Object class holding one profile.
#[durable_object]
pub struct ProfileStore {
    state: State,
}

impl DurableObject for ProfileStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/faults") => {
                let failures: i64 = req.text().await?.trim().parse().unwrap_or(0);
                let sql = self.sql();
                sql.exec("CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY CHECK (id = 1), remaining INTEGER NOT NULL)", None)?;
                sql.exec(
                    "INSERT OR REPLACE INTO faults (id, remaining) VALUES (1, ?)",
                    vec![failures.into()],
                )?;
                http::json(200, &json!({"ok": true}))
            }
            (Method::Post, "/events") => {
                if self.take_injected_failure()? {
                    return http::error(500, "injected_failure", "a failure injected for testing");
                }
                let events: Vec<Event> = match req.json().await {
                    Ok(events) => events,
                    Err(e) => return http::error(400, "invalid_events", &e.to_string()),
                };
                http::json(200, &self.store(&events)?)
            }
            (Method::Get, "/profile") => match self.profile()? {
                Some(profile) => http::json(200, &profile),
                None => http::error(404, "profile_not_found", "no such profile"),
            },
            _ => http::error(404, "not_found", "no such profile store route"),
        }
    }
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

#[derive(Deserialize)]
struct IdentifierRow {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct TraitRow {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

impl ProfileStore {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn take_injected_failure(&self) -> Result<bool> {
        let sql = self.sql();
        let exists =
            sql.exec(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'faults'",
                None,
            )?
            .one::<Count>()?
            .n > 0;
        if !exists {
            return Ok(false);
        }
        let remaining = sql
            .exec("SELECT remaining AS n FROM faults WHERE id = 1", None)?
            .to_array::<Count>()?;
        if remaining.first().is_some_and(|r| r.n > 0) {
            sql.exec(
                "UPDATE faults SET remaining = remaining - 1 WHERE id = 1",
                None,
            )?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Stores events not seen before. No `await` between the writes, so the runtime
    /// commits them together: a crash cannot leave half a batch.
    fn store(&self, events: &[Event]) -> Result<IngestReport> {
        let sql = self.sql();
        sql.exec(SCHEMA, None)?;
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
            self.link_identifiers(&sql, event)?;
            if matches!(event.kind, EventType::Identify | EventType::Group) {
                self.merge_traits(&sql, event)?;
            }
        }
        Ok(report)
    }

    fn link_identifiers(&self, sql: &SqlStorage, event: &Event) -> Result<()> {
        let ids = [
            ("anonymousId", &event.anonymous_id),
            ("userId", &event.user_id),
        ];
        for (kind, value) in ids {
            if let Some(value) = value {
                sql.exec(
                    "INSERT INTO identifiers (kind, value, first_seen) VALUES (?, ?, ?)
                     ON CONFLICT (kind, value) DO UPDATE SET first_seen = MIN(first_seen, excluded.first_seen)",
                    vec![kind.into(), value.as_str().into(), event.timestamp.into()],
                )?;
            }
        }
        Ok(())
    }

    /// Latest value by event time wins, so late-arriving old events cannot overwrite news.
    fn merge_traits(&self, sql: &SqlStorage, event: &Event) -> Result<()> {
        let Some(Value::Object(traits)) = event.body.get("traits") else {
            return Ok(());
        };
        for (key, value) in traits {
            sql.exec(
                "INSERT INTO traits (key, value, timestamp) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp
                 WHERE excluded.timestamp >= traits.timestamp",
                vec![key.as_str().into(), value.to_string().into(), event.timestamp.into()],
            )?;
        }
        Ok(())
    }

    fn profile(&self) -> Result<Option<Value>> {
        let sql = self.sql();
        let has_events =
            sql.exec(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'events'",
                None,
            )?
            .one::<Count>()?
            .n > 0;
        if !has_events {
            return Ok(None);
        }
        let identifiers: Vec<Value> = sql
            .exec(
                "SELECT kind, value FROM identifiers ORDER BY first_seen, kind",
                None,
            )?
            .to_array::<IdentifierRow>()?
            .into_iter()
            .map(|r| json!({"type": r.kind, "value": r.value}))
            .collect();
        let traits: Map<String, Value> = sql
            .exec("SELECT key, value FROM traits ORDER BY key", None)?
            .to_array::<TraitRow>()?
            .into_iter()
            .map(|r| {
                (
                    r.key,
                    serde_json::from_str(&r.value).unwrap_or(Value::String(r.value)),
                )
            })
            .collect();
        let total = sql
            .exec("SELECT COUNT(*) AS n FROM events", None)?
            .one::<Count>()?
            .n;
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
            "id": self.state.id().to_string(),
            "identifiers": identifiers,
            "traits": traits,
            "eventCount": total,
            "events": events,
        })))
    }
}
