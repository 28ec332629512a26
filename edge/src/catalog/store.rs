//! The catalog store: one Durable Object holding the workspace's catalog items, its kinds'
//! settings, its feeds and the log of every upload and feed run.
//!
//! Items are keyed by `(kind, id)` in a table without rowids, so an upsert writes one row
//! and a lookup of a delivery's items reads one row each. Each upload (or feed run) takes
//! a new generation number; its items carry it, which is how `replace` finds the items a
//! file no longer has, and how a chunk of an older upload arriving late (a queue retry)
//! cannot overwrite what a newer one wrote.

use cdp_protocol::catalog::kind::{Kind, BUILT_IN, MAX_KINDS};
use cdp_protocol::time::format_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::meter::Sql;

use crate::config::CATALOG;
use crate::http;
use crate::schema::Schema;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (kind TEXT NOT NULL, id TEXT NOT NULL, fields TEXT NOT NULL, generation INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kinds (kind TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feeds (key TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_minute INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (job TEXT PRIMARY KEY, kind TEXT NOT NULL, feed TEXT, trigger TEXT NOT NULL, generation INTEGER NOT NULL, replace INTEGER NOT NULL, state TEXT NOT NULL, items INTEGER NOT NULL, chunks INTEGER NOT NULL, chunks_done INTEGER NOT NULL DEFAULT 0, items_done INTEGER NOT NULL DEFAULT 0, removed INTEGER NOT NULL DEFAULT 0, row_errors INTEGER NOT NULL, errors TEXT NOT NULL, error TEXT, started_at INTEGER NOT NULL, ended_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_feed ON uploads (feed, started_at);
CREATE TABLE IF NOT EXISTS upload_chunks (job TEXT NOT NULL, chunk INTEGER NOT NULL, PRIMARY KEY (job, chunk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

/// Most items a page of `GET /v1/catalog/{kind}` holds.
pub const MAX_PAGE: i64 = 500;

/// Feed runs kept per feed in the log.
const RUNS_KEPT: i64 = 100;

/// A request to the catalog store (one type for the Worker and the object).
#[derive(Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "camelCase")]
pub enum Ask {
    /// Every kind's settings (built-in and declared) with its item count, and the
    /// settings' version.
    Kinds,
    /// One kind's settings as stored (`{"mapping"?, "itemFields"?}`; `{}` for a built-in
    /// kind left as it is), or 404.
    Kind { kind: String },
    /// Declare a kind, or change one's settings (already checked by the Worker).
    PutKind { kind: String, body: Value },
    /// One item.
    Item { kind: String, id: String },
    /// Items of a kind in id order, after `after`.
    Page {
        kind: String,
        after: String,
        limit: i64,
    },
    /// Remove one item.
    DeleteItem { kind: String, id: String },
    /// The items named by a delivery's events; the kinds too when the caller's
    /// `kinds_version` is not the current one.
    Lookup {
        pairs: Vec<(String, String)>,
        kinds_version: i64,
    },
    /// An upload (or feed run) begins: its totals; answers its generation.
    StartUpload(Upload),
    /// One chunk of an upload's items is stored (a chunk sent twice counts once).
    PutChunk {
        job: String,
        chunk: i64,
        kind: String,
        generation: i64,
        items: Vec<Map<String, Value>>,
    },
    /// An upload's progress.
    Progress { job: String },
    /// Create (`create`) or replace a feed (already checked by the Worker).
    PutFeed {
        key: String,
        body: Value,
        create: bool,
    },
    /// Every feed with its latest run.
    Feeds,
    /// Delete a feed (its items stay).
    DeleteFeed { key: String },
    /// The feeds whose schedule fires in `minute`, claimed so a repeated trigger pulls
    /// nothing twice; with their definitions.
    Due { minute: i64 },
    /// A feed's runs, newest first.
    Runs { key: String },
}

/// What an upload or feed run holds as it starts.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// Its id.
    pub job: String,
    /// The kind its items are.
    pub kind: String,
    /// The feed it pulled, if any.
    pub feed: Option<String>,
    /// `upload`, `manual` or `schedule`.
    pub trigger: String,
    /// Whether the items the file does not have are removed once all chunks are in.
    pub replace: bool,
    /// Valid items in the file.
    pub items: i64,
    /// Chunks they travel in.
    pub chunks: i64,
    /// Rows refused, and the first of them with line and reason.
    pub row_errors: i64,
    /// The first refused rows, `{line, reason}`.
    pub errors: Vec<Value>,
    /// Why the run failed before reading any row (a feed that could not be pulled).
    pub error: Option<String>,
    /// When it started (ms).
    pub started_at: i64,
}

impl Upload {
    /// A new upload (or feed run) of `kind`, with a new job id and nothing counted yet.
    pub fn begin(kind: &str, feed: Option<&str>, trigger: &str, started_at: i64) -> Result<Self> {
        Ok(Self {
            job: ["cat-", &crate::import_job::random_uuid()?].concat(),
            kind: kind.to_owned(),
            feed: feed.map(str::to_owned),
            trigger: trigger.to_owned(),
            replace: false,
            items: 0,
            chunks: 0,
            row_errors: 0,
            errors: Vec::new(),
            error: None,
            started_at,
        })
    }
}

/// Sends `ask` to the catalog store; its status and answer.
pub async fn call(env: &Env, ask: &Ask) -> Result<(u16, Value)> {
    http::ask_object(env, CATALOG, "catalog", "catalog store", ask).await
}

/// The catalog store object.
#[durable_object]
pub struct CatalogStore {
    state: State,
    schema: Schema,
}

#[derive(Deserialize)]
struct Number {
    value: i64,
}

#[derive(Deserialize)]
struct ItemRow {
    kind: String,
    id: String,
    fields: String,
    updated_at: i64,
}

impl ItemRow {
    fn shown(&self) -> Value {
        let fields: Value = serde_json::from_str(&self.fields).unwrap_or_else(|_| json!({}));
        json!({"kind": self.kind, "id": self.id, "item": fields, "updatedAt": format_rfc3339(self.updated_at)})
    }
}

#[derive(Deserialize)]
struct KindRow {
    kind: String,
    body: String,
    updated_at: i64,
}

#[derive(Deserialize)]
struct FeedRow {
    key: String,
    body: String,
    created_at: i64,
    updated_at: i64,
    last_minute: i64,
}

#[derive(Deserialize)]
struct UploadRow {
    job: String,
    kind: String,
    feed: Option<String>,
    trigger: String,
    replace: i64,
    state: String,
    items: i64,
    chunks: i64,
    chunks_done: i64,
    items_done: i64,
    removed: i64,
    row_errors: i64,
    errors: String,
    error: Option<String>,
    started_at: i64,
    ended_at: Option<i64>,
    generation: i64,
}

const UPLOAD_COLUMNS: &str = "job, kind, feed, trigger, replace, state, items, chunks, chunks_done, items_done, removed, row_errors, errors, error, started_at, ended_at, generation";

impl UploadRow {
    fn shown(&self) -> Value {
        let errors: Value = serde_json::from_str(&self.errors).unwrap_or_else(|_| json!([]));
        json!({"job": self.job, "kind": self.kind, "feed": self.feed, "trigger": self.trigger,
            "state": self.state, "replace": self.replace != 0, "items": self.items,
            "chunks": self.chunks, "chunksDone": self.chunks_done, "itemsDone": self.items_done,
            "removed": self.removed, "rowErrors": self.row_errors, "errors": errors,
            "error": self.error, "startedAt": format_rfc3339(self.started_at),
            "endedAt": self.ended_at.map(format_rfc3339),
            "durationMs": self.ended_at.map(|e| e - self.started_at)})
    }
}

fn now() -> i64 {
    worker::Date::now().as_millis() as i64
}

fn meta(sql: &Sql, key: &str) -> Result<i64> {
    Ok(sql
        .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
        .to_array::<Number>()?
        .first()
        .map_or(0, |n| n.value))
}

fn bump(sql: &Sql, key: &str) -> Result<i64> {
    let next = meta(sql, key)? + 1;
    sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        vec![key.into(), next.into()],
    )?;
    Ok(next)
}

/// Every kind's settings as stored (`{"kind", "mapping"?, "itemFields"?}`), built-in
/// kinds first, with defaults where not changed.
fn kind_bodies(sql: &Sql) -> Result<Vec<(String, Value, Option<i64>)>> {
    let declared: Vec<KindRow> = sql
        .exec(
            "SELECT kind, body, updated_at FROM kinds ORDER BY kind",
            None,
        )?
        .to_array()?;
    let mut out: Vec<(String, Value, Option<i64>)> = BUILT_IN
        .iter()
        .map(|k| ((*k).to_owned(), json!({}), None))
        .collect();
    for row in declared {
        let body = serde_json::from_str(&row.body).unwrap_or_else(|_| json!({}));
        match out.iter_mut().find(|(k, _, _)| *k == row.kind) {
            Some(slot) => *slot = (row.kind, body, Some(row.updated_at)),
            None => out.push((row.kind, body, Some(row.updated_at))),
        }
    }
    Ok(out)
}

/// The kinds as the consumer and uploads use them (a stored one that no longer parses is
/// left out, loudly).
fn kinds_parsed(sql: &Sql) -> Result<Vec<(Kind, Value)>> {
    Ok(kind_bodies(sql)?
        .into_iter()
        .filter_map(|(name, body, _)| match Kind::parse(&name, &body) {
            Ok(kind) => Some((kind, body)),
            Err(e) => {
                worker::console_error!("stored catalog kind {name} refused: {e}");
                None
            }
        })
        .collect())
}

impl DurableObject for CatalogStore {
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
        let sql = Sql::of(&self.state, "catalog");
        self.schema.ensure(&sql, SCHEMA)?;
        let ask: Ask = match req.json().await {
            Ok(ask) => ask,
            Err(e) => return http::error(400, "invalid_request", &e.to_string()),
        };
        match ask {
            Ask::Kinds => kinds(&sql),
            Ask::Kind { kind } => match kind_bodies(&sql)?.into_iter().find(|(k, _, _)| *k == kind) {
                Some((_, body, _)) => http::json(200, &body),
                None => http::error(404, "unknown_kind", &format!("no catalog kind {kind:?}")),
            },
            Ask::PutKind { kind, body } => {
                let known = kind_bodies(&sql)?;
                if !known.iter().any(|(k, _, _)| *k == kind) && known.len() >= MAX_KINDS {
                    let message = format!("a workspace has at most {MAX_KINDS} kinds");
                    return http::error(409, "too_many_kinds", &message);
                }
                sql.exec(
                    "INSERT OR REPLACE INTO kinds (kind, body, updated_at) VALUES (?, ?, ?)",
                    vec![kind.clone().into(), body.to_string().into(), now().into()],
                )?;
                bump(&sql, "kinds_version")?;
                http::json(200, &json!({"kind": kind}))
            }
            Ask::Item { kind, id } => {
                let rows: Vec<ItemRow> = sql
                    .exec(
                        "SELECT kind, id, fields, updated_at FROM items WHERE kind = ? AND id = ?",
                        vec![kind.clone().into(), id.clone().into()],
                    )?
                    .to_array()?;
                match rows.first() {
                    Some(row) => http::json(200, &row.shown()),
                    None => http::error(
                        404,
                        "item_not_found",
                        &format!("the {kind} catalog has no item {id:?}"),
                    ),
                }
            }
            Ask::Page { kind, after, limit } => {
                let limit = limit.clamp(1, MAX_PAGE);
                let rows: Vec<ItemRow> = sql
                    .exec(
                        "SELECT kind, id, fields, updated_at FROM items WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
                        vec![kind.into(), after.into(), (limit + 1).into()],
                    )?
                    .to_array()?;
                let more = rows.len() as i64 > limit;
                let page = &rows[..rows.len().min(limit as usize)];
                let next = more.then(|| page.last().map(|r| r.id.clone())).flatten();
                http::json(
                    200,
                    &json!({"items": page.iter().map(ItemRow::shown).collect::<Vec<_>>(), "next": next}),
                )
            }
            Ask::DeleteItem { kind, id } => {
                let gone = sql
                    .exec(
                        "DELETE FROM items WHERE kind = ? AND id = ?",
                        vec![kind.clone().into(), id.clone().into()],
                    )?
                    .rows_written();
                if gone == 0 {
                    let message = format!("the {kind} catalog has no item {id:?}");
                    return http::error(404, "item_not_found", &message);
                }
                http::json(200, &json!({"deleted": id, "kind": kind}))
            }
            Ask::Lookup {
                pairs,
                kinds_version,
            } => lookup(&sql, &pairs, kinds_version),
            Ask::StartUpload(upload) => start_upload(&sql, upload),
            Ask::PutChunk {
                job,
                chunk,
                kind,
                generation,
                items,
            } => put_chunk(&sql, &job, chunk, &kind, generation, &items),
            Ask::Progress { job } => match upload(&sql, &job)? {
                Some(row) => http::json(200, &row.shown()),
                None => http::error(
                    404,
                    "upload_not_found",
                    &format!("no catalog upload {job:?}"),
                ),
            },
            Ask::PutFeed { key, body, create } => put_feed(&sql, key, &body, create),
            Ask::Feeds => feeds(&sql),
            Ask::DeleteFeed { key } => {
                let gone = sql
                    .exec("DELETE FROM feeds WHERE key = ?", vec![key.clone().into()])?
                    .rows_written();
                if gone == 0 {
                    return http::error(404, "feed_not_found", &format!("no feed {key:?}"));
                }
                http::json(200, &json!({"deleted": key}))
            }
            Ask::Due { minute } => due(&sql, minute),
            Ask::Runs { key } => {
                let runs: Vec<UploadRow> = sql
                    .exec(
                        &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE feed = ? ORDER BY started_at DESC LIMIT ?"),
                        vec![key.into(), RUNS_KEPT.into()],
                    )?
                    .to_array()?;
                http::json(
                    200,
                    &json!({"runs": runs.iter().map(UploadRow::shown).collect::<Vec<_>>()}),
                )
            }
        }
        }.await)
    }
}

fn kinds(sql: &Sql) -> Result<Response> {
    #[derive(Deserialize)]
    struct Count {
        kind: String,
        n: i64,
    }
    let counts: Vec<Count> = sql
        .exec("SELECT kind, COUNT(*) AS n FROM items GROUP BY kind", None)?
        .to_array()?;
    let shown: Vec<Value> = kind_bodies(sql)?
        .into_iter()
        .map(|(name, body, updated)| {
            let item_fields =
                Kind::parse(&name, &body).map_or(Value::Null, |k| k.item_fields_json());
            let items = counts.iter().find(|c| c.kind == name).map_or(0, |c| c.n);
            json!({"kind": name, "mapping": body.get("mapping"), "itemFields": item_fields,
                "items": items, "builtIn": BUILT_IN.contains(&name.as_str()),
                "updatedAt": updated.map(format_rfc3339)})
        })
        .collect();
    http::json(
        200,
        &json!({"kinds": shown, "version": meta(sql, "kinds_version")?}),
    )
}

fn lookup(sql: &Sql, pairs: &[(String, String)], known_version: i64) -> Result<Response> {
    let mut found = Vec::new();
    // One statement per kind, with up to 100 ids each (SQLite's bound-parameter limit).
    let mut by_kind: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (kind, id) in pairs {
        by_kind.entry(kind.as_str()).or_default().push(id.as_str());
    }
    for (kind, ids) in by_kind {
        for part in ids.chunks(90) {
            let marks = vec!["?"; part.len()].join(", ");
            let mut bound: Vec<worker::SqlStorageValue> = vec![kind.into()];
            bound.extend(part.iter().map(|id| (*id).into()));
            let rows: Vec<ItemRow> = sql
                .exec(
                    &format!("SELECT kind, id, fields, updated_at FROM items WHERE kind = ? AND id IN ({marks})"),
                    bound,
                )?
                .to_array()?;
            for row in rows {
                let fields: Value = serde_json::from_str(&row.fields).unwrap_or_else(|_| json!({}));
                found.push(json!([row.kind, row.id, fields]));
            }
        }
    }
    let version = meta(sql, "kinds_version")?;
    let kinds = if version == known_version {
        Value::Null
    } else {
        json!(kinds_parsed(sql)?
            .into_iter()
            .map(|(k, body)| json!([k.name, body]))
            .collect::<Vec<_>>())
    };
    http::json(
        200,
        &json!({"items": found, "kindsVersion": version, "kinds": kinds}),
    )
}

fn upload(sql: &Sql, job: &str) -> Result<Option<UploadRow>> {
    let rows: Vec<UploadRow> = sql
        .exec(
            &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE job = ?"),
            vec![job.into()],
        )?
        .to_array()?;
    Ok(rows.into_iter().next())
}

fn start_upload(sql: &Sql, u: Upload) -> Result<Response> {
    if let Some(held) = upload(sql, &u.job)? {
        return http::json(200, &json!({"generation": held.generation}));
    }
    let generation = bump(sql, "generation")?;
    let done = u.error.is_some() || u.chunks == 0;
    let state = match (&u.error, done) {
        (Some(_), _) => "failed",
        (None, true) => "done",
        (None, false) => "delivering",
    };
    sql.exec(
        "INSERT INTO uploads (job, kind, feed, trigger, generation, replace, state, items, chunks, row_errors, errors, error, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            u.job.clone().into(),
            u.kind.into(),
            u.feed.clone().into(),
            u.trigger.into(),
            generation.into(),
            i64::from(u.replace).into(),
            state.into(),
            u.items.into(),
            u.chunks.into(),
            u.row_errors.into(),
            Value::Array(u.errors).to_string().into(),
            u.error.into(),
            u.started_at.into(),
            done.then(now).into(),
        ],
    )?;
    if let Some(feed) = &u.feed {
        // The log keeps a feed's latest runs.
        sql.exec(
            "DELETE FROM uploads WHERE feed = ? AND job NOT IN (SELECT job FROM uploads WHERE feed = ? ORDER BY started_at DESC LIMIT ?)",
            vec![feed.clone().into(), feed.clone().into(), RUNS_KEPT.into()],
        )?;
    }
    http::json(201, &json!({"generation": generation}))
}

