//! Catalog data in: `PUT /v1/catalog/{kind}` files and [`feeds`] pulled on a schedule
//! become items in the [`store`], and the queue consumer gives each event the fields of
//! the items it names ([`Enricher`]), before identity resolution and the profile store,
//! so computed traits, audiences and reports all see them.
//!
//! A file is read in the Worker (the pure `cdp_protocol::catalog`: mapping, row errors by
//! line), and its items travel in chunks: a file of one chunk is stored as the request
//! runs, a larger one through the catalog queue, chunk by chunk, with its progress at
//! `GET /v1/catalog/uploads/{job}`. `users` items also become identify calls, queued like
//! any event.

pub mod feeds;
pub mod store;

use std::cell::RefCell;
use std::collections::HashMap;

use cdp_protocol::catalog::{self, cache::ItemCache, kind::Kind};
use cdp_protocol::decode::Envelope;
use cdp_protocol::event::Event;
use cdp_protocol::validate::check_batch;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wasm_bindgen::JsValue;
use worker::{Env, MessageBatch, MessageExt, Request, Response, Result, Url};

use crate::config::{Config, CATALOG_QUEUE_BINDING};
use crate::offline_import::Format;
use crate::stats::{self, Counter, Counts};
use crate::{collect, http, queue};
use store::{Ask, Upload};

/// The largest file an upload or a feed may be (after gzip): what one Worker invocation
/// reads and maps in memory.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Items per queue message, by their JSON size (a message must stay under 128 KB).
const CHUNK_BYTES: usize = 96 * 1024;

/// Row errors an upload's answer and log list (all are counted).
const ERRORS_SHOWN: usize = 100;

/// The write key the identify calls made from `users` items are queued under.
pub const CATALOG_SOURCE: &str = "catalog";

/// One chunk of an upload, as the catalog queue carries it.
#[derive(Serialize, Deserialize)]
struct Chunk {
    job: String,
    chunk: i64,
    kind: String,
    generation: i64,
    items: Vec<Map<String, Value>>,
}

/// A kind's settings as stored, parsed; unknown kinds are `None` (built-in ones always
/// exist).
async fn kind_of(env: &Env, name: &str) -> Result<Option<Kind>> {
    let ask = Ask::Kind {
        kind: name.to_owned(),
    };
    let (status, body) = store::call(env, &ask).await?;
    if status == 404 {
        return Ok(None);
    }
    Ok(Kind::parse(name, &body).ok())
}

fn unknown_kind(name: &str) -> Result<Response> {
    http::error(
        404,
        "unknown_kind",
        &format!("no catalog kind {name:?}: use products, content or users, or declare it with PUT /v1/catalog/kinds/{name}"),
    )
}

/// `PUT /v1/catalog/{kind}`: a CSV or NDJSON file of items; `?replace=true` removes the
/// items it does not have.
pub async fn upload(mut req: Request, env: &Env, config: &Config, kind: &str) -> Result<Response> {
    let content_type = req.headers().get("Content-Type")?.unwrap_or_default();
    let Some(format) = Format::of(&content_type) else {
        let message = format!("Content-Type {content_type:?} is not a catalog file; send text/csv (with a header row) or application/x-ndjson");
        return http::error(415, "unsupported_media_type", &message);
    };
    let replace = match query(&req.url()?, "replace").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return http::bad_parameter("invalid_replace", "replace", "true or false"),
    };
    let Some(kind) = kind_of(env, kind).await? else {
        return unknown_kind(kind);
    };
    let body =
        match collect::read_body(&mut req, config, MAX_FILE_BYTES, &mut Counts::new()).await? {
            Ok(body) => body,
            Err(refusal) => return Ok(refusal),
        };
    let Ok(text) = std::str::from_utf8(&body.bytes) else {
        return http::error(400, "invalid_utf8", "a catalog file must be UTF-8");
    };
    let run = Run {
        kind,
        feed: None,
        trigger: "upload",
        replace,
    };
    let (status, answer) = ingest(env, config, run, text, format == Format::Csv).await?;
    http::json(status, &answer)
}

/// What a file is read for.
pub struct Run<'a> {
    /// The kind (with the mapping to read rows by).
    pub kind: Kind,
    /// The feed pulled, if any.
    pub feed: Option<&'a str>,
    /// `upload`, `manual` or `schedule`.
    pub trigger: &'a str,
    /// Whether the items the file does not have go.
    pub replace: bool,
}

