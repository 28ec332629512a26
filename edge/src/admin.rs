//! The admin API: questions about profiles, behind the admin bearer token.

use cdp_protocol::api::ProfileView;
use cdp_protocol::identity::{normalize, Identifier};
use cdp_protocol::time::parse_rfc3339;
use cdp_protocol::timeline::TimelineQuery;
use worker::{Env, Request, Response, Result};

use crate::config::Config;
use crate::profile_store::{Showing, View};
use crate::{archive, directory, http, identity_index, profile_store, resolver, stats};

/// Identifier kinds a profile can be looked up by.
const LOOKUP_KINDS: [&str; 4] = ["userId", "email", "phone", "anonymousId"];

/// `GET /v1/profiles/lookup?anonymousId=…` (or `userId=…`, or a declared kind such as
/// `crm_id=…`): the profile holding that identifier.
pub async fn lookup(req: Request, env: &Env, config: &Config) -> Result<Response> {
    let url = req.url()?;
    let found = url.query_pairs().find(|(k, v)| {
        let declared = config.rules.identifiers.iter().any(|d| d == k);
        (LOOKUP_KINDS.contains(&k.as_ref()) || declared) && !v.is_empty()
    });
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
        Some(profile) => show(env, profile, &Showing::Profile).await,
        None => http::error(404, "profile_not_found", &format!("no profile has {key}")),
    }
}

/// `GET /v1/profiles/{id}/export`: everything held about the person, audited.
async fn export(env: &Env, id: &str, actor: &str) -> Result<Response> {
    let response = show(env, id, &Showing::Export).await?;
    if response.status_code() == 200 {
        archive::audit(env, "export", id, actor, serde_json::json!({})).await?;
    }
    Ok(response)
}

/// `DELETE /v1/profiles/{id}`: erases the person everywhere (profile, events, identifiers,
/// index, archived raw events) and suppresses their identifiers, so later events carrying
/// them are dropped and the person is not re-created. Audited.
pub async fn erase(env: &Env, config: &Config, id: &str, actor: &str) -> Result<Response> {
    let Some(id) = current(env, id).await? else {
        return http::error(404, "profile_not_found", &format!("no profile {id}"));
    };
    let erased = profile_store::erase(env, &id).await?;
    identity_index::suppress(env, &erased.identifiers).await?;
    let message_ids: std::collections::BTreeSet<String> =
        erased.message_ids.iter().cloned().collect();
    let archived = archive::erase(env, &message_ids).await?;
    let keys: std::collections::BTreeSet<String> = erased.identifiers.iter().cloned().collect();
    let dead = archive::erase_dead_letters(env, &keys, &config.rules.identifiers).await?;
    // Export files that held the person are deleted, and listed here.
    let export_files = crate::exports::erase(env, &id).await?;
    let detail = serde_json::json!({"events": erased.message_ids.len(), "identifiers": erased.identifiers,
        "archivedEvents": archived, "deadLetterEvents": dead, "exportFiles": export_files});
    archive::audit(env, "erase", &id, actor, detail.clone()).await?;
    http::json(200, &serde_json::json!({"erased": id, "detail": detail}))
}

/// The profile that holds the person of profile `id` now (following merges), if any.
async fn current(env: &Env, id: &str) -> Result<Option<String>> {
    let mut id = id.to_owned();
    for _ in 0..8 {
        match profile_store::view(env, &id, &Showing::Profile).await? {
            View::MergedInto(next) => id = next,
            View::Found(_) => return Ok(Some(id)),
            View::Missing => return Ok(None),
        }
    }
    Ok(None)
}

/// `GET /v1/profiles?where=computed.totalRevenue>500&where=traits.plan=pro&limit=50&cursor=…`:
/// profiles matching every condition (none: all profiles), paged in profile id order.
pub async fn search(req: Request, env: &Env) -> Result<Response> {
    let url = req.url()?;
    let mut conditions = Vec::new();
    let (mut limit, mut cursor) = (50, String::new());
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "where" => conditions.push(value.into_owned()),
            "cursor" => cursor = value.into_owned(),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=directory::MAX_PAGE).contains(&n) => limit = n,
                _ => {
                    return http::bad_parameter(
                        "invalid_limit",
                        "limit",
                        &format!(
                            "limit must be a whole number from 1 to {}, not {value:?}",
                            directory::MAX_PAGE
                        ),
                    )
                }
            },
            other => {
                return http::bad_parameter(
                    "unknown_parameter",
                    other,
                    &format!("unknown parameter {other:?}; use where, limit and cursor"),
                )
            }
        }
    }
    if conditions.len() > cdp_protocol::search::MAX_CONDITIONS {
        return http::error(
            400,
            "too_many_conditions",
            &format!(
                "at most {} where conditions",
                cdp_protocol::search::MAX_CONDITIONS
            ),
        );
    }
    // Checked here too, so a bad condition is a 400 naming it, not a failed shard call.
    for text in &conditions {
        if let Err(e) = cdp_protocol::search::parse(text) {
            return http::bad_parameter("invalid_condition", "where", &e.to_string());
        }
    }
    let (profiles, next) = directory::search(env, &conditions, &cursor, limit).await?;
    http::json(
        200,
        &serde_json::json!({"profiles": profiles, "nextCursor": next}),
    )
}