fn put_chunk(
    sql: &Sql,
    job: &str,
    chunk: i64,
    kind: &str,
    generation: i64,
    items: &[Map<String, Value>],
) -> Result<Response> {
    let at = now();
    for item in items {
        let Some(id) = item.get("id").and_then(Value::as_str) else {
            continue;
        };
        let fields: Map<String, Value> = item
            .iter()
            .filter(|(k, _)| k.as_str() != "id")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // A chunk of an older upload arriving after a newer one's leaves the newer item.
        sql.exec(
            "INSERT INTO items (kind, id, fields, generation, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (kind, id) DO UPDATE SET fields = excluded.fields, generation = excluded.generation, updated_at = excluded.updated_at
             WHERE excluded.generation >= items.generation",
            vec![
                kind.into(),
                id.into(),
                Value::Object(fields).to_string().into(),
                generation.into(),
                at.into(),
            ],
        )?;
    }
    let first_time = sql
        .exec(
            "INSERT OR IGNORE INTO upload_chunks (job, chunk) VALUES (?, ?)",
            vec![job.into(), chunk.into()],
        )?
        .rows_written()
        > 0;
    if first_time {
        sql.exec(
            "UPDATE uploads SET chunks_done = chunks_done + 1, items_done = items_done + ? WHERE job = ?",
            vec![(items.len() as i64).into(), job.into()],
        )?;
    }
    let Some(row) = upload(sql, job)? else {
        return http::error(
            404,
            "upload_not_found",
            &format!("no catalog upload {job:?}"),
        );
    };
    if row.state == "delivering" && row.chunks_done >= row.chunks {
        let removed = if row.replace != 0 {
            sql.exec(
                "DELETE FROM items WHERE kind = ? AND generation < ?",
                vec![row.kind.clone().into(), row.generation.into()],
            )?
            .rows_written() as i64
        } else {
            0
        };
        sql.exec(
            "UPDATE uploads SET state = 'done', removed = ?, ended_at = ? WHERE job = ?",
            vec![removed.into(), now().into(), job.into()],
        )?;
        sql.exec("DELETE FROM upload_chunks WHERE job = ?", vec![job.into()])?;
    }
    http::json(200, &json!({"stored": items.len()}))
}

