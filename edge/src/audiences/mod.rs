//! Audiences: the admin API over their definitions and segment groups, the backfill that
//! evaluates existing profiles when a definition changes, member listing, and the
//! personalization API pages call.
//!
//! Membership itself is decided in each profile's object
//! ([`profile_store`](crate::profile_store)), by the pure evaluator in
//! `cdp_protocol::audience`; the directory keeps each profile's audiences for sizes and
//! member pages.

mod exports_registry;
pub mod registry;
pub mod sizes;

use cdp_protocol::audience;
use cdp_protocol::identity::{normalize, Identifier};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{Env, MessageBatch, MessageExt, Request, Response, Result};

use crate::config::{Config, BACKFILL};
use crate::{directory, http, identity_index, profile_store};
use registry::Ask;

/// Profiles one backfill message evaluates.
const BACKFILL_CHUNK: usize = 50;

/// `GET /v1/audiences`: every audience with its state and size, and the groups.
pub async fn list(env: &Env) -> Result<Response> {
    let (_, mut listed) = registry::call(env, &Ask::List).await?;
    let sizes = directory::counts(env).await?;
    if let Some(audiences) = listed.get_mut("audiences").and_then(Value::as_array_mut) {
        for a in audiences {
            let key = a.get("key").and_then(Value::as_str).unwrap_or_default();
            a["size"] = json!(sizes.get(key).copied().unwrap_or(0));
        }
    }
    http::json(200, &listed)
}

/// `GET /v1/audiences/{key}`: one audience, with its state, backfill progress and size.
pub async fn get(env: &Env, key: &str) -> Result<Response> {
    let Some(mut found) = find(env, key).await? else {
        return http::error(404, "audience_not_found", &format!("no audience {key:?}"));
    };
    let sizes = directory::counts(env).await?;
    found["size"] = json!(sizes.get(key).copied().unwrap_or(0));
    http::json(200, &found)
}

/// Audience `key` as the registry lists it, if there is one.
pub(crate) async fn find(env: &Env, key: &str) -> Result<Option<Value>> {
    let (_, listed) = registry::call(env, &Ask::List).await?;
    Ok(http::listed(&listed, "audiences", "key", key))
}

/// `POST /v1/audiences` (`key` in the body) and `PUT /v1/audiences/{key}`: saves a checked
/// definition and starts its backfill.
pub async fn save(mut req: Request, env: &Env, path_key: Option<&str>) -> Result<Response> {
    let body =
        match http::definition_body(&mut req, path_key, &audience::definition::READ_ONLY_FIELDS)
            .await?
        {
            Ok(body) => body,
            Err(refusal) => return Ok(refusal),
        };
    let total = directory::size(env).await?;
    let ask = Ask::Put {
        body,
        create: path_key.is_none(),
        total,
    };
    let (status, answer) = registry::call(env, &ask).await?;
    if status >= 300 {
        return http::json(status, &answer);
    }
    let key = answer
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let version = answer
        .get("version")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    start_backfill(env, &key, version).await?;
    http::json(status, &answer)
}

/// `DELETE /v1/audiences/{key}`: every member leaves it (by backfill), then it is gone.
pub async fn delete(env: &Env, key: &str) -> Result<Response> {
    let total = directory::size(env).await?;
    let ask = Ask::Delete {
        key: key.to_owned(),
        total,
    };
    let (status, answer) = registry::call(env, &ask).await?;
    if status == 200 {
        let version = answer
            .get("version")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        start_backfill(env, key, version).await?;
    }
    http::json(status, &answer)
}

