//! Activation: audience membership changes sent to the systems that act on them.
//!
//! A profile's outbox puts each entry and exit on the activation queue; [`fan_out`] turns
//! each into one delivery per destination that wants it, on the deliveries queue; and
//! [`deliver`] sends each (a signed Standard Webhooks request, or an `identify` and a
//! `track` to a Segment-compatible API). A failed delivery goes back on the queue with the
//! destination's backoff (or the receiver's `Retry-After`) until its time runs out, then to
//! the dead-letter store. What is sent is checked then, not when the change happened: a
//! person erased since, or without the destination's consent, gets nothing sent.

use cdp_protocol::destination::{self, webhook_payload, Change, Destination, Kind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{
    Env, Fetch, Headers, MessageBatch, MessageExt, Method, Request, RequestInit, Response, Result,
};

use crate::audiences::registry::{self, Ask};
use crate::config::{Config, ACTIVATION, DELIVERIES};
use crate::profile_store::{self, Showing, View};
use crate::stats::{self, Counter, Counts};
use crate::{http, import_job};

/// One delivery of one change to one destination, as the deliveries queue carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    destination: String,
    change: Change,
    /// 1 for the first try.
    attempt: u32,
    /// When the change was first queued for this destination (ms), for giving up.
    first_at: i64,
}

impl Delivery {
    /// The `webhook-id`: the same for every try of one change to one destination.
    fn id(&self) -> String {
        format!("msg_{}_{}", self.change.profile, self.change.seq)
    }
}

fn now() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// The destinations, checked (the stored ones passed the same check when saved).
async fn destinations(env: &Env, development: bool) -> Result<Vec<(Destination, Value)>> {
    let (_, answer) = registry::call(env, &Ask::Destinations).await?;
    Ok(answer
        .get("destinations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            destination::parse(d, development)
                .ok()
                .map(|parsed| (parsed, d.clone()))
        })
        .collect())
}

/// Most membership changes one activation message carries (a change is a few hundred
/// bytes; a message may hold 128 KB).
const CHANGES_PER_MESSAGE: usize = 100;

/// Puts a delivery's membership changes on the activation queue, up to
/// [`CHANGES_PER_MESSAGE`] in each message: a queue message is three operations (written,
/// read, deleted), and one per change was a tenth of the pipeline's cost.
pub async fn publish(env: &Env, changes: &[Change]) -> Result<()> {
    let bodies = changes
        .chunks(CHANGES_PER_MESSAGE)
        .map(serde_json::to_string)
        .collect::<std::result::Result<Vec<String>, _>>()?;
    crate::queue::send_texts(env, ACTIVATION, bodies).await
}

/// The activation queue's consumer: each membership change becomes one delivery per
/// destination that receives it.
pub async fn fan_out(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    let all = destinations(env, config.development).await?;
    let mut counts = Counts::new();
    let mut out = Vec::new();
    for message in batch.raw_iter() {
        let text = message.body().as_string().unwrap_or_default();
        let Some(changes) = destination::changes_in(&text) else {
            worker::console_error!("unreadable membership change {}", message.id());
            continue;
        };
        stats::bump(
            &mut counts,
            Counter::MembershipChanges,
            changes.len() as i64,
        );
        for change in changes {
            for (d, shown) in &all {
                let active = shown.get("state").and_then(Value::as_str) == Some("active");
                if active && d.wants(&change) {
                    let delivery = Delivery {
                        destination: d.key.clone(),
                        change: change.clone(),
                        attempt: 1,
                        first_at: now(),
                    };
                    out.push(serde_json::to_string(&delivery)?);
                }
            }
        }
    }
    crate::queue::send_texts(env, DELIVERIES, out).await?;
    batch.raw_iter().for_each(|m| m.ack());
    stats::add(env, counts).await;
    Ok(())
}

/// What one try came to.
enum Outcome {
    /// Delivered (2xx).
    Sent(u16),
    /// Not sent, and not to be: no consent, the person is gone, or a 4xx the receiver
    /// will give again.
    Dropped(String),
    /// 410: the receiver is gone; the destination is turned off.
    Gone,
    /// Try again after this long (ms), or give up when its time is out.
    Again(Option<u16>, i64, String),
}