fn feed_rows(sql: &Sql) -> Result<Vec<FeedRow>> {
    sql.exec(
        "SELECT key, body, created_at, updated_at, last_minute FROM feeds ORDER BY key",
        None,
    )?
    .to_array()
}

fn put_feed(sql: &Sql, key: String, body: &Value, create: bool) -> Result<Response> {
    let held = feed_rows(sql)?.into_iter().find(|f| f.key == key);
    match (create, &held) {
        (true, Some(_)) => {
            let message =
                format!("a feed {key:?} exists; change it with PUT /v1/catalog/feeds/{key}");
            return http::error(409, "feed_exists", &message);
        }
        (false, None) => return http::error(404, "feed_not_found", &format!("no feed {key:?}")),
        _ => {}
    }
    let at = now();
    let created = held.as_ref().map_or(at, |f| f.created_at);
    let last_minute = held.as_ref().map_or(0, |f| f.last_minute);
    sql.exec(
        "INSERT OR REPLACE INTO feeds (key, body, created_at, updated_at, last_minute) VALUES (?, ?, ?, ?, ?)",
        vec![key.clone().into(), body.to_string().into(), created.into(), at.into(), last_minute.into()],
    )?;
    http::json(if create { 201 } else { 200 }, &json!({"key": key}))
}

