//! Catalog feeds: a file at a URL pulled into a kind on a cron schedule (the Cron Trigger
//! the scheduled exports share) or by hand, each pull logged (state, items, row errors,
//! duration) like an upload.

use cdp_protocol::catalog::feed::{self, Feed};
use serde_json::{json, Value};
use worker::{Env, Fetch, Request, Response, Result};

use super::store::{self, Ask, Upload};
use super::{ingest, kind_of, Run, MAX_FILE_BYTES};
use crate::config::Config;
use crate::http;

/// `POST /v1/catalog/feeds` and `PUT /v1/catalog/feeds/{key}`.
pub async fn save(
    mut req: Request,
    env: &Env,
    config: &Config,
    path_key: Option<&str>,
) -> Result<Response> {
    let read_only = ["createdAt", "updatedAt", "lastRun"];
    let body = match http::definition_body(&mut req, path_key, &read_only).await? {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let checked = match feed::parse(&body, config.development) {
        Ok(f) => f,
        Err(e) => return http::definition_refused("invalid_feed", &e),
    };
    if kind_of(env, &checked.kind).await?.is_none() {
        return super::unknown_kind(&checked.kind);
    }
    let ask = Ask::PutFeed {
        key: checked.key,
        body: body.clone(),
        create: path_key.is_none(),
    };
    let (status, answer) = store::call(env, &ask).await?;
    if status >= 300 {
        return http::json(status, &answer);
    }
    http::json(status, &body)
}

/// `GET /v1/catalog/feeds` and `GET /v1/catalog/feeds/{key}`.
pub async fn get(env: &Env, only: Option<&str>) -> Result<Response> {
    let (_, answer) = store::call(env, &Ask::Feeds).await?;
    match only {
        Some(key) => match http::listed(&answer, "feeds", "key", key) {
            Some(f) => http::json(200, &f),
            None => http::error(404, "feed_not_found", &format!("no feed {key:?}")),
        },
        None => http::json(200, &json!({"feeds": answer.get("feeds")})),
    }
}

/// `DELETE /v1/catalog/feeds/{key}` (its items stay).
pub async fn delete(env: &Env, key: &str) -> Result<Response> {
    let ask = Ask::DeleteFeed {
        key: key.to_owned(),
    };
    let (status, answer) = store::call(env, &ask).await?;
    http::json(status, &answer)
}

/// `GET /v1/catalog/feeds/{key}/runs`: its pulls, newest first.
pub async fn runs(env: &Env, key: &str) -> Result<Response> {
    let ask = Ask::Runs {
        key: key.to_owned(),
    };
    let (status, answer) = store::call(env, &ask).await?;
    http::json(status, &answer)
}

/// `POST /v1/catalog/feeds/{key}/run`: a pull now; answers as the pull went.
pub async fn run_now(env: &Env, config: &Config, key: &str) -> Result<Response> {
    let (_, answer) = store::call(env, &Ask::Feeds).await?;
    let Some(body) = http::listed(&answer, "feeds", "key", key) else {
        return http::error(404, "feed_not_found", &format!("no feed {key:?}"));
    };
    let (status, answer) = pull(env, config, &body, "manual").await?;
    http::json(status, &answer)
}

/// The Cron Trigger's part: the feeds due this minute are pulled, one after another.
pub async fn scheduled(env: &Env, at_ms: i64) -> Result<()> {
    let minute = at_ms - at_ms.rem_euclid(60_000);
    let (_, answer) = store::call(env, &Ask::Due { minute }).await?;
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    for body in answer
        .get("due")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Err(e) = pull(env, &config, body, "schedule").await {
            let key = body.get("key").and_then(Value::as_str).unwrap_or("?");
            worker::console_error!("catalog feed {key} not pulled: {e}");
        }
    }
    Ok(())
}

/// Pulls a feed: fetches its file and reads it like an upload. A failure to fetch is a
/// failed run in the log, with why.
async fn pull(env: &Env, config: &Config, body: &Value, trigger: &str) -> Result<(u16, Value)> {
    let feed = match feed::parse(body, config.development) {
        Ok(f) => f,
        Err(e) => {
            let message = format!("the stored feed no longer passes its check: {e}");
            return Ok((
                409,
                json!({"success": false, "error": {"reason": "invalid_feed", "message": message}}),
            ));
        }
    };
    let Some(kind) = kind_of(env, &feed.kind).await? else {
        let message = format!("the feed's kind {:?} is not declared", feed.kind);
        return Ok((
            409,
            json!({"success": false, "error": {"reason": "unknown_kind", "message": message}}),
        ));
    };
    let started_at = worker::Date::now().as_millis() as i64;
    let text = match fetch(&feed).await {
        Ok(text) => text,
        Err(why) => {
            let upload = Upload {
                error: Some(why.clone()),
                ..Upload::begin(&feed.kind, Some(&feed.key), trigger, started_at)?
            };
            store::call(env, &Ask::StartUpload(upload)).await?;
            return Ok((
                502,
                json!({"success": false, "error": {"reason": "feed_unreachable", "message": why}}),
            ));
        }
    };
    let run = Run {
        kind: feed.applied_to(kind),
        feed: Some(&feed.key),
        trigger,
        replace: feed.replace,
    };
    ingest(env, config, run, &text, feed.csv).await
}

/// The feed's file as text, or why not (for the run log).
async fn fetch(feed: &Feed) -> std::result::Result<String, String> {
    let url = worker::Url::parse(&feed.url).map_err(|e| format!("{}: {e}", feed.url))?;
    let mut res = Fetch::Url(url)
        .send()
        .await
        .map_err(|e| format!("{} could not be fetched: {e}", feed.url))?;
    let status = res.status_code();
    if !(200..300).contains(&status) {
        return Err(format!("{} answered {status}", feed.url));
    }
    let bytes = res
        .bytes()
        .await
        .map_err(|e| format!("{} was not read: {e}", feed.url))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} is {} bytes, more than the {MAX_FILE_BYTES} a feed may be",
            feed.url,
            bytes.len()
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", feed.url))
}