/// `POST /v1/audiences/preview`: the size and up to 20 sample members of a definition,
/// evaluated on profiles without saving anything. It reads at most [`PREVIEW_PROFILES`]
/// profiles; past that the size is an estimate, and says so.
pub async fn preview(mut req: Request, env: &Env) -> Result<Response> {
    let Ok(body) = req.json::<Value>().await else {
        return http::error(400, "invalid_json", "send the definition as a JSON object");
    };
    let mut body = body;
    if body.get("key").is_none() && body.is_object() {
        body["key"] = json!("preview");
    }
    let definition = match audience::parse(&body) {
        Ok(d) => d,
        Err(e) => return bad_definition(&e),
    };
    let mut definitions = registry::definitions(env).await?;
    // Names with inAudience are checked against the saved audiences.
    let mut all = definitions.parsed();
    all.retain(|d| d.key != definition.key);
    all.push(definition.clone());
    if let Err(e) = audience::ordered(&all) {
        return bad_definition(&e);
    }
    definitions
        .definitions
        .retain(|d| d.get("key") != Some(&json!(definition.key)));
    definitions.definitions.push(body);
    let total = directory::size(env).await?;
    let mut cursor = String::new();
    let (mut read, mut members, mut samples) = (0usize, 0usize, Vec::new());
    while read < PREVIEW_PROFILES {
        let (page, next) = directory::search(env, &[], &cursor, directory::MAX_PAGE).await?;
        let ids: Vec<String> = page
            .iter()
            .filter_map(|p| p.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let asks = ids
            .iter()
            .map(|id| profile_store::preview(env, id, &definitions, &definition.key));
        for (id, member) in ids.iter().zip(futures_util::future::join_all(asks).await) {
            if member? {
                members += 1;
                if samples.len() < 20 {
                    samples.push(id.clone());
                }
            }
        }
        read += ids.len();
        match next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let estimated = (read as i64) < total;
    let size = if estimated && read > 0 {
        (members as f64 * total as f64 / read as f64).round() as i64
    } else {
        members as i64
    };
    http::json(
        200,
        &json!({"size": size, "estimated": estimated, "evaluated": read, "profiles": total,
                "sample": samples}),
    )
}

/// Most profiles a preview evaluates.
const PREVIEW_PROFILES: usize = 2_000;

/// `GET /v1/audiences/{key}/members?cursor=&limit=`: the members, paged in profile order.
pub async fn members(req: Request, env: &Env, key: &str) -> Result<Response> {
    let url = req.url()?;
    let (mut cursor, mut limit) = (String::new(), 50);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "cursor" => cursor = v.into_owned(),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=directory::MAX_PAGE).contains(&n) => limit = n,
                _ => {
                    let message = format!("limit is 1 to {}", directory::MAX_PAGE);
                    return http::bad_parameter("invalid_limit", "limit", &message);
                }
            },
            other => {
                let message = format!("unknown parameter {other:?}; use cursor and limit");
                return http::bad_parameter("unknown_parameter", other, &message);
            }
        }
    }
    let (profiles, next) = directory::members(env, &[key.to_owned()], &cursor, limit).await?;
    http::json(
        200,
        &json!({"audience": key, "profiles": profiles, "nextCursor": next}),
    )
}

/// `POST /v1/segment-groups` with `{key, name}`.
pub async fn create_group(mut req: Request, env: &Env) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        key: String,
        name: Option<String>,
    }
    let Ok(body) = req.json::<Body>().await else {
        return http::error(
            400,
            "invalid_body",
            "send {\"key\": \"shop\", \"name\": \"Shop\"}",
        );
    };
    let name = body.name.unwrap_or_else(|| body.key.clone());
    let (status, answer) = registry::call(
        env,
        &Ask::PutGroup {
            key: body.key,
            name,
        },
    )
    .await?;
    http::json(status, &answer)
}

