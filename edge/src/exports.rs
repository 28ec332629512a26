//! Scheduled exports: an audience's members written to R2 as gzip CSV or NDJSON, by a Cron
//! Trigger or on demand.
//!
//! A run goes through the exports queue one page of members at a time: each page becomes
//! one gzip member stored as a part (`exports/{key}/{run}/part-NNNNN`, rewritten whole if
//! the page is retried), and the run's manifest counts each page once. The last page joins
//! the parts into `exports/{key}/{run}.csv.gz` (gzip members concatenated are one gzip
//! file) and only then is the run `done`: a run that fails midway goes on from its page
//! and never leaves a half file called done.

use cdp_protocol::export::{self, Export};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{Env, MessageBatch, MessageExt, Request, Response, Result};

use crate::audiences::registry::{self, Ask};
use crate::config::{ARCHIVE, EXPORTS};
use crate::{compression, directory, http, import_job};

/// Members per page.
const PAGE: usize = 200;

/// One page of a run, as the exports queue carries it.
#[derive(Serialize, Deserialize)]
struct Page {
    key: String,
    run: String,
    /// The definition as the run started (a change during the run does not mix formats).
    export: Value,
    /// The audiences whose members it writes.
    audiences: Vec<String>,
    /// 1-based.
    page: i64,
    /// Members after this profile id.
    after: String,
}

fn file_of(key: &str, run: &str, export: &Export) -> String {
    format!("exports/{key}/{run}.{}", export.format.extension())
}

fn part_of(key: &str, run: &str, page: i64) -> String {
    format!("exports/{key}/{run}/part-{page:05}")
}