/// Reads a file into items and stores them (one chunk now, more through the queue); the
/// status and answer: counts, row errors by line, the job and where its progress is.
pub async fn ingest(
    env: &Env,
    config: &Config,
    run: Run<'_>,
    text: &str,
    csv: bool,
) -> Result<(u16, Value)> {
    let started_at = worker::Date::now().as_millis() as i64;
    let read = catalog::read(text, csv, &run.kind);
    let errors: Vec<Value> = read
        .errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(|e| json!({"line": e.line, "reason": e.reason}))
        .collect();
    let row_errors = read.errors.len();
    let items = read.items.len();
    if items == 0 {
        let answer = json!({"success": false, "error": {"reason": "no_valid_rows",
            "message": "no row of the file is an item; nothing was stored or removed"},
            "rowErrors": errors, "rowErrorCount": row_errors});
        let upload = Upload {
            row_errors: row_errors as i64,
            errors,
            error: Some("no row of the file is an item".into()),
            ..Upload::begin(&run.kind.name, run.feed, run.trigger, started_at)?
        };
        // A feed's run is logged even when nothing came of it.
        if run.feed.is_some() {
            store::call(env, &Ask::StartUpload(upload)).await?;
        }
        return Ok((400, answer));
    }
    // A file with refused rows does not remove anything: a refused row may be an item the
    // shop still sells, with one bad value.
    let replace = run.replace && row_errors == 0;
    let chunks = catalog::chunks(read.items, CHUNK_BYTES);
    let upload = Upload {
        replace,
        items: items as i64,
        chunks: chunks.len() as i64,
        row_errors: row_errors as i64,
        errors: errors.clone(),
        ..Upload::begin(&run.kind.name, run.feed, run.trigger, started_at)?
    };
    let job = upload.job.clone();
    let (_, started) = store::call(env, &Ask::StartUpload(upload)).await?;
    let generation = started
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let single = chunks.len() == 1;
    for (n, items) in chunks.into_iter().enumerate() {
        let chunk = Chunk {
            job: job.clone(),
            chunk: n as i64,
            kind: run.kind.name.clone(),
            generation,
            items,
        };
        if single {
            store_chunk(env, config, chunk).await?;
        } else {
            let text = serde_json::to_string(&chunk)?;
            crate::meter::queue_write(text.len());
            env.queue(CATALOG_QUEUE_BINDING)?.send(text).await?;
        }
    }
    let (_, progress) = store::call(env, &Ask::Progress { job: job.clone() }).await?;
    let progress_path = ["/v1/catalog/uploads/", &job].concat();
    let mut answer = json!({"success": row_errors == 0, "kind": run.kind.name, "imported": items,
        "rowErrors": errors, "rowErrorCount": row_errors, "job": job,
        "state": progress.get("state"), "progress": progress_path});
    if run.replace && !replace {
        answer["replace"] = json!({"applied": false,
            "why": "the file has refused rows, so no item was removed; fix them and upload again"});
    } else if replace {
        answer["replace"] = json!({"applied": true, "removed": progress.get("removed")});
    }
    Ok((if row_errors == 0 { 200 } else { 207 }, answer))
}

/// Stores one chunk; `users` items are also queued as identify calls first (a retry
/// queues them again, and the profile store keeps each call once).
async fn store_chunk(env: &Env, config: &Config, chunk: Chunk) -> Result<()> {
    if chunk.kind == "users" {
        let calls: Vec<Value> = chunk
            .items
            .iter()
            .filter_map(catalog::identify_of)
            .collect();
        let received_at = worker::Date::now().as_millis() as i64;
        let envelope = Envelope {
            write_key: None,
            sent_at: None,
            events: calls,
            client_dropped: 0,
            lossy: false,
        };
        let checked = check_batch(envelope, received_at, &config.limits);
        for refused in &checked.rejected {
            worker::console_error!("catalog user not identified: {}", refused.detail);
        }
        let events: Vec<Event> = checked.accepted;
        if !events.is_empty() {
            let origin = queue::Origin {
                source: CATALOG_SOURCE,
                received_at,
                body_bytes: usize::MAX,
                replay: false,
                job: None,
            };
            // Counted as accepted like any event, so the pipeline's `pending` stays true.
            let mut counts = Counts::new();
            stats::bump(&mut counts, Counter::Accepted, events.len() as i64);
            queue::enqueue(env, origin, events, counts).await?;
        }
    }
    let ask = Ask::PutChunk {
        job: chunk.job,
        chunk: chunk.chunk,
        kind: chunk.kind,
        generation: chunk.generation,
        items: chunk.items,
    };
    store::call(env, &ask).await?;
    Ok(())
}

