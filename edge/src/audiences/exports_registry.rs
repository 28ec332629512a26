//! The registry's part for scheduled exports: their definitions, their runs' manifests
//! (state, pages, rows, bytes, times, errors, file) and which profiles each file holds,
//! so an erasure can find and delete the files that hold the person.

use cdp_protocol::export;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{Response, Result};

use crate::meter::Sql;

use crate::http;

#[derive(Deserialize)]
struct ExportRow {
    key: String,
    body: String,
    created_at: i64,
    updated_at: i64,
    last_minute: i64,
}

/// One run's manifest.
#[derive(Deserialize, Serialize)]
struct RunRow {
    export: String,
    run: String,
    state: String,
    trigger: String,
    pages: i64,
    rows: i64,
    bytes: i64,
    started_at: i64,
    ended_at: Option<i64>,
    error: Option<String>,
    file: Option<String>,
}

impl RunRow {
    fn shown(&self) -> Value {
        let fmt = cdp_protocol::time::format_rfc3339;
        json!({"run": self.run, "state": self.state, "trigger": self.trigger, "pages": self.pages,
            "rows": self.rows, "bytes": self.bytes, "startedAt": fmt(self.started_at),
            "endedAt": self.ended_at.map(fmt), "error": self.error, "file": self.file})
    }
}

const RUN_COLUMNS: &str =
    "export, run, state, trigger, pages, rows, bytes, started_at, ended_at, error, file";

fn exports(sql: &Sql) -> Result<Vec<ExportRow>> {
    sql.exec(
        "SELECT key, body, created_at, updated_at, last_minute FROM exports ORDER BY key",
        None,
    )?
    .to_array()
}

fn runs_of(sql: &Sql, key: &str, limit: i64) -> Result<Vec<RunRow>> {
    sql.exec(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE export = ? ORDER BY started_at DESC, run DESC LIMIT ?"),
        vec![key.into(), limit.into()],
    )?
    .to_array()
}

/// `PutExport`.
pub fn put(sql: &Sql, key: String, body: Value, create: bool, now: i64) -> Result<Response> {
    let held = exports(sql)?.into_iter().find(|e| e.key == key);
    match (create, &held) {
        (true, Some(_)) => {
            let message = format!("an export {key:?} exists; change it with PUT /v1/exports/{key}");
            return http::error(409, "export_exists", &message);
        }
        (false, None) => {
            return http::error(404, "export_not_found", &format!("no export {key:?}"))
        }
        _ => {}
    }
    let created = held.as_ref().map_or(now, |e| e.created_at);
    let last = held.as_ref().map_or(0, |e| e.last_minute);
    sql.exec(
        "INSERT OR REPLACE INTO exports (key, body, created_at, updated_at, last_minute) VALUES (?, ?, ?, ?, ?)",
        vec![key.clone().into(), body.to_string().into(), created.into(), now.into(), last.into()],
    )?;
    http::json(if create { 201 } else { 200 }, &json!({"key": key}))
}

/// `DeleteExport`.
pub fn delete(sql: &Sql, key: &str) -> Result<Response> {
    let gone = sql
        .exec("DELETE FROM exports WHERE key = ?", vec![key.into()])?
        .rows_written();
    if gone == 0 {
        return http::error(404, "export_not_found", &format!("no export {key:?}"));
    }
    http::json(200, &json!({"deleted": key}))
}

/// `Exports`: each definition with its times, next run and latest run.
pub fn list(sql: &Sql) -> Result<Response> {
    let fmt = cdp_protocol::time::format_rfc3339;
    let now = worker::Date::now().as_millis() as i64;
    let mut out = Vec::new();
    for e in exports(sql)? {
        let mut shown: Value = serde_json::from_str(&e.body).unwrap_or_else(|_| json!({}));
        shown["createdAt"] = json!(fmt(e.created_at));
        shown["updatedAt"] = json!(fmt(e.updated_at));
        let next = export::parse(&shown)
            .ok()
            .and_then(|x| x.schedule.next_after(now));
        shown["nextRunAt"] = json!(next.map(fmt));
        shown["lastRun"] = runs_of(sql, &e.key, 1)?
            .first()
            .map_or(Value::Null, RunRow::shown);
        out.push(shown);
    }
    http::json(200, &json!({"exports": out}))
}

