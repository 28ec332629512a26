//! The admin API: questions about profiles, behind the admin bearer token.

use cdp_protocol::route::identifier_key;
use cdp_protocol::time::parse_rfc3339;
use worker::{Env, Request, Response, Result};

use crate::config::Config;
use crate::{archive, http, profile_store, stats};

/// Identifier kinds a profile can be looked up by.
const LOOKUP_KINDS: [&str; 2] = ["anonymousId", "userId"];

/// `GET /v1/profiles/lookup?anonymousId=…` (or `userId=…`): the profile holding that identifier.
pub async fn lookup(req: Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    let url = req.url()?;
    let found = url
        .query_pairs()
        .find(|(k, v)| LOOKUP_KINDS.contains(&k.as_ref()) && !v.is_empty());
    let Some((kind, value)) = found else {
        return http::error(
            400,
            "missing_identifier",
            "give one identifier to look up: ?anonymousId=… or ?userId=…",
        );
    };
    match profile_store::view(env, &identifier_key(&kind, value.trim())).await? {
        Some(profile) => http::json(200, &profile),
        None => http::error(
            404,
            "profile_not_found",
            &format!("no profile has {kind} {value}"),
        ),
    }
}

/// `GET /v1/stats`: the pipeline's counters, summed over their shards.
pub async fn stats(req: Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    http::json(200, &stats::read(env).await?)
}

/// `POST /v1/admin/replay?from=2026-11-23T00:00:00Z&to=…`: re-ingests the archived events
/// received in those hours (inclusive). Idempotent.
pub async fn replay(req: Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    let url = req.url()?;
    let time = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| parse_rfc3339(&v))
    };
    let (Some(from), Some(to)) = (time("from"), time("to")) else {
        return http::error(
            400,
            "invalid_range",
            "give ?from= and &to= as ISO 8601 times, e.g. 2026-11-23T00:00:00Z",
        );
    };
    if to < from || to - from > 31 * 24 * 3_600_000 {
        return http::error(
            400,
            "invalid_range",
            "to must follow from, by at most 31 days",
        );
    }
    http::json(200, &archive::replay(env, from, to).await?)
}

/// `POST /v1/admin/faults?anonymousId=…&failures=N` (local development only): the profile
/// holding that id fails its next N writes, to show that delivery retries lose nothing.
pub async fn faults(req: Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    if !config.development {
        return http::error(
            404,
            "not_found",
            "fault injection exists only in local development",
        );
    }
    let url = req.url()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(id), Some(failures)) = (
        param("anonymousId"),
        param("failures").and_then(|f| f.parse::<u32>().ok()),
    ) else {
        return http::error(400, "invalid_fault", "give ?anonymousId=…&failures=N");
    };
    profile_store::inject_failures(env, &identifier_key("anonymousId", &id), failures).await?;
    http::json(200, &serde_json::json!({"ok": true}))
}

/// `Some(401 answer)` unless the request carries the admin token.
fn refuse_unless_admin(req: &Request, config: &Config) -> Result<Option<Response>> {
    match http::bearer_token(req) {
        Some(token) if constant_time_eq(token.as_bytes(), config.admin_token.as_bytes()) => {
            Ok(None)
        }
        _ => http::error(
            401,
            "unauthorized",
            "the admin API needs the header Authorization: Bearer <admin token>",
        )
        .map(Some),
    }
}

/// Compares secrets without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