fn feeds(sql: &Sql) -> Result<Response> {
    let mut shown = Vec::new();
    for f in feed_rows(sql)? {
        let mut body: Value = serde_json::from_str(&f.body).unwrap_or_else(|_| json!({}));
        let last: Vec<UploadRow> = sql
            .exec(
                &format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE feed = ? ORDER BY started_at DESC LIMIT 1"),
                vec![f.key.clone().into()],
            )?
            .to_array()?;
        if let Some(o) = body.as_object_mut() {
            o.insert("createdAt".into(), format_rfc3339(f.created_at).into());
            o.insert("updatedAt".into(), format_rfc3339(f.updated_at).into());
            o.insert(
                "lastRun".into(),
                last.first().map_or(Value::Null, UploadRow::shown),
            );
        }
        shown.push(body);
    }
    http::json(200, &json!({"feeds": shown}))
}

fn due(sql: &Sql, minute: i64) -> Result<Response> {
    let mut due = Vec::new();
    for f in feed_rows(sql)? {
        let body: Value = serde_json::from_str(&f.body).unwrap_or_else(|_| json!({}));
        let fires = body
            .get("schedule")
            .and_then(Value::as_str)
            .and_then(|s| cdp_protocol::export::Cron::parse(s).ok())
            .is_some_and(|c| c.fires_at(minute));
        if fires && f.last_minute < minute {
            sql.exec(
                "UPDATE feeds SET last_minute = ? WHERE key = ?",
                vec![minute.into(), f.key.clone().into()],
            )?;
            due.push(body);
        }
    }
    http::json(200, &json!({"due": due}))
}
