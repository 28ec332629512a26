//! The audience registry: one Durable Object holding the workspace's audience definitions,
//! segment groups and backfill progress, with a version that grows on every change.
//!
//! Nothing reads it per event: the queue consumer reads the definitions once per delivery
//! and passes them, with their version, to the profiles it writes; a profile keeps the
//! newest it has seen for its alarms.

use cdp_protocol::audience::{self, definition::MAX_AUDIENCES, Definition};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::meter::Sql;

use crate::config::AUDIENCES;
use crate::http;
use crate::schema::Schema;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audiences (key TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS groups (key TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS backfills (key TEXT PRIMARY KEY, version INTEGER NOT NULL, total INTEGER NOT NULL, evaluated INTEGER NOT NULL, shards_left INTEGER NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS destinations (key TEXT PRIMARY KEY, body TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exports (key TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_minute INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS runs (export TEXT NOT NULL, run TEXT NOT NULL, state TEXT NOT NULL, trigger TEXT NOT NULL, pages INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, started_at INTEGER NOT NULL, ended_at INTEGER, error TEXT, file TEXT, PRIMARY KEY (export, run));
CREATE TABLE IF NOT EXISTS run_members (export TEXT NOT NULL, run TEXT NOT NULL, profile TEXT NOT NULL, PRIMARY KEY (export, run, profile));
CREATE TABLE IF NOT EXISTS dead_deliveries (destination TEXT NOT NULL, webhook_id TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (destination, webhook_id));
";

/// Most delivery log entries kept per destination.
const LOG_KEPT: i64 = 500;

/// The definitions as profiles receive them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Definitions {
    /// Grows with every change to any audience.
    pub version: i64,
    /// Each audience's definition, as stored (checked when saved).
    pub definitions: Vec<Value>,
}

impl Definitions {
    /// The checked definitions (a stored one that no longer parses is left out, loudly).
    pub fn parsed(&self) -> Vec<Definition> {
        self.definitions
            .iter()
            .filter_map(|d| match audience::parse(d) {
                Ok(d) => Some(d),
                Err(e) => {
                    worker::console_error!("stored audience definition refused: {e}");
                    None
                }
            })
            .collect()
    }
}

/// A request to the registry (one type for the Worker and the object).
#[derive(Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "camelCase")]
pub enum Ask {
    /// The definitions and their version.
    Definitions,
    /// Every audience with its backfill, and the groups.
    List,
    /// Create (`create`) or replace an audience; `total` profiles will be backfilled.
    Put {
        body: Value,
        create: bool,
        total: i64,
    },
    /// Delete an audience (refused while another names it).
    Delete { key: String, total: i64 },
    /// A backfill chunk's progress.
    Progress {
        key: String,
        version: i64,
        evaluated: i64,
        shard_done: bool,
    },
    /// Create a segment group.
    PutGroup { key: String, name: String },
    /// Create (`create`) or replace a destination (already checked by the Worker).
    PutDestination {
        key: String,
        body: Value,
        create: bool,
    },
    /// Delete a destination.
    DeleteDestination { key: String },
    /// Every destination, secrets included (for delivery; the API masks them).
    Destinations,
    /// Turn a destination off (its receiver answered 410).
    DisableDestination { key: String, reason: String },
    /// Delivery attempts, to the log.
    LogDeliveries { entries: Vec<(String, Value)> },
    /// A destination's delivery log, newest first.
    Deliveries { key: String, limit: i64 },
    /// A delivery given up on, kept for replay.
    DeadDelivery {
        destination: String,
        webhook_id: String,
        body: Value,
    },
    /// Take (and remove) a destination's dead deliveries, for replay.
    TakeDead { key: String },
    /// Create (`create`) or replace an export (already checked by the Worker).
    PutExport {
        key: String,
        body: Value,
        create: bool,
    },
    /// Delete an export (its files stay until deleted from R2).
    DeleteExport { key: String },
    /// Every export with its latest run.
    Exports,
    /// Start run `run` of export `key` (refused while one runs).
    StartRun {
        key: String,
        run: String,
        trigger: String,
    },
    /// Page `page` of a run is written: its rows, bytes and profiles; `file` once done.
    RunPage {
        key: String,
        run: String,
        page: i64,
        rows: i64,
        bytes: i64,
        profiles: Vec<String>,
        file: Option<String>,
    },
    /// A run's page failed (it is retried from that page).
    RunError {
        key: String,
        run: String,
        error: String,
    },
    /// An export's runs, newest first.
    Runs { key: String },
    /// The exports whose schedule fires in minute `minute`, each claimed once.
    Due { minute: i64 },
    /// The export files holding `profile` (an erasure deletes them), forgotten as such.
    FilesHolding { profile: String },
    /// Track event names and property keys seen (the event schema).
    LearnSchema {
        pairs: Vec<(String, String)>,
        at: i64,
    },
    /// The event schema: each name with its property keys.
    EventSchema,
    /// Every audience's size (and the profiles' number, under `""`) in hour `hour`.
    RecordSizes {
        hour: i64,
        sizes: std::collections::BTreeMap<String, i64>,
    },
    /// Audience `key`'s recorded sizes in `[from, to)`.
    Sizes { key: String, from: i64, to: i64 },
}

/// Sends `ask` to the registry; the status and the JSON answer.
pub async fn call(env: &Env, ask: &Ask) -> Result<(u16, Value)> {
    http::ask_object(env, AUDIENCES, "registry", "audience registry", ask).await
}

/// The definitions and their version.
pub async fn definitions(env: &Env) -> Result<Definitions> {
    let (_, body) = call(env, &Ask::Definitions).await?;
    Ok(serde_json::from_value(body)?)
}

/// The registry object.
#[durable_object]
pub struct AudienceRegistry {
    state: State,
    schema: Schema,
}

#[derive(Deserialize)]
struct Row {
    key: String,
    body: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Deserialize, Serialize)]
struct Backfill {
    key: String,
    version: i64,
    total: i64,
    evaluated: i64,
    shards_left: i64,
    started_at: i64,
    finished_at: Option<i64>,
}

#[derive(Deserialize, Serialize)]
struct Group {
    key: String,
    name: String,
    created_at: i64,
}

#[derive(Deserialize)]
struct Number {
    value: i64,
}

fn now() -> i64 {
    worker::Date::now().as_millis() as i64
}

impl DurableObject for AudienceRegistry {
    fn new(state: State, env: Env) -> Self {
        // Whether to count (see crate::meter), known before the first statement runs.
        crate::meter::enabled(&env);
        Self {
            state,
            schema: Schema::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // What this request counted goes back to the caller (see crate::meter).
        crate::meter::stamp(async {
        let sql = Sql::of(&self.state, "registry");
        self.schema.ensure(
            &sql,
            &[SCHEMA, crate::event_schema::SCHEMA, super::sizes::SCHEMA].concat(),
        )?;
        let ask: Ask = match req.json().await {
            Ok(ask) => ask,
            Err(e) => return http::error(400, "invalid_request", &e.to_string()),
        };
        match ask {
            Ask::Definitions => {
                let definitions = rows(&sql)?
                    .into_iter()
                    .filter_map(|r| serde_json::from_str(&r.body).ok())
                    .collect();
                http::json(
                    200,
                    &Definitions {
                        version: version(&sql)?,
                        definitions,
                    },
                )
            }
            Ask::List => list(&sql),
            Ask::Put {
                body,
                create,
                total,
            } => put(&sql, body, create, total),
            Ask::Delete { key, total } => delete(&sql, &key, total),
            Ask::Progress {
                key,
                version,
                evaluated,
                shard_done,
            } => {
                sql.exec(
                    "UPDATE backfills SET evaluated = evaluated + ?, shards_left = shards_left - ?,
                       finished_at = CASE WHEN shards_left - ? <= 0 THEN ? ELSE finished_at END
                     WHERE key = ? AND version = ?",
                    vec![
                        evaluated.into(),
                        i64::from(shard_done).into(),
                        i64::from(shard_done).into(),
                        now().into(),
                        key.into(),
                        version.into(),
                    ],
                )?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::PutDestination { key, body, create } => {
                let held = destination_rows(&sql)?.into_iter().find(|d| d.key == key);
                match (create, &held) {
                    (true, Some(_)) => {
                        let message = format!("a destination {key:?} exists; change it with PUT /v1/destinations/{key}");
                        return http::error(409, "destination_exists", &message);
                    }
                    (false, None) => {
                        return http::error(
                            404,
                            "destination_not_found",
                            &format!("no destination {key:?}"),
                        )
                    }
                    _ => {}
                }
                let now = now();
                let created = held.as_ref().map_or(now, |d| d.created_at);
                // Saving again turns a disabled destination back on.
                sql.exec(
                    "INSERT OR REPLACE INTO destinations (key, body, state, reason, created_at, updated_at) VALUES (?, ?, 'active', NULL, ?, ?)",
                    vec![key.clone().into(), body.to_string().into(), created.into(), now.into()],
                )?;
                http::json(if create { 201 } else { 200 }, &json!({"key": key}))
            }
            Ask::DeleteDestination { key } => {
                let gone = sql
                    .exec(
                        "DELETE FROM destinations WHERE key = ?",
                        vec![key.clone().into()],
                    )?
                    .rows_written();
                if gone == 0 {
                    return http::error(
                        404,
                        "destination_not_found",
                        &format!("no destination {key:?}"),
                    );
                }
                http::json(200, &json!({"deleted": key}))
            }
            Ask::Destinations => {
                let all: Vec<Value> = destination_rows(&sql)?
                    .iter()
                    .map(DestinationRow::shown)
                    .collect();
                http::json(200, &json!({"destinations": all}))
            }
            Ask::DisableDestination { key, reason } => {
                sql.exec(
                    "UPDATE destinations SET state = 'disabled', reason = ? WHERE key = ?",
                    vec![reason.into(), key.into()],
                )?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::LogDeliveries { entries } => {
                for (destination, entry) in entries {
                    sql.exec(
                        "INSERT INTO deliveries (destination, body) VALUES (?, ?)",
                        vec![destination.clone().into(), entry.to_string().into()],
                    )?;
                    sql.exec(
                        "DELETE FROM deliveries WHERE destination = ? AND id <= (SELECT id FROM deliveries WHERE destination = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        vec![destination.clone().into(), destination.into(), LOG_KEPT.into()],
                    )?;
                }
                http::json(200, &json!({"ok": true}))
            }
            Ask::Deliveries { key, limit } => {
                #[derive(Deserialize)]
                struct Logged {
                    body: String,
                }
                let rows: Vec<Logged> = sql
                    .exec(
                        "SELECT body FROM deliveries WHERE destination = ? ORDER BY id DESC LIMIT ?",
                        vec![key.into(), limit.clamp(1, LOG_KEPT).into()],
                    )?
                    .to_array()?;
                let entries: Vec<Value> = rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(&r.body).ok())
                    .collect();
                http::json(200, &json!({"deliveries": entries}))
            }
            Ask::DeadDelivery {
                destination,
                webhook_id,
                body,
            } => {
                sql.exec(
                    "INSERT OR REPLACE INTO dead_deliveries (destination, webhook_id, body, at) VALUES (?, ?, ?, ?)",
                    vec![destination.into(), webhook_id.into(), body.to_string().into(), now().into()],
                )?;
                http::json(200, &json!({"ok": true}))
            }
            Ask::TakeDead { key } => {
                #[derive(Deserialize)]
                struct Dead {
                    body: String,
                }
                let rows: Vec<Dead> = sql
                    .exec(
                        "SELECT body FROM dead_deliveries WHERE destination = ? ORDER BY at",
                        vec![key.clone().into()],
                    )?
                    .to_array()?;
                sql.exec(
                    "DELETE FROM dead_deliveries WHERE destination = ?",
                    vec![key.into()],
                )?;
                let bodies: Vec<Value> = rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(&r.body).ok())
                    .collect();
                http::json(200, &json!({"dead": bodies}))
            }
            Ask::PutExport { key, body, create } => {
                super::exports_registry::put(&sql, key, body, create, now())
            }
            Ask::DeleteExport { key } => super::exports_registry::delete(&sql, &key),
            Ask::Exports => super::exports_registry::list(&sql),
            Ask::StartRun { key, run, trigger } => {
                super::exports_registry::start(&sql, &key, &run, &trigger, now())
            }
            Ask::RunPage {
                key,
                run,
                page,
                rows,
                bytes,
                profiles,
                file,
            } => super::exports_registry::page(
                &sql,
                (&key, &run),
                page,
                (rows, bytes),
                &profiles,
                file,
                now(),
            ),
            Ask::RunError { key, run, error } => {
                super::exports_registry::error(&sql, &key, &run, &error)
            }
            Ask::Runs { key } => super::exports_registry::runs(&sql, &key),
            Ask::Due { minute } => {
                let sizes_due = super::sizes::claim(&sql, minute)?;
                super::exports_registry::due(&sql, minute, sizes_due)
            }
            Ask::LearnSchema { pairs, at } => crate::event_schema::record(&sql, pairs, at),
            Ask::EventSchema => crate::event_schema::read(&sql),
            Ask::RecordSizes { hour, sizes } => super::sizes::record(&sql, hour, sizes),
            Ask::Sizes { key, from, to } => super::sizes::read(&sql, &key, from, to),
            Ask::FilesHolding { profile } => super::exports_registry::holding(&sql, &profile),
            Ask::PutGroup { key, name } => {
                if !audience::definition::valid_key(&key) {
                    return http::error(
                        400,
                        "invalid_group",
                        "a group's key is 1 to 64 characters a-z, 0-9 and _",
                    );
                }
                if !(1..=200).contains(&name.chars().count()) {
                    return http::error(
                        400,
                        "invalid_group",
                        "a group's name is 1 to 200 characters",
                    );
                }
                let existing: Vec<Group> = sql
                    .exec(
                        "SELECT key, name, created_at FROM groups WHERE key = ?",
                        vec![key.clone().into()],
                    )?
                    .to_array()?;
                if !existing.is_empty() {
                    return http::error(
                        409,
                        "group_exists",
                        &format!("a group {key:?} exists; a group's key never changes"),
                    );
                }
                sql.exec(
                    "INSERT INTO groups (key, name, created_at) VALUES (?, ?, ?)",
                    vec![key.clone().into(), name.clone().into(), now().into()],
                )?;
                http::json(201, &json!({"key": key, "name": name}))
            }
        }
        }.await)
    }
}

#[derive(Deserialize)]
struct DestinationRow {
    key: String,
    body: String,
    state: String,
    reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl DestinationRow {
    /// The stored definition with its state and times.
    fn shown(&self) -> Value {
        let mut out: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| json!({}));
        let fmt = cdp_protocol::time::format_rfc3339;
        out["state"] = json!(self.state);
        if let Some(reason) = &self.reason {
            out["disabledReason"] = json!(reason);
        }
        out["createdAt"] = json!(fmt(self.created_at));
        out["updatedAt"] = json!(fmt(self.updated_at));
        out
    }
}

fn destination_rows(sql: &Sql) -> Result<Vec<DestinationRow>> {
    sql.exec(
        "SELECT key, body, state, reason, created_at, updated_at FROM destinations ORDER BY key",
        None,
    )?
    .to_array()
}

fn rows(sql: &Sql) -> Result<Vec<Row>> {
    sql.exec(
        "SELECT key, body, created_at, updated_at FROM audiences ORDER BY key",
        None,
    )?
    .to_array()
}

fn version(sql: &Sql) -> Result<i64> {
    Ok(sql
        .exec("SELECT value FROM meta WHERE key = 'version'", None)?
        .to_array::<Number>()?
        .first()
        .map_or(0, |n| n.value))
}

fn bump(sql: &Sql) -> Result<i64> {
    let next = version(sql)? + 1;
    sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)",
        vec![next.into()],
    )?;
    Ok(next)
}

fn list(sql: &Sql) -> Result<Response> {
    let backfills: Vec<Backfill> = sql
        .exec("SELECT key, version, total, evaluated, shards_left, started_at, finished_at FROM backfills", None)?
        .to_array()?;
    let audiences: Vec<Value> = rows(sql)?
        .into_iter()
        .map(|r| {
            let backfill = backfills.iter().find(|b| b.key == r.key);
            described(&r, backfill)
        })
        .collect();
    let groups: Vec<Group> = sql
        .exec(
            "SELECT key, name, created_at FROM groups ORDER BY key",
            None,
        )?
        .to_array()?;
    http::json(
        200,
        &json!({"version": version(sql)?, "audiences": audiences, "groups": groups.iter().map(|g| json!({
            "key": g.key, "name": g.name, "createdAt": cdp_protocol::time::format_rfc3339(g.created_at)})).collect::<Vec<_>>()}),
    )
}

/// An audience as the API shows it: its definition, times and backfill state.
fn described(row: &Row, backfill: Option<&Backfill>) -> Value {
    let mut out: Value = serde_json::from_str(&row.body).unwrap_or_else(|_| json!({}));
    let fmt = cdp_protocol::time::format_rfc3339;
    out["createdAt"] = json!(fmt(row.created_at));
    out["updatedAt"] = json!(fmt(row.updated_at));
    let (state, progress) = match backfill {
        Some(b) if b.shards_left > 0 => (
            "computing",
            json!({"evaluated": b.evaluated, "total": b.total}),
        ),
        Some(b) => (
            "ready",
            json!({"evaluated": b.evaluated, "total": b.total,
            "finishedAt": b.finished_at.map(fmt)}),
        ),
        None => ("ready", json!({"evaluated": 0, "total": 0})),
    };
    out["state"] = json!(state);
    out["progress"] = progress;
    if let Some(b) = backfill {
        out["version"] = json!(b.version);
    }
    out
}

fn put(sql: &Sql, body: Value, create: bool, total: i64) -> Result<Response> {
    let definition = match audience::parse(&body) {
        Ok(d) => d,
        Err(e) => return bad_definition(&e),
    };
    let existing = rows(sql)?;
    let held = existing.iter().find(|r| r.key == definition.key);
    match (create, held) {
        (true, Some(_)) => {
            let message = format!(
                "an audience {:?} exists; change it with PUT /v1/audiences/{}",
                definition.key, definition.key
            );
            return http::error(409, "audience_exists", &message);
        }
        (false, None) => {
            return http::error(
                404,
                "audience_not_found",
                &format!("no audience {:?}", definition.key),
            )
        }
        _ => {}
    }
    if create && existing.len() >= MAX_AUDIENCES {
        return http::error(
            400,
            "too_many_audiences",
            &format!("at most {MAX_AUDIENCES} audiences"),
        );
    }
    // Checked together with every other audience: names that exist, no cycles.
    let mut all: Vec<Definition> = existing
        .iter()
        .filter(|r| r.key != definition.key)
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|v| audience::parse(&v).ok())
        .collect();
    all.push(definition.clone());
    if let Err(e) = audience::ordered(&all) {
        return bad_definition(&e);
    }
    let now = now();
    if let Some(group) = &definition.group {
        // A group named for the first time is created, named by its key.
        sql.exec(
            "INSERT OR IGNORE INTO groups (key, name, created_at) VALUES (?, ?, ?)",
            vec![group.clone().into(), group.clone().into(), now.into()],
        )?;
    }
    let created_at = held.map_or(now, |r| r.created_at);
    sql.exec(
        "INSERT OR REPLACE INTO audiences (key, body, created_at, updated_at) VALUES (?, ?, ?, ?)",
        vec![
            definition.key.clone().into(),
            body.to_string().into(),
            created_at.into(),
            now.into(),
        ],
    )?;
    let version = start_backfill(sql, &definition.key, total, now)?;
    let row = Row {
        key: definition.key.clone(),
        body: body.to_string(),
        created_at,
        updated_at: now,
    };
    let backfill = Backfill {
        key: definition.key,
        version,
        total,
        evaluated: 0,
        shards_left: crate::directory::SHARDS as i64,
        started_at: now,
        finished_at: None,
    };
    http::json(
        if create { 201 } else { 200 },
        &described(&row, Some(&backfill)),
    )
}

/// Starts a backfill of `key` over `total` profiles; returns the definitions' new version.
fn start_backfill(sql: &Sql, key: &str, total: i64, now: i64) -> Result<i64> {
    let version = bump(sql)?;
    sql.exec(
        "INSERT OR REPLACE INTO backfills (key, version, total, evaluated, shards_left, started_at) VALUES (?, ?, ?, 0, ?, ?)",
        vec![key.into(), version.into(), total.into(), (crate::directory::SHARDS as i64).into(), now.into()],
    )?;
    Ok(version)
}

fn delete(sql: &Sql, key: &str, total: i64) -> Result<Response> {
    let existing = rows(sql)?;
    if !existing.iter().any(|r| r.key == key) {
        return http::error(404, "audience_not_found", &format!("no audience {key:?}"));
    }
    let users: Vec<String> = existing
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|v| audience::parse(&v).ok())
        .filter(|d| audience::depends_on(d).contains(key))
        .map(|d| d.key)
        .collect();
    if !users.is_empty() {
        let message = format!(
            "{} name it with inAudience; change them first",
            users.join(", ")
        );
        return http::error(409, "audience_in_use", &message);
    }
    sql.exec("DELETE FROM audiences WHERE key = ?", vec![key.into()])?;
    // Every member leaves: the profiles are evaluated again without it.
    let version = start_backfill(sql, key, total, now())?;
    http::json(200, &json!({"deleted": key, "version": version}))
}

fn bad_definition(e: &audience::DefinitionError) -> Result<Response> {
    http::definition_refused("invalid_definition", e)
}