/// `POST /v1/exports` and `PUT /v1/exports/{key}`.
pub async fn save(mut req: Request, env: &Env, path_key: Option<&str>) -> Result<Response> {
    let read_only = ["createdAt", "updatedAt", "lastRun", "nextRunAt"];
    let body = match http::definition_body(&mut req, path_key, &read_only).await? {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let checked = match export::parse(&body) {
        Ok(e) => e,
        Err(e) => return http::definition_refused("invalid_export", &e),
    };
    let ask = Ask::PutExport {
        key: checked.key,
        body: body.clone(),
        create: path_key.is_none(),
    };
    let (status, answer) = registry::call(env, &ask).await?;
    if status >= 300 {
        return http::json(status, &answer);
    }
    http::json(status, &body)
}

/// `GET /v1/exports` and `GET /v1/exports/{key}`.
pub async fn get(env: &Env, only: Option<&str>) -> Result<Response> {
    let (_, answer) = registry::call(env, &Ask::Exports).await?;
    match only {
        Some(key) => match http::listed(&answer, "exports", "key", key) {
            Some(e) => http::json(200, &e),
            None => http::error(404, "export_not_found", &format!("no export {key:?}")),
        },
        None => http::json(200, &json!({"exports": answer.get("exports")})),
    }
}

/// `DELETE /v1/exports/{key}`.
pub async fn delete(env: &Env, key: &str) -> Result<Response> {
    let (status, answer) = registry::call(
        env,
        &Ask::DeleteExport {
            key: key.to_owned(),
        },
    )
    .await?;
    http::json(status, &answer)
}

/// `GET /v1/exports/{key}/runs`.
pub async fn runs(env: &Env, key: &str) -> Result<Response> {
    let (status, answer) = registry::call(
        env,
        &Ask::Runs {
            key: key.to_owned(),
        },
    )
    .await?;
    http::json(status, &answer)
}

/// `POST /v1/exports/{key}/run`: a run now.
pub async fn run_now(env: &Env, key: &str) -> Result<Response> {
    let (status, answer) = start(env, key, "manual").await?;
    http::json(status, &answer)
}

/// Starts a run of `key`: claims it in the registry and queues its first page.
async fn start(env: &Env, key: &str, trigger: &str) -> Result<(u16, Value)> {
    let run = format!(
        "{}-{}",
        cdp_protocol::time::format_rfc3339(worker::Date::now().as_millis() as i64)
            .replace([':', '.'], "")
            .to_lowercase(),
        &import_job::random_uuid()?[..8]
    );
    let ask = Ask::StartRun {
        key: key.to_owned(),
        run: run.clone(),
        trigger: trigger.to_owned(),
    };
    let (status, answer) = registry::call(env, &ask).await?;
    if status != 201 {
        return Ok((status, answer));
    }
    let export = answer.get("export").cloned().unwrap_or(Value::Null);
    let Ok(checked) = export::parse(&export) else {
        return Ok((
            409,
            json!({"success": false, "error": {"reason": "invalid_export", "message": "the stored export no longer passes its check"}}),
        ));
    };
    let audiences = match (&checked.audience, &checked.group) {
        (Some(a), _) => vec![a.clone()],
        (None, Some(group)) => {
            let (_, listed) = registry::call(env, &Ask::List).await?;
            listed
                .get("audiences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|a| a.get("group").and_then(Value::as_str) == Some(group))
                .filter_map(|a| a.get("key").and_then(Value::as_str).map(str::to_owned))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    let page = Page {
        key: key.to_owned(),
        run: run.clone(),
        export,
        audiences,
        page: 1,
        after: String::new(),
    };
    crate::meter::add(crate::meter::Cost::QueueWrite, 1);
    env.queue(EXPORTS)?
        .send(worker::MessageBuilder::new(serde_json::to_string(&page)?).build())
        .await?;
    Ok((201, json!({"run": run, "state": "running"})))
}

/// The Cron Trigger (every minute): starts the exports that are due this minute.
pub async fn scheduled(env: &Env, at_ms: i64) -> Result<()> {
    let minute = at_ms - at_ms.rem_euclid(60_000);
    let (_, due) = registry::call(env, &Ask::Due { minute }).await?;
    for key in due
        .get("due")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Err(e) = start(env, key, "schedule").await {
            worker::console_error!("scheduled export {key} did not start: {e}");
        }
    }
    if due.get("sizesDue").and_then(Value::as_bool) == Some(true) {
        if let Err(e) = crate::audiences::sizes::snapshot(env, at_ms).await {
            worker::console_error!("audience sizes not recorded this hour: {e}");
        }
    }
    Ok(())
}

/// The exports queue's consumer: one page per message.
pub async fn consume(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    for message in batch.raw_iter() {
        let Ok(page) =
            serde_json::from_str::<Page>(&message.body().as_string().unwrap_or_default())
        else {
            message.ack();
            continue;
        };
        match write_page(env, &page).await {
            Ok(()) => message.ack(),
            Err(e) => {
                let ask = Ask::RunError {
                    key: page.key.clone(),
                    run: page.run.clone(),
                    error: format!("page {}: {e}", page.page),
                };
                let _ = registry::call(env, &ask).await;
                message.retry();
            }
        }
    }
    Ok(())
}

async fn write_page(env: &Env, page: &Page) -> Result<()> {
    let export =
        export::parse(&page.export).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let (docs, next) = if page.audiences.is_empty() {
        (Vec::new(), None)
    } else {
        directory::members(env, &page.audiences, &page.after, PAGE).await?
    };
    let rows = export::rows(&export, &docs, page.page == 1);
    let bytes = compression::gzip(&rows.text).await?;
    let bucket = env.bucket(ARCHIVE)?;
    crate::meter::add(crate::meter::Cost::R2ClassA, 1);
    bucket
        .put(part_of(&page.key, &page.run, page.page), bytes.clone())
        .execute()
        .await?;
    let done = next.is_none();
    let file = if done {
        Some(finish(env, page, &export).await?)
    } else {
        None
    };
    let ask = Ask::RunPage {
        key: page.key.clone(),
        run: page.run.clone(),
        page: page.page,
        rows: rows.profiles.len() as i64,
        bytes: bytes.len() as i64,
        profiles: rows.profiles,
        file: file.clone(),
    };
    let (_, answer) = registry::call(env, &ask).await?;
    if answer.get("state").and_then(Value::as_str) == Some("deleted") {
        // It held a person erased while it ran: no file stays.
        if let Some(file) = file {
            bucket.delete(file).await?;
        }
        return Ok(());
    }
    if let Some(after) = next {
        let following = Page {
            page: page.page + 1,
            after,
            export: page.export.clone(),
            audiences: page.audiences.clone(),
            key: page.key.clone(),
            run: page.run.clone(),
        };
        crate::meter::add(crate::meter::Cost::QueueWrite, 1);
        env.queue(EXPORTS)?
            .send(worker::MessageBuilder::new(serde_json::to_string(&following)?).build())
            .await?;
    }
    Ok(())
}

/// Joins the run's parts into its file and removes them; the file's key.
async fn finish(env: &Env, page: &Page, export: &Export) -> Result<String> {
    let bucket = env.bucket(ARCHIVE)?;
    let mut joined = Vec::new();
    for n in 1..=page.page {
        let part = part_of(&page.key, &page.run, n);
        let Some(object) = bucket.get(&part).execute().await? else {
            return Err(worker::Error::RustError(format!("{part} is missing")));
        };
        let Some(body) = object.body() else {
            return Err(worker::Error::RustError(format!("{part} has no body")));
        };
        joined.extend(body.bytes().await?);
    }
    let file = file_of(&page.key, &page.run, export);
    crate::meter::add(crate::meter::Cost::R2ClassA, 1);
    bucket.put(&file, joined).execute().await?;
    for n in 1..=page.page {
        bucket.delete(part_of(&page.key, &page.run, n)).await?;
    }
    Ok(file)
}

/// `GET /v1/exports/{key}/runs/{run}/file`: the run's file, gzip.
pub async fn download(env: &Env, key: &str, run: &str) -> Result<Response> {
    let (_, answer) = registry::call(
        env,
        &Ask::Runs {
            key: key.to_owned(),
        },
    )
    .await?;
    let found = answer
        .get("runs")
        .and_then(Value::as_array)
        .and_then(|runs| {
            runs.iter()
                .find(|r| r.get("run").and_then(Value::as_str) == Some(run))
                .cloned()
        });
    let Some(found) = found else {
        return http::error(
            404,
            "run_not_found",
            &format!("export {key:?} has no run {run:?}"),
        );
    };
    let Some(file) = found
        .get("file")
        .and_then(Value::as_str)
        .filter(|_| found.get("state") == Some(&json!("done")))
    else {
        let state = found
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return http::error(
            409,
            "no_file",
            &format!("run {run} is {state}: it has no file to download"),
        );
    };
    let Some(object) = env.bucket(ARCHIVE)?.get(file).execute().await? else {
        return http::error(404, "file_gone", "the run's file is no longer stored");
    };
    let Some(body) = object.body() else {
        return http::error(404, "file_gone", "the run's file is empty");
    };
    let bytes = body.bytes().await?;
    let name = file.rsplit('/').next().unwrap_or("export.gz");
    let response = Response::from_bytes(bytes)?;
    let headers = response.headers().clone();
    headers.set("Content-Type", "application/gzip")?;
    headers.set(
        "Content-Disposition",
        &format!("attachment; filename=\"{key}-{name}\""),
    )?;
    Ok(response.with_headers(headers))
}

/// Deletes the export files that hold `profile` (an erasure); their keys, for the audit.
pub async fn erase(env: &Env, profile: &str) -> Result<Vec<Value>> {
    let (_, answer) = registry::call(
        env,
        &Ask::FilesHolding {
            profile: profile.to_owned(),
        },
    )
    .await?;
    let files: Vec<Value> = answer
        .get("files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let bucket = env.bucket(ARCHIVE)?;
    for f in &files {
        if let Some(file) = f.get("file").and_then(Value::as_str) {
            bucket.delete(file).await?;
        }
    }
    Ok(files)
}