/// `GET /v1/segment-groups` and `GET /v1/segment-groups/{key}`: groups with their
/// audiences and sizes.
pub async fn groups(env: &Env, only: Option<&str>) -> Result<Response> {
    let (_, listed) = registry::call(env, &Ask::List).await?;
    let sizes = directory::counts(env).await?;
    let audiences = listed
        .get("audiences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let groups: Vec<Value> = listed
        .get("groups")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|g| only.is_none() || g.get("key").and_then(Value::as_str) == only)
        .map(|mut g| {
            let key = g.get("key").cloned().unwrap_or(Value::Null);
            let inside: Vec<Value> = audiences
                .iter()
                .filter(|a| a.get("group") == Some(&key))
                .map(|a| {
                    let k = a.get("key").and_then(Value::as_str).unwrap_or_default();
                    json!({"key": k, "name": a.get("name"), "state": a.get("state"),
                           "size": sizes.get(k).copied().unwrap_or(0)})
                })
                .collect();
            g["audiences"] = json!(inside);
            g
        })
        .collect();
    match only {
        Some(key) => match groups.into_iter().next() {
            Some(group) => http::json(200, &group),
            None => http::error(404, "group_not_found", &format!("no segment group {key:?}")),
        },
        None => http::json(200, &json!({"groups": groups})),
    }
}

fn bad_definition(e: &audience::DefinitionError) -> Result<Response> {
    http::definition_refused("invalid_definition", e)
}

/// A backfill chunk: the profiles of one directory partition after `after`.
#[derive(Serialize, Deserialize)]
struct Chunk {
    audience: String,
    version: i64,
    shard: u64,
    after: String,
}

/// Queues the first chunk of every directory partition.
async fn start_backfill(env: &Env, audience: &str, version: i64) -> Result<()> {
    let messages = (0..directory::SHARDS)
        .map(|shard| {
            let chunk = Chunk {
                audience: audience.to_owned(),
                version,
                shard,
                after: String::new(),
            };
            serde_json::to_string(&chunk).map_err(worker::Error::from)
        })
        .collect::<Result<Vec<String>>>()?;
    crate::queue::send_texts(env, BACKFILL, messages).await
}

/// The backfill queue's consumer: each chunk evaluates up to [`BACKFILL_CHUNK`] profiles
/// under the current definitions, reports progress, and queues the partition's next chunk.
pub async fn backfill(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let definitions = registry::definitions(env).await?;
    for message in batch.raw_iter() {
        let text = message.body().as_string().unwrap_or_default();
        let Ok(chunk) = serde_json::from_str::<Chunk>(&text) else {
            worker::console_error!("unreadable backfill message {}", message.id());
            message.ack();
            continue;
        };
        match backfill_chunk(env, &chunk, &definitions).await {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("backfill chunk failed, retrying: {e}");
                message.retry();
            }
        }
    }
    Ok(())
}

async fn backfill_chunk(
    env: &Env,
    chunk: &Chunk,
    definitions: &registry::Definitions,
) -> Result<()> {
    let ids = directory::ids(env, chunk.shard, &chunk.after, BACKFILL_CHUNK).await?;
    let evaluations = ids
        .iter()
        .map(|id| profile_store::evaluate(env, id, definitions));
    for outcome in futures_util::future::join_all(evaluations).await {
        outcome?;
    }
    let done = ids.len() < BACKFILL_CHUNK;
    if !done {
        let next = Chunk {
            after: ids.last().cloned().unwrap_or_default(),
            audience: chunk.audience.clone(),
            version: chunk.version,
            shard: chunk.shard,
        };
        let text = serde_json::to_string(&next)?;
        crate::meter::add(crate::meter::Cost::QueueWrite, 1);
        env.queue(BACKFILL)?
            .send(worker::MessageBuilder::new(text).build())
            .await?;
    }
    let progress = Ask::Progress {
        key: chunk.audience.clone(),
        version: chunk.version,
        evaluated: ids.len() as i64,
        shard_done: done,
    };
    registry::call(env, &progress).await?;
    Ok(())
}

/// `GET /v1/personalize?anonymousId=…&writeKey=…` (or the source's cookie, or Basic auth):
/// the audiences marked `personalize` that the visitor is in, by group. Only an anonymous
/// id is taken: a user id or an email could be guessed.
pub async fn personalize(req: Request, env: &Env, config: &Config) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let answer = personalized(&req, env, config).await?;
    http::allow_origin(answer, origin.as_deref())
}