/// The deliveries queue's consumer.
pub async fn deliver(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    let mut all = destinations(env, config.development).await?;
    let mut counts = Counts::new();
    let mut log = Vec::new();
    // Turned off only after the log that says why is written, so whoever sees the
    // destination disabled also finds the delivery that disabled it.
    let mut gone = Vec::new();
    let mut messages: Vec<(worker::RawMessage, Delivery)> = Vec::new();
    for message in batch.raw_iter() {
        match serde_json::from_str::<Delivery>(&message.body().as_string().unwrap_or_default()) {
            Ok(d) => messages.push((message, d)),
            Err(_) => message.ack(),
        }
    }
    // In order per person: an exit is never sent before its entry within a batch.
    messages.sort_by(|(_, a), (_, b)| {
        (&a.change.profile, a.change.seq).cmp(&(&b.change.profile, b.change.seq))
    });
    for (message, delivery) in messages {
        let Some((target, shown)) = all.iter_mut().find(|(d, _)| d.key == delivery.destination)
        else {
            message.ack();
            continue;
        };
        if shown.get("state").and_then(Value::as_str) != Some("active") {
            message.ack();
            continue;
        }
        let started = now();
        let outcome = match attempt(env, target, &delivery).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Again(
                None,
                target.retry.delay(delivery.attempt, js_sys::Math::random()),
                e.to_string(),
            ),
        };
        let latency = now() - started;
        let mut entry = json!({"webhookId": delivery.id(), "profile": delivery.change.profile,
            "sequence": delivery.change.seq, "audience": delivery.change.audience, "change": delivery.change.change,
            "attempt": delivery.attempt, "at": cdp_protocol::time::format_rfc3339(started), "latencyMs": latency});
        match outcome {
            Outcome::Sent(status) => {
                stats::bump(&mut counts, Counter::DeliveriesSent, 1);
                entry["status"] = json!(status);
                entry["outcome"] = json!("delivered");
            }
            Outcome::Dropped(why) => {
                stats::bump(&mut counts, Counter::DeliveriesDropped, 1);
                entry["outcome"] = json!("dropped");
                entry["error"] = json!(why);
            }
            Outcome::Gone => {
                stats::bump(&mut counts, Counter::DeliveriesFailed, 1);
                entry["status"] = json!(410);
                entry["outcome"] = json!("destination disabled");
                let reason = format!(
                    "the receiver answered 410 Gone at {}",
                    cdp_protocol::time::format_rfc3339(started)
                );
                // The rest of this batch sees it off already.
                shown["state"] = json!("disabled");
                gone.push(Ask::DisableDestination {
                    key: target.key.clone(),
                    reason,
                });
            }
            Outcome::Again(status, wait, why) => {
                entry["status"] = json!(status);
                entry["error"] = json!(why);
                if started + wait - delivery.first_at > target.retry.give_up_after {
                    stats::bump(&mut counts, Counter::DeliveriesDeadLettered, 1);
                    entry["outcome"] = json!("given up: kept in the dead-letter store");
                    let body = serde_json::to_value(&delivery)?;
                    registry::call(
                        env,
                        &Ask::DeadDelivery {
                            destination: target.key.clone(),
                            webhook_id: delivery.id(),
                            body,
                        },
                    )
                    .await?;
                } else {
                    stats::bump(&mut counts, Counter::DeliveriesRetried, 1);
                    entry["outcome"] = json!("will retry");
                    entry["nextAt"] = json!(cdp_protocol::time::format_rfc3339(started + wait));
                    let next = Delivery {
                        attempt: delivery.attempt + 1,
                        ..delivery.clone()
                    };
                    let seconds = u32::try_from((wait + 999) / 1000)
                        .unwrap_or(43_200)
                        .min(43_200);
                    let again = worker::MessageBuilder::new(serde_json::to_string(&next)?)
                        .delay_seconds(seconds)
                        .build();
                    crate::meter::add(crate::meter::Cost::QueueWrite, 1);
                    env.queue(DELIVERIES)?.send(again).await?;
                }
            }
        }
        log.push((target.key.clone(), entry));
        message.ack();
    }
    if !log.is_empty() {
        registry::call(env, &Ask::LogDeliveries { entries: log }).await?;
    }
    for ask in &gone {
        registry::call(env, ask).await?;
    }
    stats::add(env, counts).await;
    Ok(())
}