/// The catalog queue's consumer: one chunk per message.
pub async fn consume(batch: MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let config = Config::load(env).map_err(worker::Error::RustError)?;
    for message in batch.raw_iter() {
        let text = message.body().as_string().unwrap_or_default();
        let Ok(chunk) = serde_json::from_str::<Chunk>(&text) else {
            worker::console_error!("unreadable catalog chunk {}", message.id());
            message.ack();
            continue;
        };
        match store_chunk(env, &config, chunk).await {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("catalog chunk not stored, will retry: {e}");
                message.retry();
            }
        }
    }
    Ok(())
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `GET /v1/catalog/{kind}/{id}`.
pub async fn item(env: &Env, kind: &str, id: &str) -> Result<Response> {
    let ask = Ask::Item {
        kind: kind.to_owned(),
        id: id.to_owned(),
    };
    let (status, answer) = store::call(env, &ask).await?;
    http::json(status, &answer)
}

/// `DELETE /v1/catalog/{kind}/{id}`.
pub async fn delete_item(env: &Env, kind: &str, id: &str) -> Result<Response> {
    let ask = Ask::DeleteItem {
        kind: kind.to_owned(),
        id: id.to_owned(),
    };
    let (status, answer) = store::call(env, &ask).await?;
    http::json(status, &answer)
}

/// `GET /v1/catalog/{kind}?cursor=&limit=`: items in id order, a page at a time.
pub async fn items(req: Request, env: &Env, kind: &str) -> Result<Response> {
    let url = req.url()?;
    let limit = match query(&url, "limit").map(|l| l.parse::<i64>()) {
        None => 100,
        Some(Ok(l)) if (1..=store::MAX_PAGE).contains(&l) => l,
        Some(_) => {
            let message = format!("limit is a number from 1 to {}", store::MAX_PAGE);
            return http::bad_parameter("invalid_limit", "limit", &message);
        }
    };
    if kind_of(env, kind).await?.is_none() {
        return unknown_kind(kind);
    }
    let ask = Ask::Page {
        kind: kind.to_owned(),
        after: query(&url, "cursor").unwrap_or_default(),
        limit,
    };
    let (status, mut answer) = store::call(env, &ask).await?;
    if let Some(next) = answer
        .get("next")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        let mut link = url.clone();
        link.query_pairs_mut()
            .clear()
            .append_pair("cursor", &next)
            .append_pair("limit", &limit.to_string());
        answer["nextPage"] = json!(format!("{}?{}", link.path(), link.query().unwrap_or("")));
    }
    http::json(status, &answer)
}

/// `GET /v1/catalog/kinds`.
pub async fn kinds(env: &Env) -> Result<Response> {
    let (status, answer) = store::call(env, &Ask::Kinds).await?;
    http::json(status, &answer)
}

/// `PUT /v1/catalog/kinds/{kind}`: declare a kind, or change one's mapping and item fields.
pub async fn put_kind(mut req: Request, env: &Env, kind: &str) -> Result<Response> {
    let Ok(body) = req.json::<Value>().await else {
        return http::error(400, "invalid_json", "send the kind's settings as a JSON object: {\"mapping\": {…}, \"itemFields\": [\"product_id\"]}");
    };
    if let Err(message) = Kind::parse(kind, &body) {
        return http::error(400, "invalid_kind", &message);
    }
    let mut stored = body.clone();
    if let Some(o) = stored.as_object_mut() {
        o.remove("kind");
    }
    let ask = Ask::PutKind {
        kind: kind.to_owned(),
        body: stored,
    };
    let (status, answer) = store::call(env, &ask).await?;
    http::json(status, &answer)
}

