//! The admin API: questions about profiles, behind the admin bearer token.

use cdp_protocol::identity::{normalize, Identifier};
use cdp_protocol::time::parse_rfc3339;
use worker::{Env, Request, Response, Result};

use crate::config::Config;
use crate::profile_store::View;
use crate::{archive, http, identity_index, profile_store, stats};

/// Identifier kinds a profile can be looked up by.
const LOOKUP_KINDS: [&str; 4] = ["userId", "email", "phone", "anonymousId"];

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
    let Some(value) = normalize(&kind, &value) else {
        return http::error(
            400,
            "invalid_identifier",
            &format!("{value:?} is not a usable {kind}"),
        );
    };
    let key = Identifier {
        kind: kind.to_string(),
        value,
    }
    .key();
    match identity_index::lookup(env, std::slice::from_ref(&key), false)
        .await?
        .profiles
        .get(&key)
    {
        Some(profile) => show(env, profile, "/profile").await,
        None => http::error(404, "profile_not_found", &format!("no profile has {key}")),
    }
}

/// `GET /v1/profiles/{id}/export`: everything held about the person, audited.
pub async fn export(req: Request, env: &Env, config: &Config, id: &str) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    let response = show(env, id, "/export").await?;
    if response.status_code() == 200 {
        archive::audit(env, "export", id, serde_json::json!({})).await?;
    }
    Ok(response)
}

/// `DELETE /v1/profiles/{id}`: erases the person everywhere (profile, events, identifiers,
/// index, archived raw events) and suppresses their identifiers, so later events carrying
/// them are dropped and the person is not re-created. Audited.
pub async fn erase(req: Request, env: &Env, config: &Config, id: &str) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    let mut id = id.to_owned();
    for _ in 0..8 {
        match profile_store::view(env, &id, "/profile").await? {
            View::MergedInto(next) => id = next,
            View::Found(_) => break,
            View::Missing => {
                return http::error(404, "profile_not_found", &format!("no profile {id}"))
            }
        }
    }
    let erased = profile_store::erase(env, &id).await?;
    identity_index::suppress(env, &erased.identifiers).await?;
    let message_ids: std::collections::BTreeSet<String> =
        erased.message_ids.iter().cloned().collect();
    let archived = archive::erase(env, &message_ids).await?;
    let detail = serde_json::json!({"events": erased.message_ids.len(), "identifiers": erased.identifiers, "archivedEvents": archived});
    archive::audit(env, "erase", &id, detail.clone()).await?;
    http::json(200, &serde_json::json!({"erased": id, "detail": detail}))
}

/// `GET /v1/audit`: every export and erasure, oldest first.
pub async fn audit_log(req: Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    http::json(200, &archive::audit_log(env).await?)
}

/// `GET /v1/profiles/{id}`, `…/explain` and `…/events?type=&name=&from=&to=&limit=&cursor=`.
pub async fn profile(
    req: Request,
    env: &Env,
    config: &Config,
    id: &str,
    what: &str,
) -> Result<Response> {
    if let Some(refusal) = refuse_unless_admin(&req, config)? {
        return Ok(refusal);
    }
    let query = req
        .url()?
        .query()
        .map(|q| ["?", q].concat())
        .unwrap_or_default();
    let path = match what {
        "explain" => "/explain".to_owned(),
        "events" => ["/timeline", &query].concat(),
        _ => "/profile".to_owned(),
    };
    show(env, id, &path).await
}

/// Answers with a profile, following merges to the profile that holds the person now.
async fn show(env: &Env, id: &str, what: &str) -> Result<Response> {
    let mut id = id.to_owned();
    for _ in 0..8 {
        match profile_store::view(env, &id, what).await? {
            View::Found(body) => return http::json(200, &body),
            View::MergedInto(next) => id = next,
            View::Missing => break,
        }
    }
    http::error(404, "profile_not_found", &format!("no profile {id}"))
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

/// `POST /v1/admin/faults?anonymousId=…&failures=N` (local development only): resolving that
/// id fails its next N times, to show that delivery retries lose nothing.
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
    let key = Identifier {
        kind: "anonymousId".into(),
        value: id,
    }
    .key();
    identity_index::inject_failures(env, &key, failures).await?;
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