/// The profile as it is now (following merges), or `None` when the person is gone.
async fn profile_now(env: &Env, id: &str) -> Result<Option<(String, Value)>> {
    let mut id = id.to_owned();
    for _ in 0..8 {
        match profile_store::view(env, &id, &Showing::Profile).await? {
            View::Found(body) => return Ok(Some((id, body))),
            View::MergedInto(next) => id = next,
            View::Missing => return Ok(None),
        }
    }
    Ok(None)
}

/// One try of one delivery.
async fn attempt(env: &Env, target: &Destination, delivery: &Delivery) -> Result<Outcome> {
    let Some((id, profile)) = profile_now(env, &delivery.change.profile).await? else {
        return Ok(Outcome::Dropped(
            "the person is gone (erased); nothing is sent".into(),
        ));
    };
    if !target.consented(&profile) {
        let category = target.consent.clone().unwrap_or_default();
        return Ok(Outcome::Dropped(format!(
            "no {category} consent; nothing is sent"
        )));
    }
    let fields = target.profile_fields(&id, &profile);
    let response = match &target.kind {
        Kind::Webhook { url, secret } => {
            let body = webhook_payload(&delivery.change, fields).to_string();
            send_webhook(url, secret, &delivery.id(), &body).await?
        }
        Kind::Segment {
            endpoint,
            write_key,
        } => {
            let Some(batch) = segment_batch(&delivery.change, &delivery.id(), &profile, fields)
            else {
                return Ok(Outcome::Dropped(
                    "the profile has no userId or anonymousId to send".into(),
                ));
            };
            post_json(
                &[endpoint, "/v1/batch"].concat(),
                &batch.to_string(),
                &[("Authorization", &basic(write_key))],
            )
            .await?
        }
    };
    Ok(judge(target, delivery, response))
}

/// What an answer means for the delivery.
fn judge(
    target: &Destination,
    delivery: &Delivery,
    (status, retry_after): (u16, Option<i64>),
) -> Outcome {
    match status {
        200..=299 => Outcome::Sent(status),
        410 => Outcome::Gone,
        408 | 429 | 500..=599 => {
            let wait = retry_after
                .map(|s| s * 1000)
                .unwrap_or_else(|| target.retry.delay(delivery.attempt, js_sys::Math::random()));
            Outcome::Again(
                Some(status),
                wait,
                format!("the receiver answered {status}"),
            )
        }
        _ => Outcome::Dropped(format!(
            "the receiver answered {status}; not retried (a 4xx other than 408, 429)"
        )),
    }
}

fn basic(write_key: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{write_key}:"));
    ["Basic ", &encoded].concat()
}

/// Posts JSON; the status and `Retry-After` (seconds) of the answer.
async fn post_json(url: &str, body: &str, extra: &[(&str, &str)]) -> Result<(u16, Option<i64>)> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("User-Agent", "edge-cdp-activation/1")?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let mut res = Fetch::Request(Request::new_with_init(url, &init)?)
        .send()
        .await?;
    let retry_after = res
        .headers()
        .get("Retry-After")?
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|s| s.clamp(1, 43_200));
    let status = res.status_code();
    let _ = res.bytes().await;
    Ok((status, retry_after))
}

/// A Standard Webhooks request: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
async fn send_webhook(url: &str, secret: &str, id: &str, body: &str) -> Result<(u16, Option<i64>)> {
    let timestamp = now() / 1000;
    let signature = cdp_protocol::webhook::sign(secret, id, timestamp, body)
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let ts = timestamp.to_string();
    post_json(
        url,
        body,
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &signature),
        ],
    )
    .await
}