/// `StartRun`.
pub fn start(sql: &Sql, key: &str, run: &str, trigger: &str, now: i64) -> Result<Response> {
    let Some(e) = exports(sql)?.into_iter().find(|e| e.key == key) else {
        return http::error(404, "export_not_found", &format!("no export {key:?}"));
    };
    if runs_of(sql, key, 1)?
        .first()
        .is_some_and(|r| r.state == "running")
    {
        return http::error(
            409,
            "run_in_progress",
            "a run of this export is still going; wait for it",
        );
    }
    sql.exec(
        "INSERT INTO runs (export, run, state, trigger, started_at) VALUES (?, ?, 'running', ?, ?)",
        vec![key.into(), run.into(), trigger.into(), now.into()],
    )?;
    let body: Value = serde_json::from_str(&e.body).unwrap_or_else(|_| json!({}));
    http::json(
        201,
        &json!({"run": run, "state": "running", "export": body}),
    )
}

/// `RunPage`: counts page `page` once (a retried page that was counted is not again).
pub fn page(
    sql: &Sql,
    (key, run): (&str, &str),
    page: i64,
    (rows, bytes): (i64, i64),
    profiles: &[String],
    file: Option<String>,
    now: i64,
) -> Result<Response> {
    let counted = sql
        .exec(
            "UPDATE runs SET pages = ?, rows = rows + ?, bytes = bytes + ?, error = NULL WHERE export = ? AND run = ? AND pages = ?",
            vec![page.into(), rows.into(), bytes.into(), key.into(), run.into(), (page - 1).into()],
        )?
        .rows_written();
    if counted > 0 {
        for profile in profiles {
            sql.exec(
                "INSERT OR IGNORE INTO run_members (export, run, profile) VALUES (?, ?, ?)",
                vec![key.into(), run.into(), profile.clone().into()],
            )?;
        }
    }
    if let Some(file) = file {
        // Only a run still going is done: one that held a person erased meanwhile stays
        // deleted, and its file is deleted by the caller.
        sql.exec(
            "UPDATE runs SET state = 'done', file = ?, ended_at = ? WHERE export = ? AND run = ? AND state = 'running'",
            vec![file.into(), now.into(), key.into(), run.into()],
        )?;
    }
    let state = runs_of(sql, key, 100)?
        .into_iter()
        .find(|r| r.run == run)
        .map_or_else(|| "missing".to_owned(), |r| r.state);
    http::json(200, &json!({"counted": counted > 0, "state": state}))
}

/// `RunError`.
pub fn error(sql: &Sql, key: &str, run: &str, error: &str) -> Result<Response> {
    sql.exec(
        "UPDATE runs SET error = ? WHERE export = ? AND run = ?",
        vec![error.into(), key.into(), run.into()],
    )?;
    http::json(200, &json!({"ok": true}))
}

/// `Runs`.
pub fn runs(sql: &Sql, key: &str) -> Result<Response> {
    if !exports(sql)?.iter().any(|e| e.key == key) {
        return http::error(404, "export_not_found", &format!("no export {key:?}"));
    }
    let shown: Vec<Value> = runs_of(sql, key, 100)?.iter().map(RunRow::shown).collect();
    http::json(200, &json!({"runs": shown}))
}

/// `Due`: the exports whose schedule fires in `minute`, claimed so a second call for the
/// same minute (a repeated Cron Trigger) starts nothing twice.
pub fn due(sql: &Sql, minute: i64, sizes_due: bool) -> Result<Response> {
    let mut keys = Vec::new();
    for e in exports(sql)? {
        let body: Value = serde_json::from_str(&e.body).unwrap_or_else(|_| json!({}));
        let fires = export::parse(&body).is_ok_and(|x| x.schedule.fires_at(minute));
        if fires && e.last_minute < minute {
            sql.exec(
                "UPDATE exports SET last_minute = ? WHERE key = ?",
                vec![minute.into(), e.key.clone().into()],
            )?;
            keys.push(e.key);
        }
    }
    http::json(200, &json!({"due": keys, "sizesDue": sizes_due}))
}

/// `FilesHolding`: the finished files that hold `profile`; their runs are marked as erased.
pub fn holding(sql: &Sql, profile: &str) -> Result<Response> {
    let runs: Vec<RunRow> = sql
        .exec(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE (export, run) IN (SELECT export, run FROM run_members WHERE profile = ?)"),
            vec![profile.into()],
        )?
        .to_array()?;
    sql.exec(
        "DELETE FROM run_members WHERE profile = ?",
        vec![profile.into()],
    )?;
    let mut files = Vec::new();
    for r in runs {
        // Running ones too: their parts are deleted, and the run marked.
        sql.exec(
            "UPDATE runs SET state = 'deleted', error = 'deleted: it held an erased person' WHERE export = ? AND run = ?",
            vec![r.export.clone().into(), r.run.clone().into()],
        )?;
        files.push(json!({"export": r.export, "run": r.run, "file": r.file}));
    }
    http::json(200, &json!({"files": files}))
}
