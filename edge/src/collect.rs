//! The collector: Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, …).
//!
//! Stages, in order: size limits, gzip, decode, write key and source, origin, per-event
//! validation, consent, enrichment, then the queue. It answers success only once the queue
//! holds every accepted event, so a client that sees 200 may forget the batch; on a queue
//! failure it answers 503 and the client retries, which is safe because delivery is
//! deduplicated by `(source, messageId)` downstream.

use cdp_protocol::auth::write_key_from_basic;
use cdp_protocol::decode::{decode, DecodeError, Endpoint, Envelope};
use cdp_protocol::enrich::geo::Location;
use cdp_protocol::enrich::{enrich, EnrichInput};
use cdp_protocol::import::{self, RowError};
use cdp_protocol::source::Source;
use cdp_protocol::validate::{check_batch, Rejection};
use serde_json::json;
use worker::{Context, Date, Env, Request, Response, Result};

use crate::compression::{gunzip, GunzipError};
use crate::config::Config;
use crate::stats::{self, Counter, Counts};
use crate::{http, import_job, queue};

/// Header that stands in for Cloudflare's request geography in local development only.
pub const DEV_GEO_HEADER: &str = "X-CDP-Dev-Geo";

/// Whether `path` is one of the collector's paths.
pub fn is_collector_path(path: &str) -> bool {
    Endpoint::from_path(path).is_some()
}

/// Takes a request to a collector path in, enqueues what is valid, and reports what is not.
pub async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let mut counts = Counts::new();
    let outcome = collect(&mut req, env, config, &mut counts).await;
    if !counts.is_empty() {
        let env = env.clone();
        ctx.wait_until(async move { stats::add(&env, counts).await });
    }
    // Every answer, refusals included, is readable by the page that asked.
    http::allow_origin(outcome?, origin.as_deref())
}

fn refuse(status: u16, reason: &str, message: &str, counts: &mut Counts) -> Result<Response> {
    stats::reject(counts, reason);
    http::error(status, reason, message)
}