/// An `identify` with the trait `<audience key>: true|false` and a `track` `Audience
/// Entered` or `Audience Exited`, with message ids stable across tries.
fn segment_batch(change: &Change, id: &str, profile: &Value, fields: Value) -> Option<Value> {
    let of = |kind: &str| {
        profile
            .get("identifiers")?
            .as_array()?
            .iter()
            .find(|i| i.get("type").and_then(Value::as_str) == Some(kind))?
            .get("value")?
            .as_str()
            .map(str::to_owned)
    };
    let (user_id, anonymous_id) = (of("userId"), of("anonymousId"));
    if user_id.is_none() && anonymous_id.is_none() {
        return None;
    }
    let entered = change.change == "entered";
    let mut traits = fields.get("traits").cloned().unwrap_or_else(|| json!({}));
    traits[&change.audience] = json!(entered);
    let base = json!({"userId": user_id, "anonymousId": anonymous_id, "timestamp": change.at,
        "context": {"library": {"name": "edge-cdp-activation", "version": "1"}}});
    let mut identify = base.clone();
    identify["type"] = json!("identify");
    identify["messageId"] = json!(format!("{id}_identify"));
    identify["traits"] = traits;
    let mut track = base;
    track["type"] = json!("track");
    track["messageId"] = json!(format!("{id}_track"));
    track["event"] = json!(if entered {
        "Audience Entered"
    } else {
        "Audience Exited"
    });
    track["properties"] = json!({"audience_key": change.audience, "audience_name": change.name,
        "group": change.group, "sequence": change.seq});
    Some(json!({"batch": [identify, track], "sentAt": cdp_protocol::time::format_rfc3339(now())}))
}