async fn personalized(req: &Request, env: &Env, config: &Config) -> Result<Response> {
    let url = req.url()?;
    let mut write_key = req
        .headers()
        .get("Authorization")?
        .and_then(|h| cdp_protocol::auth::write_key_from_basic(&h));
    let mut anonymous_id = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "writeKey" => write_key = Some(v.into_owned()),
            "anonymousId" => anonymous_id = Some(v.into_owned()),
            "userId" | "email" | "phone" => {
                let message = format!(
                    "{k} is refused here: it could be guessed; send the visitor's anonymousId"
                );
                return http::bad_parameter("identifier_not_allowed", &k, &message);
            }
            other => {
                let message = format!("unknown parameter {other:?}; use anonymousId and writeKey");
                return http::bad_parameter("unknown_parameter", other, &message);
            }
        }
    }
    let Some(source) = write_key.as_deref().and_then(|k| config.sources.by_key(k)) else {
        return http::error(
            401,
            "unknown_write_key",
            "give the source's write key: ?writeKey=…",
        );
    };
    if !source.allows_origin(req.headers().get("Origin")?.as_deref()) {
        return http::error(
            403,
            "origin_not_allowed",
            "the source does not allow this origin",
        );
    }
    let from_cookie = || -> Option<String> {
        let name = &source.cookie.name;
        let cookies = req.headers().get("Cookie").ok()??;
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name && !name.is_empty()).then(|| v.to_owned())
        })
    };
    let via_cookie = anonymous_id.is_none();
    let Some(anonymous_id) = anonymous_id.or_else(from_cookie) else {
        return http::bad_parameter(
            "missing_identifier",
            "anonymousId",
            "give the visitor's anonymousId",
        );
    };
    let Some(value) = normalize("anonymousId", &anonymous_id) else {
        return http::bad_parameter(
            "invalid_identifier",
            "anonymousId",
            "not a usable anonymousId",
        );
    };
    // An answer named by its URL is kept at the edge for its five seconds: repeated page
    // views within them cost no profile read. One read from the cookie is not shared.
    let cache = worker::Cache::default();
    let cache_key = url.to_string();
    if !via_cookie {
        if let Some(hit) = cache.get(cache_key.as_str(), false).await? {
            return Ok(hit);
        }
    }
    let key = Identifier {
        kind: "anonymousId".into(),
        value,
    }
    .key();
    let profile = identity_index::lookup(env, std::slice::from_ref(&key), false)
        .await?
        .profiles
        .get(&key)
        .cloned();
    let held = match profile {
        Some(profile) => profile_store::memberships(env, &profile).await?,
        None => Vec::new(),
    };
    let definitions = registry::definitions(env).await?.parsed();
    let mut audiences = Vec::new();
    let mut groups = serde_json::Map::new();
    for m in &held {
        let key = m.get("key").and_then(Value::as_str).unwrap_or_default();
        let Some(d) = definitions.iter().find(|d| d.key == key && d.personalize) else {
            continue;
        };
        audiences.push(json!(d.key));
        if let Some(group) = &d.group {
            if let Some(list) = groups
                .entry(group.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
            {
                list.push(json!(d.key));
            }
        }
    }
    let response = http::json(200, &json!({"audiences": audiences, "groups": groups}))?;
    let headers = response.headers().clone();
    // Shared caches may keep an answer named by its URL for a few seconds; one read from
    // the cookie is the visitor's own.
    let control = if via_cookie {
        "private, max-age=5"
    } else {
        "public, max-age=5"
    };
    headers.set("Cache-Control", control)?;
    if via_cookie {
        headers.append("Vary", "Cookie")?;
    }
    let mut response = response.with_headers(headers);
    if !via_cookie {
        cache.put(cache_key.as_str(), response.cloned()?).await?;
    }
    Ok(response)
}