async fn collect(
    req: &mut Request,
    env: &Env,
    config: &Config,
    counts: &mut Counts,
) -> Result<Response> {
    let Some(endpoint) = Endpoint::from_path(&req.path()) else {
        return http::error(404, "not_found", "not a collector path");
    };
    let limits = config.limits;
    let content_type = req
        .headers()
        .get("Content-Type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    // `POST /v1/import` with CSV or NDJSON is an offline import (customers and orders);
    // with JSON it is Segment's batch import, like `/v1/batch`.
    let offline = req.path() == "/v1/import"
        && (content_type.contains("csv") || content_type.contains("ndjson"));
    if req.path() == "/v1/import" && !offline && !is_json_type(&content_type) {
        let message = format!(
            "Content-Type {content_type} is not accepted by /v1/import; send text/csv or application/x-ndjson (an offline import), or application/json (a Segment batch)"
        );
        return refuse(415, "unsupported_content_type", &message, counts);
    }
    let body_limit = if offline {
        limits.max_batch_bytes.saturating_mul(20)
    } else {
        limits.max_batch_bytes
    };
    let header_key = req
        .headers()
        .get("Authorization")?
        .and_then(|h| write_key_from_basic(&h));
    if header_key
        .as_deref()
        .is_some_and(|k| config.sources.by_key(k).is_none())
    {
        return refuse(401, "unknown_write_key", UNKNOWN_KEY, counts);
    }
    let too_large = format!("the body is larger than {body_limit} bytes");
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > body_limit) {
        return refuse(413, "body_too_large", &too_large, counts);
    }
    let mut body = req.bytes().await?;
    if body.len() > body_limit {
        return refuse(413, "body_too_large", &too_large, counts);
    }
    let encoding = req
        .headers()
        .get("Content-Encoding")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.trim() {
        "" | "identity" => {}
        "gzip" | "x-gzip" => match gunzip(&body, body_limit).await {
            Ok(inflated) => body = inflated,
            Err(GunzipError::TooLarge) => {
                return refuse(
                    413,
                    "body_too_large",
                    &format!("{too_large} once decompressed"),
                    counts,
                )
            }
            Err(GunzipError::Invalid) => {
                return refuse(
                    400,
                    "invalid_gzip",
                    "the body says gzip but is not valid gzip",
                    counts,
                )
            }
        },
        other => {
            return refuse(
                415,
                "unsupported_encoding",
                &format!("Content-Encoding {other} is not supported; use gzip or none"),
                counts,
            )
        }
    }

    let received_at = Date::now().as_millis() as i64;
    let body_bytes = body.len();
    let mut row_errors = Vec::new();
    let decoded = if offline {
        let Ok(text) = std::str::from_utf8(&body) else {
            return refuse(400, "invalid_utf8", "an import file must be UTF-8", counts);
        };
        let imported = import::read(text, content_type.contains("csv"));
        row_errors = imported.errors;
        if imported.events.is_empty() {
            let body = json!({"success": false, "error": {"reason": "no_valid_rows", "message": "no row of the file is valid"},
                "rowErrors": rows_report(&row_errors)});
            return http::json(400, &body);
        }
        Ok(Envelope {
            write_key: None,
            sent_at: None,
            events: imported.events,
            client_dropped: 0,
            lossy: false,
        })
    } else {
        decode(&body, endpoint, &limits)
    };
    let envelope = match decoded {
        Ok(envelope) => envelope,
        Err(e) => {
            let status = if matches!(e, DecodeError::TooLarge { .. }) {
                413
            } else {
                400
            };
            return refuse(status, e.reason(), &e.to_string(), counts);
        }
    };
    let Some(source) = header_key
        .or_else(|| envelope.write_key.clone())
        .and_then(|k| config.sources.by_key(&k))
    else {
        return refuse(401, "unknown_write_key", UNKNOWN_KEY, counts);
    };
    let origin = req.headers().get("Origin")?;
    if !source.allows_origin(origin.as_deref()) {
        stats::reject(counts, "origin_not_allowed");
        let message = format!(
            "origin {} may not send events for this source",
            origin.unwrap_or_default()
        );
        // Readable by the page (CORS headers like any answer), so its tracker sees a final
        // 4xx and settles the batch instead of retrying what looks like a network error.
        return http::error(403, "origin_not_allowed", &message);
    }
    if envelope.client_dropped > 0 {
        stats::bump(counts, Counter::ClientDropped, envelope.client_dropped);
    }

    let sent_at = envelope.sent_at;
    let checked = check_batch(envelope, received_at, &limits);
    for rejection in &checked.rejected {
        stats::reject(counts, rejection.reason);
    }
    let input = enrich_input(req, config, received_at, sent_at)?;
    let mut keep = Vec::with_capacity(checked.accepted.len());
    for mut event in checked.accepted {
        if !source.consent_allows(&event) {
            stats::bump(counts, Counter::ConsentDropped, 1);
            continue;
        }
        source.default_currency(&mut event);
        let found = enrich(&mut event, &input, &source.enrich);
        if found.clamped.is_some() {
            stats::bump(counts, Counter::ClockClamped, 1);
        }
        if found.is_bot {
            stats::bump(counts, Counter::Bots, 1);
            if found.drop_as_bot(&source.enrich) {
                stats::bump(counts, Counter::BotsDropped, 1);
                continue;
            }
        }
        keep.push(event);
    }

    if keep.is_empty() && !checked.rejected.is_empty() {
        let body = json!({"success": false, "error": {"reason": "no_valid_events",
            "message": "no event in the request is valid"}, "rejected": report(&checked.rejected)});
        return http::json(400, &body);
    }
    let anonymous_id = keep.iter().find_map(|e| e.anonymous_id.clone());
    let mut job = None;
    let kept = keep.len();
    if !keep.is_empty() {
        // The counters travel with the events; the consumer adds them once per delivery.
        let mut travelling = std::mem::take(counts);
        stats::bump(&mut travelling, Counter::Accepted, keep.len() as i64);
        if offline {
            job = Some(import_job::new_id()?);
        }
        let origin = queue::Origin {
            source: &source.write_key,
            received_at,
            body_bytes,
            replay: false,
            job: job.as_deref(),
        };
        match queue::enqueue(env, origin, keep, travelling).await {
            Ok(chunks) => {
                if let Some(job) = &job {
                    let totals = [
                        ("startedAt", received_at),
                        ("source", import_job::owner_mark(&source.write_key)),
                        (
                            "rowErrors",
                            (row_errors.len() + checked.rejected.len()) as i64,
                        ),
                        ("events", kept as i64),
                        ("chunks", i64::from(chunks)),
                    ];
                    let totals = totals.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                    import_job::register(env, job, totals).await?;
                }
            }
            Err(e) => {
                worker::console_error!("enqueue failed: {e}");
                let message = "the events could not be queued; retry later";
                return http::error(503, "queue_unavailable", message);
            }
        }
    }
    let mut response = if offline {
        let clean = checked.rejected.is_empty() && row_errors.is_empty();
        let progress = job.as_ref().map(|j| ["/v1/import/", j].concat());
        let body = json!({"success": clean, "imported": kept, "rowErrors": rows_report(&row_errors),
            "rejected": report(&checked.rejected), "job": job, "progress": progress});
        http::json(if clean { 200 } else { 207 }, &body)?
    } else if checked.rejected.is_empty() {
        http::json(200, &json!({"success": true}))?
    } else {
        http::json(
            207,
            &json!({"success": false, "rejected": report(&checked.rejected)}),
        )?
    };
    if let Some(id) = anonymous_id {
        response = refresh_cookie(response, req, source, &id)?;
    }
    Ok(response)
}