/// `POST /v1/destinations` and `PUT /v1/destinations/{key}`: checks and saves; a webhook
/// without a secret gets one, shown in this answer only.
pub async fn save(
    mut req: Request,
    env: &Env,
    config: &Config,
    path_key: Option<&str>,
) -> Result<Response> {
    let read_only = ["state", "createdAt", "updatedAt", "disabledReason"];
    let mut body = match http::definition_body(&mut req, path_key, &read_only).await? {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let mut generated = None;
    if body.get("type").and_then(Value::as_str) == Some("webhook")
        && body
            .pointer("/settings/secret")
            .and_then(Value::as_str)
            .is_none_or(|s| s.is_empty() || s.contains('…'))
    {
        let kept = match path_key {
            // A PUT that leaves the secret out (or sends the masked one back) keeps it.
            Some(key) => stored(env, key)
                .await?
                .and_then(|d| d.pointer("/settings/secret").cloned()),
            None => None,
        };
        let secret = match kept {
            Some(secret) => secret,
            None => {
                let bytes: Vec<u8> = [import_job::random_uuid()?, import_job::random_uuid()?]
                    .concat()
                    .replace('-', "")
                    .as_bytes()
                    .chunks(2)
                    .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                    .collect();
                let secret = json!(cdp_protocol::webhook::secret_from(&bytes));
                generated = Some(secret.clone());
                secret
            }
        };
        if let Some(settings) = body.get_mut("settings").and_then(Value::as_object_mut) {
            settings.insert("secret".into(), secret);
        }
    }
    let checked = match destination::parse(&body, config.development) {
        Ok(d) => d,
        Err(e) => return http::definition_refused("invalid_destination", &e),
    };
    let ask = Ask::PutDestination {
        key: checked.key.clone(),
        body: body.clone(),
        create: path_key.is_none(),
    };
    let (status, answer) = registry::call(env, &ask).await?;
    if status >= 300 {
        return http::json(status, &answer);
    }
    let mut shown = masked(body);
    if let Some(secret) = generated {
        // Shown once: every later answer masks it.
        shown["settings"]["secret"] = secret;
        shown["secretShownOnce"] = json!(true);
    }
    shown["state"] = json!("active");
    http::json(status, &shown)
}

/// A destination as stored (secret included), if any.
async fn stored(env: &Env, key: &str) -> Result<Option<Value>> {
    let (_, answer) = registry::call(env, &Ask::Destinations).await?;
    Ok(http::listed(&answer, "destinations", "key", key))
}

/// A destination as the API shows it: the secret masked.
fn masked(mut d: Value) -> Value {
    if let Some(secret) = d.pointer_mut("/settings/secret") {
        let text = secret.as_str().unwrap_or_default();
        *secret = json!(format!("{}…", &text[..text.len().min(10)]));
    }
    if let Some(key) = d.pointer_mut("/settings/writeKey") {
        let text = key.as_str().unwrap_or_default();
        *key = json!(format!("{}…", &text[..text.len().min(4)]));
    }
    d
}

/// `GET /v1/destinations` and `GET /v1/destinations/{key}`.
pub async fn get(env: &Env, only: Option<&str>) -> Result<Response> {
    let (_, answer) = registry::call(env, &Ask::Destinations).await?;
    let all: Vec<Value> = answer
        .get("destinations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| only.is_none() || d.get("key").and_then(Value::as_str) == only)
        .map(masked)
        .collect();
    match only {
        Some(key) => match all.into_iter().next() {
            Some(d) => http::json(200, &d),
            None => http::error(
                404,
                "destination_not_found",
                &format!("no destination {key:?}"),
            ),
        },
        None => http::json(200, &json!({"destinations": all})),
    }
}

/// `DELETE /v1/destinations/{key}`.
pub async fn delete(env: &Env, key: &str) -> Result<Response> {
    let (status, answer) = registry::call(
        env,
        &Ask::DeleteDestination {
            key: key.to_owned(),
        },
    )
    .await?;
    http::json(status, &answer)
}

/// `GET /v1/destinations/{key}/deliveries?limit=`: the delivery log, newest first.
pub async fn deliveries(req: Request, env: &Env, key: &str) -> Result<Response> {
    let limit = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .unwrap_or(100);
    if stored(env, key).await?.is_none() {
        return http::error(
            404,
            "destination_not_found",
            &format!("no destination {key:?}"),
        );
    }
    let (status, answer) = registry::call(
        env,
        &Ask::Deliveries {
            key: key.to_owned(),
            limit,
        },
    )
    .await?;
    http::json(status, &answer)
}

/// `POST /v1/destinations/{key}/replay`: its dead deliveries go through again.
pub async fn replay(env: &Env, key: &str) -> Result<Response> {
    if stored(env, key).await?.is_none() {
        return http::error(
            404,
            "destination_not_found",
            &format!("no destination {key:?}"),
        );
    }
    let (_, answer) = registry::call(
        env,
        &Ask::TakeDead {
            key: key.to_owned(),
        },
    )
    .await?;
    let dead: Vec<Delivery> = answer
        .get("dead")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_value(d.clone()).ok())
        .collect();
    let count = dead.len();
    let messages: Vec<_> = dead
        .into_iter()
        .filter_map(|d| {
            let again = Delivery {
                attempt: 1,
                first_at: now(),
                ..d
            };
            serde_json::to_string(&again).ok()
        })
        .collect();
    crate::queue::send_texts(env, DELIVERIES, messages).await?;
    http::json(200, &json!({"replayed": count}))
}

/// `POST /v1/destinations/{key}/test`: one signed sample, sent now; the receiver's answer.
pub async fn test(env: &Env, config: &Config, key: &str) -> Result<Response> {
    let Some(shown) = stored(env, key).await? else {
        return http::error(
            404,
            "destination_not_found",
            &format!("no destination {key:?}"),
        );
    };
    let target = match destination::parse(&shown, config.development) {
        Ok(d) => d,
        Err(e) => return http::error(409, "invalid_destination", &e.to_string()),
    };
    let change = Change {
        profile: "test".into(),
        seq: now(),
        audience: target
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| "sample".into()),
        name: "A sample audience".into(),
        group: target.groups.first().cloned(),
        change: "entered".into(),
        at: cdp_protocol::time::format_rfc3339(now()),
    };
    let id = format!("msg_test_{}", change.seq);
    let sample = json!({"id": "test", "identifiers": {}, "traits": {}});
    let started = now();
    let answer = match &target.kind {
        Kind::Webhook { url, secret } => {
            send_webhook(
                url,
                secret,
                &id,
                &webhook_payload(&change, sample).to_string(),
            )
            .await
        }
        Kind::Segment {
            endpoint,
            write_key,
        } => {
            let profile =
                json!({"identifiers": [{"type": "anonymousId", "value": "cdp-destination-test"}]});
            let batch = segment_batch(&change, &id, &profile, sample).unwrap_or_default();
            post_json(
                &[endpoint, "/v1/batch"].concat(),
                &batch.to_string(),
                &[("Authorization", &basic(write_key))],
            )
            .await
        }
    };
    let latency = now() - started;
    match answer {
        Ok((status, _)) => http::json(
            200,
            &json!({"webhookId": id, "status": status, "latencyMs": latency,
            "delivered": (200..300).contains(&status)}),
        ),
        Err(e) => http::json(
            200,
            &json!({"webhookId": id, "delivered": false, "error": e.to_string(), "latencyMs": latency}),
        ),
    }
}
