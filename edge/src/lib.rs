//! The Cloudflare Worker: the collector, the admin API and the profile store, in one script.
//!
//! `fetch` only dispatches. Each route lives with its resource: [`collect`] takes
//! Segment-format events in, [`admin`] answers questions about profiles, and
//! [`profile_store`] is the Durable Object class that keeps each profile. The rules they
//! apply come from the pure `cdp-protocol` crate; this crate adapts Workers I/O to them.
//! Static pages (`www/`) are served by Workers static assets before this code runs.

mod admin;
mod archive;
mod collect;
mod compression;
mod config;
mod consumer;
mod dedup;
mod directory;
mod http;
mod identity_index;
mod import_job;
mod offline_import;
mod profile_store;
mod queue;
mod resolver;
mod schema;
mod segment_clients;
mod shard;
mod stats;

pub use dedup::DedupShard;
pub use directory::ProfileDirectory;
pub use identity_index::IdentityShard;
pub use profile_store::ProfileStore;
pub use stats::StatsShard;

use wasm_bindgen::JsValue;
use worker::{event, Context, Env, MessageBatch, Method, Request, Response, Result};

#[event(queue)]
async fn queue(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
    consumer::consume(batch, &env).await
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    match route(req, env, ctx).await {
        Ok(response) => Ok(response),
        // A storage or queue failure: say so in JSON, and that a retry may succeed.
        Err(e) => http::error(
            503,
            "unavailable",
            &format!("the platform could not answer: {e}; retry later"),
        ),
    }
}

async fn route(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let config = match config::Config::load(&env) {
        Ok(config) => config,
        Err(message) => return http::error(500, "misconfigured", &message),
    };
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Options, p) if p.starts_with("/v1/") => {
            let collector = is_client_path(p);
            http::preflight(&req, &config.sources, &config.dashboard_origins, collector)
        }
        (Method::Post, p) if collect::is_collector_path(p) => {
            collect::handle(req, &env, &config, &ctx).await
        }
        (Method::Post, segment_clients::METRICS_PATH) => segment_clients::metrics(&req),
        (Method::Get, p) if segment_clients::settings_key(p).is_some() => {
            let key = segment_clients::settings_key(p)
                .unwrap_or_default()
                .to_owned();
            segment_clients::settings(&req, &config, &key)
        }
        (Method::Get, "/v1/profiles/lookup") => admin::lookup(req, &env, &config).await,
        (Method::Get, "/v1/profiles") => admin::search(req, &env, &config).await,
        (Method::Get, "/v1/stats") => admin::stats(req, &env, &config).await,
        (Method::Get, p) if p.starts_with("/v1/import/") => {
            let job = p.trim_start_matches("/v1/import/").to_owned();
            admin::import_progress(req, &env, &config, &job).await
        }
        (Method::Get, "/v1/audit") => admin::audit_log(req, &env, &config).await,
        (Method::Delete, p) if p.starts_with("/v1/profiles/") => {
            let id = p.trim_start_matches("/v1/profiles/").to_owned();
            admin::erase(req, &env, &config, &id).await
        }
        (Method::Post, p) if p.starts_with("/v1/profiles/") && p.ends_with("/unmerge") => {
            let id = p
                .trim_start_matches("/v1/profiles/")
                .trim_end_matches("/unmerge")
                .to_owned();
            admin::unmerge(req, &env, &config, &id).await
        }
        (Method::Post, "/v1/admin/replay") => admin::replay(req, &env, &config).await,
        (Method::Post, "/v1/admin/faults") => admin::faults(req, &env, &config).await,
        (Method::Get, "/v1/admin/dead-letters") => admin::dead_letters(req, &env, &config).await,
        (Method::Post, "/v1/admin/dead-letters/replay") => {
            admin::replay_dead_letters(req, &env, &config).await
        }
        (Method::Get, p) if p.starts_with("/v1/profiles/") => {
            let rest = p.trim_start_matches("/v1/profiles/");
            match rest.split_once('/') {
                None => admin::profile(req, &env, &config, rest, "profile").await,
                Some((id, what @ ("explain" | "events"))) => {
                    admin::profile(req, &env, &config, id, what).await
                }
                Some((id, "export")) => admin::export(req, &env, &config, id).await,
                Some(_) => no_route(&Method::Get, p),
            }
        }
        (Method::Get, p) if p.starts_with("/spa/") => single_page_app(req, &env).await,
        (method, p) if p.starts_with("/v1/") => no_route(&method, p),
        _ => http::error(404, "not_found", "no such page"),
    }
}

/// No route takes this method on this path: `405` with `Allow` when the path is known,
/// else `404`.
fn no_route(method: &Method, path: &str) -> Result<Response> {
    let Some(allow) = allowed_methods(path) else {
        let message = format!("no API route {} {path}", method.as_ref());
        return http::error(404, "not_found", &message);
    };
    let message = format!("{path} takes {allow}, not {}", method.as_ref());
    let response = http::error(405, "method_not_allowed", &message)?;
    let headers = response.headers().clone();
    headers.set("Allow", allow)?;
    Ok(response.with_headers(headers))
}

/// Whether pages call `path` (the collector's paths and what Segment's clients ask), as
/// opposed to the admin API: their CORS follows the sources, not the dashboard's origins.
fn is_client_path(path: &str) -> bool {
    collect::is_collector_path(path)
        || path == segment_clients::METRICS_PATH
        || segment_clients::settings_key(path).is_some()
}

/// The methods an API path answers (for a `405` with `Allow`), or `None` when no route
/// has that path.
fn allowed_methods(path: &str) -> Option<&'static str> {
    if segment_clients::settings_key(path).is_some() {
        return Some("GET, OPTIONS");
    }
    if is_client_path(path) {
        return Some("POST, OPTIONS");
    }
    let profile = path.strip_prefix("/v1/profiles/");
    Some(match path {
        "/v1/profiles/lookup" | "/v1/profiles" | "/v1/stats" | "/v1/audit" => "GET, OPTIONS",
        "/v1/admin/replay" | "/v1/admin/faults" | "/v1/admin/dead-letters/replay" => {
            "POST, OPTIONS"
        }
        "/v1/admin/dead-letters" => "GET, OPTIONS",
        p if p.starts_with("/v1/import/") => "GET, OPTIONS",
        _ => match profile?.split_once('/') {
            None => "GET, DELETE, OPTIONS",
            Some((_, "unmerge")) => "POST, OPTIONS",
            Some((_, "explain" | "events" | "export")) => "GET, OPTIONS",
            Some(_) => return None,
        },
    })
}

/// The single-page-app demo: its files as they are, any other path under `/spa/` is a
/// client-side route and gets the app's page.
async fn single_page_app(req: Request, env: &Env) -> Result<Response> {
    let assets = env.assets(config::ASSETS)?;
    let path = req.path();
    let is_file = path
        .rsplit('/')
        .next()
        .is_some_and(|name| name.contains('.'));
    let target = if is_file { path } else { "/spa/".to_owned() };
    let mut url = req.url()?;
    url.set_path(&target);
    assets.fetch(url.to_string(), None).await
}