/// `GET /v1/catalog/uploads/{job}`.
pub async fn progress(env: &Env, job: &str) -> Result<Response> {
    let (status, answer) = store::call(
        env,
        &Ask::Progress {
            job: job.to_owned(),
        },
    )
    .await?;
    http::json(status, &answer)
}

thread_local! {
    /// The kinds' settings as this isolate last read them, with their version: which
    /// event fields name items, so a delivery knows what to look up before asking.
    static KINDS: RefCell<(i64, Vec<Kind>, i64)> = RefCell::new((
        -1,
        ["products", "content"].iter().filter_map(|k| Kind::built_in(k)).collect(),
        0,
    ));
    /// The items this isolate looked up lately, found or not.
    static ITEMS: RefCell<ItemCache> = RefCell::new(ItemCache::default());
}

/// How long an isolate trusts the kinds' settings it read without asking again (a change
/// of item fields reaches every isolate within this time).
const KINDS_FRESH_MS: i64 = 60_000;

/// The `(kind, id)` pairs `events` name under `kinds`, sorted, each once.
fn named_by(events: &[Event], kinds: &[Kind]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = events
        .iter()
        .flat_map(|e| catalog::named(&e.body, kinds))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

/// The items of a lookup's answer, by `(kind, id)`.
fn found_in(answer: &Value) -> HashMap<(String, String), Map<String, Value>> {
    answer
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|row| {
            let kind = row.get(0).and_then(Value::as_str)?;
            let id = row.get(1).and_then(Value::as_str)?;
            let fields = row.get(2).and_then(Value::as_object)?;
            Some(((kind.to_owned(), id.to_owned()), fields.clone()))
        })
        .collect()
}

/// Gives a delivery's events the fields of the catalog items they name, from what the
/// isolate remembers (`cdp_protocol::catalog::cache`) and, for the rest, one call to the
/// catalog store; none when every item named is remembered and the kinds are fresh.
pub struct Enricher;

impl Enricher {
    /// Enriches `events` in place; the number of events that gained a field.
    pub async fn apply(env: &Env, events: &mut [Event]) -> Result<usize> {
        let now = worker::Date::now().as_millis() as i64;
        let (version, mut kinds, read_at) = KINDS.with(|k| k.borrow().clone());
        let stale = version < 0 || now - read_at > KINDS_FRESH_MS;
        let pairs = named_by(events, &kinds);
        let ask = ITEMS.with(|c| c.borrow().missing(&pairs, now));
        if !ask.is_empty() || stale {
            let lookup = Ask::Lookup {
                pairs: ask.clone(),
                kinds_version: version,
            };
            let (_, answer) = store::call(env, &lookup).await?;
            let fresh = answer.get("kinds").and_then(Value::as_array);
            match fresh {
                None => {
                    KINDS.with(|k| k.borrow_mut().2 = now);
                    ITEMS.with(|c| c.borrow_mut().remember(&ask, found_in(&answer), now));
                }
                Some(fresh) => {
                    // The settings changed: what the events name may have too, and the
                    // items remembered may lack fields now declared.
                    kinds = fresh
                        .iter()
                        .filter_map(|k| {
                            let name = k.get(0).and_then(Value::as_str)?;
                            Kind::parse(name, k.get(1)?).ok()
                        })
                        .collect();
                    let new_version = answer
                        .get("kindsVersion")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    KINDS.with(|k| *k.borrow_mut() = (new_version, kinds.clone(), now));
                    let renamed = named_by(events, &kinds);
                    let answer = if renamed == ask || renamed.is_empty() {
                        answer
                    } else {
                        let lookup = Ask::Lookup {
                            pairs: renamed.clone(),
                            kinds_version: new_version,
                        };
                        store::call(env, &lookup).await?.1
                    };
                    ITEMS.with(|c| {
                        let mut cache = c.borrow_mut();
                        cache.clear();
                        cache.remember(&renamed, found_in(&answer), now);
                    });
                }
            }
        }
        ITEMS.with(|c| {
            let cache = c.borrow();
            let lookup = |kind: &str, id: &str| cache.get(kind, id).cloned();
            let mut enriched = 0;
            for event in events.iter_mut() {
                if catalog::enrich(&mut event.body, &kinds, lookup) {
                    enriched += 1;
                }
            }
            Ok(enriched)
        })
    }
}
