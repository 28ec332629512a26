//! The admin API: questions about profiles, behind the admin bearer token.

use cdp_protocol::route::identifier_key;
use worker::{Env, Request, Response, Result};

use crate::config::Config;
use crate::http;
use crate::profile_store;

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