/// JSON as clients label it: `application/json` (and `+json` types), `text/plain` (browsers
/// avoiding a CORS preflight), or no type at all.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.is_empty() || essence == "text/plain" || essence.ends_with("json")
}

const UNKNOWN_KEY: &str =
    "the write key is missing or unknown; send it as the HTTP Basic user name or as \"writeKey\"";

fn rows_report(errors: &[RowError]) -> Vec<serde_json::Value> {
    errors
        .iter()
        .map(|e| json!({"line": e.line, "reason": e.reason}))
        .collect()
}

fn report(rejected: &[Rejection]) -> Vec<serde_json::Value> {
    rejected
        .iter()
        .map(|r| json!({"index": r.index, "messageId": r.message_id, "reason": r.reason, "message": r.detail}))
        .collect()
}

/// What the request says about every event: IP, user agent, geography, times.
fn enrich_input(
    req: &Request,
    config: &Config,
    received_at: i64,
    sent_at: Option<i64>,
) -> Result<EnrichInput> {
    let headers = req.headers();
    // Locally `request.cf` is wrangler's placeholder (always Austin, Texas): development
    // takes its location from the header alone, and no header means no location.
    let location = if config.development {
        headers
            .get(DEV_GEO_HEADER)?
            .and_then(|value| Location::from_dev_header(&value).ok())
    } else {
        req.cf().map(|cf| {
            let text = |v: Option<String>| v.unwrap_or_default();
            let (lat, lon) = cf
                .coordinates()
                .map_or((String::new(), String::new()), |(a, b)| {
                    (a.to_string(), b.to_string())
                });
            let pairs = [
                ("country", text(cf.country())),
                ("region", text(cf.region())),
                ("regionCode", text(cf.region_code())),
                ("city", text(cf.city())),
                ("postalCode", text(cf.postal_code())),
                ("timezone", cf.timezone_name()),
                ("latitude", lat),
                ("longitude", lon),
                ("asn", cf.asn().map(|a| a.to_string()).unwrap_or_default()),
                ("asOrganization", text(cf.as_organization())),
            ];
            Location::from_cf_pairs(
                pairs
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (*k, v.as_str())),
            )
        })
    };
    Ok(EnrichInput {
        received_at,
        sent_at,
        ip: headers.get("CF-Connecting-IP")?,
        user_agent: headers.get("User-Agent")?,
        location,
    })
}

/// When the collector is first-party (the page and the collector share a site), refreshes
/// the anonymous-id cookie from the server: browsers that cap script-set cookies at 7 days
/// keep server-set ones for their full lifetime.
fn refresh_cookie(
    response: Response,
    req: &Request,
    source: &Source,
    anonymous_id: &str,
) -> Result<Response> {
    let rule = &source.cookie;
    let url = req.url()?;
    let same_site = match req.headers().get("Origin")? {
        Some(origin) => origin.eq_ignore_ascii_case(&url.origin().ascii_serialization()),
        None => false,
    };
    if rule.name.is_empty()
        || !same_site
        || anonymous_id.len() > 128
        || !anonymous_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Ok(response);
    }
    let mut cookie = [
        &rule.name,
        "=",
        anonymous_id,
        "; Max-Age=",
        &(u64::from(rule.days) * 86_400).to_string(),
        "; Path=/; SameSite=Lax",
    ]
    .concat();
    if !rule.domain.is_empty() {
        cookie.push_str("; Domain=");
        cookie.push_str(&rule.domain);
    }
    if url.scheme() == "https" {
        cookie.push_str("; Secure");
    }
    let headers = response.headers().clone();
    headers.append("Set-Cookie", &cookie)?;
    Ok(response.with_headers(headers))
}