/// `POST /v1/profiles/{id}/unmerge` with `{"type": "email", "value": "…"}`: the identifier
/// was joined to this profile by mistake. The profile is split again from its events: the
/// identifier leaves with what came only through it (identifiers and events) into a new
/// profile, and it is kept apart from the profile's strongest identifier from now on.
pub async fn unmerge(
    mut req: Request,
    env: &Env,
    config: &Config,
    id: &str,
    actor: &str,
) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct Ask {
        r#type: String,
        value: String,
    }
    let help = "send {\"type\": \"email\", \"value\": \"…\"}: the identifier to split off";
    let Ok(ask) = req.json::<Ask>().await else {
        return http::error(400, "invalid_body", help);
    };
    let Some(value) = normalize(&ask.r#type, &ask.value) else {
        return http::error(
            400,
            "invalid_identifier",
            &format!("{:?} is not a usable {}; {help}", ask.value, ask.r#type),
        );
    };
    let detach = Identifier {
        kind: ask.r#type,
        value,
    };
    let Some(id) = current(env, id).await? else {
        return http::error(404, "profile_not_found", &format!("no profile {id}"));
    };
    let Some(split) = profile_store::split(env, &id, &detach, &config.rules).await? else {
        return http::error(
            409,
            "cannot_unmerge",
            &format!(
                "profile {id} does not hold {}, or holds nothing else",
                detach.key()
            ),
        );
    };
    let into = resolver::new_profile_id(&["unmerge:", &id].concat(), &detach);
    let moved = split.moved_keys();
    let (anchor, moved_events) = (split.anchor.clone(), split.moved_events());
    let repoint = moved.iter().map(|k| (k.clone(), into.clone())).collect();
    let index = identity_index::assign(env, &repoint);
    profile_store::apply_split(env, &id, &into, &detach, split, index).await?;
    let detail = serde_json::json!({"identifier": detach.key(), "newProfile": into, "movedIdentifiers": moved,
                                    "movedEvents": moved_events, "keptApartFrom": anchor});
    archive::audit(env, "unmerge", &id, actor, detail.clone()).await?;
    http::json(200, &serde_json::json!({"profile": id, "detail": detail}))
}

/// `GET /v1/import/{job}`: how far an offline import has got; for the admin token or the
/// write key of the source that imported (another source's key finds no such job).
pub async fn import_progress(
    req: Request,
    env: &Env,
    config: &Config,
    job: &str,
) -> Result<Response> {
    let source_key = req
        .headers()
        .get("Authorization")?
        .and_then(|h| cdp_protocol::auth::write_key_from_basic(&h))
        .filter(|k| config.sources.by_key(k).is_some());
    if source_key.is_none() && caller(&req, config).is_none() {
        return unauthorized();
    }
    match crate::import_job::progress(env, job, source_key.as_deref()).await? {
        Some(progress) => http::json(200, &progress),
        None => http::error(404, "job_not_found", &format!("no import job {job}")),
    }
}

/// `GET /v1/audit`: every export and erasure, oldest first.
pub async fn audit_log(env: &Env) -> Result<Response> {
    http::json(200, &archive::audit_log(env).await?)
}

/// `GET /v1/profiles/{id}`, `…/explain`, `…/export` and
/// `…/events?type=&name=&from=&to=&limit=&cursor=`.
pub async fn profile(
    req: Request,
    env: &Env,
    id: &str,
    view: ProfileView,
    actor: &str,
) -> Result<Response> {
    let showing = match view {
        ProfileView::Profile => Showing::Profile,
        ProfileView::Explain => Showing::Explain,
        ProfileView::Export => return export(env, id, actor).await,
        ProfileView::Events => {
            // Checked here as well as in the profile, so a bad parameter is a 400 even for
            // a profile that does not exist.
            let pairs: Vec<(String, String)> = req.url()?.query_pairs().into_owned().collect();
            let query = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            if let Err(e) = TimelineQuery::parse(query) {
                return http::bad_parameter("invalid_parameter", &e.parameter, &e.message);
            }
            Showing::Timeline(pairs)
        }
    };
    show(env, id, &showing).await
}

/// Answers with a profile, following merges to the profile that holds the person now.
async fn show(env: &Env, id: &str, showing: &Showing) -> Result<Response> {
    let mut id = id.to_owned();
    for _ in 0..8 {
        match profile_store::view(env, &id, showing).await? {
            View::Found(body) => return http::json(200, &body),
            View::MergedInto(next) => id = next,
            View::Missing => break,
        }
    }
    http::error(404, "profile_not_found", &format!("no profile {id}"))
}

