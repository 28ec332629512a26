//! The collector: Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, …).
//!
//! It answers success only once every accepted event is stored by its profile, so a
//! client that sees 200 may forget the batch; on any store failure it answers 503 and the
//! client retries, which is safe because the store is idempotent by `messageId`.

use std::collections::BTreeMap;

use cdp_protocol::auth::write_key_from_basic;
use cdp_protocol::decode::{decode, DecodeError, Endpoint, Limits};
use cdp_protocol::event::Event;
use cdp_protocol::route::profile_key;
use cdp_protocol::validate::{check_batch, Rejection};
use serde_json::json;
use worker::{Date, Env, Request, Response, Result};

use crate::config::Config;
use crate::http;
use crate::profile_store;

/// Whether `path` is one of the collector's paths.
pub fn is_collector_path(path: &str) -> bool {
    Endpoint::from_path(path).is_some()
}

/// Takes a request to a collector path in, stores what is valid, and reports what is not.
pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let Some(endpoint) = Endpoint::from_path(&req.path()) else {
        return http::error(404, "not_found", "not a collector path");
    };
    let header_key = req
        .headers()
        .get("Authorization")?
        .and_then(|h| write_key_from_basic(&h));
    if let Some(key) = &header_key {
        if !config.accepts_write_key(key) {
            return http::allow_origin(unknown_write_key()?, &req);
        }
    }
    let received_at = Date::now().as_millis() as i64;
    let limits = Limits::default();
    let body = req.bytes().await?;
    let envelope = match decode(&body, endpoint, &limits) {
        Ok(envelope) => envelope,
        Err(e) => {
            let status = if matches!(e, DecodeError::TooLarge { .. }) {
                413
            } else {
                400
            };
            return http::allow_origin(http::error(status, e.reason(), &e.to_string())?, &req);
        }
    };
    match header_key.or_else(|| envelope.write_key.clone()) {
        Some(key) if config.accepts_write_key(&key) => {}
        _ => return http::allow_origin(unknown_write_key()?, &req),
    }

    let checked = check_batch(envelope, received_at, &limits);
    let response = if checked.accepted.is_empty() {
        http::json(
            400,
            &json!({"success": false, "error": {"reason": "no_valid_events",
                "message": "no event in the request is valid"}, "rejected": report(&checked.rejected)}),
        )?
    } else if let Err(message) = store(env, checked.accepted).await {
        http::error(503, "store_unavailable", &message)?
    } else if checked.rejected.is_empty() {
        http::json(200, &json!({"success": true}))?
    } else {
        http::json(
            207,
            &json!({"success": false, "rejected": report(&checked.rejected)}),
        )?
    };
    http::allow_origin(response, &req)
}

fn unknown_write_key() -> Result<Response> {
    http::error(
        401,
        "unknown_write_key",
        "the write key is missing or unknown; send it as HTTP Basic user name or as \"writeKey\"",
    )
}

fn report(rejected: &[Rejection]) -> Vec<serde_json::Value> {
    rejected
        .iter()
        .map(|r| json!({"index": r.index, "messageId": r.message_id, "reason": r.reason, "message": r.detail}))
        .collect()
}

/// Sends each profile its events, all profiles at once, and waits until every one has stored them.
async fn store(env: &Env, events: Vec<Event>) -> std::result::Result<(), String> {
    let mut by_profile: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for event in events {
        by_profile
            .entry(profile_key(&event))
            .or_default()
            .push(event);
    }
    let writes = by_profile
        .iter()
        .map(|(key, events)| profile_store::ingest(env, key, events));
    for outcome in futures_util::future::join_all(writes).await {
        outcome.map_err(|e| format!("the profile store did not confirm the write: {e}"))?;
    }
    Ok(())
}
