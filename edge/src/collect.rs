//! The collector: Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, …).
//!
//! Stages, in order: size limits, gzip, decode, write key and source, origin, per-event
//! validation, consent, enrichment, then the queue. It answers success only once the queue
//! holds every accepted event, so a client that sees 200 may forget the batch; on a queue
//! failure it answers 503 and the client retries, which is safe because delivery is
//! deduplicated downstream (a profile stores each `messageId` once). The stages are shared with the
//! offline import ([`offline_import`](crate::offline_import)), which reads files instead
//! of events.

use cdp_protocol::auth::write_key_from_basic;
use cdp_protocol::decode::{decode, DecodeError, Endpoint, Envelope};
use cdp_protocol::enrich::geo::Location;
use cdp_protocol::enrich::{enrich, EnrichInput};
use cdp_protocol::source::Source;
use cdp_protocol::validate::{check_batch, Rejection};
use serde_json::json;
use worker::{Context, Date, Env, Request, Response, Result};

use crate::compression::{gunzip, GunzipError};
use crate::config::Config;
use crate::stats::{self, Counter, Counts};
use crate::{http, offline_import, queue};

/// Header that stands in for Cloudflare's request geography in local development only.
pub const DEV_GEO_HEADER: &str = "X-CDP-Dev-Geo";

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

pub(crate) fn refuse(
    status: u16,
    reason: &str,
    message: &str,
    counts: &mut Counts,
) -> Result<Response> {
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
    let content_type = req
        .headers()
        .get("Content-Type")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    // `POST /v1/import` with CSV or NDJSON is an offline import (customers and orders), its
    // own handler; with JSON it is Segment's batch import, like `/v1/batch`.
    if req.path() == "/v1/import" {
        if let Some(format) = offline_import::Format::of(&content_type) {
            return offline_import::handle(req, env, config, counts, format).await;
        }
        if !is_json_type(&content_type) {
            let message = format!(
                "Content-Type {content_type} is not accepted by /v1/import; send text/csv or application/x-ndjson (an offline import), or application/json (a Segment batch)"
            );
            return refuse(415, "unsupported_content_type", &message, counts);
        }
    }
    let limits = config.limits;
    let body = match read_body(req, config, limits.max_batch_bytes, counts).await? {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let envelope = match decode(&body.bytes, endpoint, &limits) {
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
    let admitted = match admit(req, config, &body, envelope, counts)? {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal),
    };
    if admitted.keep.is_empty() && !admitted.rejected.is_empty() {
        let body = json!({"success": false, "error": {"reason": "no_valid_events",
            "message": "no event in the request is valid"}, "rejected": report(&admitted.rejected)});
        return http::json(400, &body);
    }
    if let Err(refusal) = admitted.enqueue(env, &body, None, counts).await? {
        return Ok(refusal);
    }
    let response = if admitted.rejected.is_empty() {
        http::json(200, &json!({"success": true}))?
    } else {
        http::json(
            207,
            &json!({"success": false, "rejected": report(&admitted.rejected)}),
        )?
    };
    admitted.with_cookie(response, req)
}

/// A request body, read within its limit and inflated.
pub(crate) struct Body {
    /// The body's bytes (decompressed).
    pub bytes: Vec<u8>,
    /// The write key of the `Authorization` header, when there is one (a known one).
    pub header_key: Option<String>,
    /// When the request was received (ms).
    pub received_at: i64,
}

/// Reads the body under `limit` (before and after gzip), refusing an unknown write key in
/// the header before reading anything: `Ok(Err(answer))` is a refusal to send back.
pub(crate) async fn read_body(
    req: &mut Request,
    config: &Config,
    limit: usize,
    counts: &mut Counts,
) -> Result<std::result::Result<Body, Response>> {
    let header_key = req
        .headers()
        .get("Authorization")?
        .and_then(|h| write_key_from_basic(&h));
    if header_key
        .as_deref()
        .is_some_and(|k| config.sources.by_key(k).is_none())
    {
        return refuse(401, "unknown_write_key", UNKNOWN_KEY, counts).map(Err);
    }
    let too_large = format!("the body is larger than {limit} bytes");
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|l| l > limit) {
        return refuse(413, "body_too_large", &too_large, counts).map(Err);
    }
    let mut bytes = req.bytes().await?;
    if bytes.len() > limit {
        return refuse(413, "body_too_large", &too_large, counts).map(Err);
    }
    let encoding = req
        .headers()
        .get("Content-Encoding")?
        .unwrap_or_default()
        .to_ascii_lowercase();
    match encoding.trim() {
        "" | "identity" => {}
        "gzip" | "x-gzip" => match gunzip(&bytes, limit).await {
            Ok(inflated) => bytes = inflated,
            Err(GunzipError::TooLarge) => {
                let message = format!("{too_large} once decompressed");
                return refuse(413, "body_too_large", &message, counts).map(Err);
            }
            Err(GunzipError::Invalid) => {
                let message = "the body says gzip but is not valid gzip";
                return refuse(400, "invalid_gzip", message, counts).map(Err);
            }
        },
        other => {
            let message = format!("Content-Encoding {other} is not supported; use gzip or none");
            return refuse(415, "unsupported_encoding", &message, counts).map(Err);
        }
    }
    Ok(Ok(Body {
        bytes,
        header_key,
        received_at: Date::now().as_millis() as i64,
    }))
}