/// `GET /v1/stats`: the pipeline's counters, summed over their shards.
pub async fn stats(env: &Env) -> Result<Response> {
    // With metering on, what this isolate counted so far is written first, so a reading
    // includes it (see crate::meter).
    if crate::meter::enabled(env) {
        stats::add(env, stats::Counts::new()).await;
    }
    let mut counts = stats::read(env).await?;
    let pending = stats::pending(&counts);
    counts.insert("pending".to_owned(), pending);
    http::json(200, &counts)
}

/// `POST /v1/admin/replay?from=2026-11-23T00:00:00Z&to=…`: re-ingests the archived events
/// received in those hours (inclusive). Idempotent.
pub async fn replay(req: Request, env: &Env) -> Result<Response> {
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

/// `GET /v1/admin/dead-letters`: the messages the queue gave up on, kept in the archive
/// bucket until replayed.
pub async fn dead_letters(env: &Env) -> Result<Response> {
    let letters = archive::dead_letters(env).await?;
    let events: usize = letters.iter().map(|l| l.events).sum();
    http::json(
        200,
        &serde_json::json!({"deadLetters": letters, "events": events}),
    )
}

/// `POST /v1/admin/dead-letters/replay` (every message, or `?key=` one): sends them back to
/// the queue and out of the store; counted as `dead_letters_replayed`.
pub async fn replay_dead_letters(req: Request, env: &Env) -> Result<Response> {
    let url = req.url()?;
    let key = url
        .query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned());
    if key
        .as_deref()
        .is_some_and(|k| !k.starts_with(archive::DEAD_PREFIX))
    {
        return http::bad_parameter(
            "invalid_parameter",
            "key",
            "key must be a dead letter's key, as GET /v1/admin/dead-letters lists it",
        );
    }
    let report = archive::replay_dead_letters(env, key.as_deref()).await?;
    let mut counts = stats::Counts::new();
    stats::bump(
        &mut counts,
        stats::Counter::DeadLettersReplayed,
        report.events as i64,
    );
    stats::add(env, counts).await;
    http::json(200, &report)
}

/// How to ask for a fault.
const HOW: &str = "give ?anonymousId=…&failures=N (its deliveries fail), ?anonymousId=…&pauseMs=N[&pauseAt=write|assign|forward] (its next delivery pauses before writing the profile, the identity index, or a merge's forward) or ?directoryProfile=…&failures=N (its directory entry cannot be written)";

/// `POST /v1/admin/faults?anonymousId=…&failures=N` (local development only): resolving that
/// id fails its next N times, to show that delivery retries lose nothing; with
/// `directoryProfile=<profile id>` instead, writing that profile's directory entry fails N
/// times, to show that a profile's outbox sends its notice again until it lands; with
/// `pauseMs=N` instead of `failures`, that id's next delivery pauses N ms at `pauseAt`:
/// before writing the profile (`write`, the default: a profile erased meanwhile refuses the
/// write), before writing the identity index (`assign`: another partition's consumer wins
/// and this delivery is resolved again), or in a merge before its forward (`forward`: a
/// profile that changed meanwhile is copied again).
pub async fn faults(req: Request, env: &Env, config: &Config) -> Result<Response> {
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
    if let (Some(id), Some(ms)) = (
        param("anonymousId"),
        param("pauseMs").and_then(|m| m.parse::<u64>().ok()),
    ) {
        let at = param("pauseAt").unwrap_or_else(|| "write".into());
        let Some(at) = identity_index::Pause::named(&at) else {
            return http::error(400, "invalid_fault", HOW);
        };
        let key = Identifier {
            kind: "anonymousId".into(),
            value: id,
        }
        .key();
        identity_index::inject_pause(env, &key, at, ms).await?;
        return http::json(200, &serde_json::json!({"ok": true}));
    }
    let Some(failures) = param("failures").and_then(|f| f.parse::<u32>().ok()) else {
        return http::error(400, "invalid_fault", HOW);
    };
    // A directory fault: the profile's entry cannot be written N times.
    if let Some(profile) = param("directoryProfile") {
        directory::inject_failures(env, &profile, i64::from(failures)).await?;
        return http::json(200, &serde_json::json!({"ok": true}));
    }
    let Some(id) = param("anonymousId") else {
        return http::error(400, "invalid_fault", HOW);
    };
    let key = Identifier {
        kind: "anonymousId".into(),
        value: id,
    }
    .key();
    identity_index::inject_failures(env, &key, failures).await?;
    http::json(200, &serde_json::json!({"ok": true}))
}

/// Who is calling the admin API: the token presented, if it is one.
pub fn caller<'a>(req: &Request, config: &'a Config) -> Option<&'a cdp_protocol::auth::Token> {
    config.tokens.find(&http::bearer_token(req)?)
}

/// The `401` of a request without a token.
pub fn unauthorized() -> Result<Response> {
    http::error(
        401,
        "unauthorized",
        "the admin API needs the header Authorization: Bearer <admin token>",
    )
}

/// The `403` of a viewer asking for what only an admin may do.
pub fn forbidden(name: &str) -> Result<Response> {
    let message = format!("{name} is a viewer token: it reads, but may not erase, export, unmerge or change definitions");
    http::error(403, "forbidden", &message)
}