/// What a request's events came to: their source, the events kept (valid, consented,
/// enriched), and those refused.
pub(crate) struct Admitted<'a> {
    /// The source whose write key the request carried.
    pub source: &'a Source,
    /// The events to queue.
    pub keep: Vec<cdp_protocol::event::Event>,
    /// The events refused, with their reasons.
    pub rejected: Vec<Rejection>,
}

/// Finds the source (header or body key) and checks the page's origin, then judges each
/// event: validation, consent, the source's currency, enrichment, bots.
pub(crate) fn admit<'a>(
    req: &Request,
    config: &'a Config,
    body: &Body,
    envelope: Envelope,
    counts: &mut Counts,
) -> Result<std::result::Result<Admitted<'a>, Response>> {
    let Some(source) = body
        .header_key
        .clone()
        .or_else(|| envelope.write_key.clone())
        .and_then(|k| config.sources.by_key(&k))
    else {
        return refuse(401, "unknown_write_key", UNKNOWN_KEY, counts).map(Err);
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
        return http::error(403, "origin_not_allowed", &message).map(Err);
    }
    if envelope.client_dropped > 0 {
        stats::bump(counts, Counter::ClientDropped, envelope.client_dropped);
    }
    let sent_at = envelope.sent_at;
    let checked = check_batch(envelope, body.received_at, &config.limits);
    for rejection in &checked.rejected {
        stats::reject(counts, rejection.reason);
    }
    let input = enrich_input(req, config, body.received_at, sent_at)?;
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
    Ok(Ok(Admitted {
        source,
        keep,
        rejected: checked.rejected,
    }))
}

impl Admitted<'_> {
    /// Queues the kept events (an import's under `job`), with the request's counters;
    /// resolves to the number of queue messages, or the 503 to answer when the queue did not
    /// confirm (the client retries; delivery is deduplicated).
    pub(crate) async fn enqueue(
        &self,
        env: &Env,
        body: &Body,
        job: Option<&str>,
        counts: &mut Counts,
    ) -> Result<std::result::Result<u32, Response>> {
        if self.keep.is_empty() {
            return Ok(Ok(0));
        }
        // The counters travel with the events; the consumer adds them once per message.
        let mut travelling = std::mem::take(counts);
        stats::bump(&mut travelling, Counter::Accepted, self.keep.len() as i64);
        let origin = queue::Origin {
            source: &self.source.write_key,
            received_at: body.received_at,
            body_bytes: body.bytes.len(),
            replay: false,
            job,
        };
        match queue::enqueue(env, origin, self.keep.clone(), travelling).await {
            Ok(chunks) => Ok(Ok(chunks)),
            Err(e) => {
                worker::console_error!("enqueue failed: {e}");
                let message = "the events could not be queued; retry later";
                http::error(503, "queue_unavailable", message).map(Err)
            }
        }
    }

    /// The answer, with the visitor's cookie refreshed when the collector is first-party.
    pub(crate) fn with_cookie(&self, response: Response, req: &Request) -> Result<Response> {
        match self.keep.iter().find_map(|e| e.anonymous_id.clone()) {
            Some(id) => refresh_cookie(response, req, self.source, &id),
            None => Ok(response),
        }
    }
}

/// JSON as clients label it: `application/json` (and `+json` types), `text/plain` (browsers
/// avoiding a CORS preflight), or no type at all.
fn is_json_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.is_empty() || essence == "text/plain" || essence.ends_with("json")
}

const UNKNOWN_KEY: &str =
    "the write key is missing or unknown; send it as the HTTP Basic user name or as \"writeKey\"";

pub(crate) fn report(rejected: &[Rejection]) -> Vec<serde_json::Value> {
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
