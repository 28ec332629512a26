//! The Cloudflare Worker: the collector, the admin API and the profile store, in one script.
//!
//! `fetch` only dispatches. Each route lives with its resource: [`collect`] takes
//! Segment-format events in, [`admin`] answers questions about profiles, and
//! [`profile_store`] is the Durable Object class that keeps each profile. The rules they
//! apply come from the pure `cdp-protocol` crate; this crate adapts Workers I/O to them.
//! Static pages (`www/`) are served by Workers static assets before this code runs.

mod activation;
mod admin;
mod archive;
mod audiences;
mod catalog;
mod collect;
mod compression;
mod config;
mod consumer;
mod directory;
mod event_schema;
mod exports;
mod http;
mod identity_index;
mod import_job;
mod meter;
mod offline_import;
mod profile_store;
mod queue;
mod reports;
mod resolver;
mod schema;
mod segment_clients;
mod shard;
mod stats;

pub use audiences::registry::AudienceRegistry;
pub use catalog::store::CatalogStore;
pub use directory::ProfileDirectory;
pub use identity_index::IdentityShard;
pub use profile_store::ProfileStore;
pub use stats::StatsShard;

use cdp_protocol::api::{self, Auth, Resolution, Route};
use wasm_bindgen::JsValue;
use worker::{
    event, Context, Env, MessageBatch, Method, Request, Response, Result, ScheduleContext,
    ScheduledEvent,
};

/// The queue handler, written out rather than through `#[event(queue)]`: that macro hands
/// over a batch whose messages do not tell how often they were delivered, and the counters
/// need to know which messages arrive for the first time (see [`stats::add_once`]).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = queue)]
pub fn queue_entry(
    batch: worker::worker_sys::MessageBatch,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> js_sys::Promise {
    let deliveries = queue::Deliveries::of(&batch);
    wasm_bindgen_futures::future_to_promise(async move {
        match queue(MessageBatch::from(batch), env, deliveries).await {
            Ok(()) => Ok(JsValue::UNDEFINED),
            // A rejected promise makes the queue retry the messages not acknowledged.
            Err(e) => {
                worker::console_error!("{e}");
                Err(JsValue::from_str(&e.to_string()))
            }
        }
    })
}

async fn queue(
    batch: MessageBatch<JsValue>,
    env: Env,
    deliveries: queue::Deliveries,
) -> Result<()> {
    meter::enabled(&env);
    // Each message is read once per delivery and deleted once acknowledged; a retried one
    // is read again (counted by its next delivery), so deletes are counted as reads here.
    let messages = batch.raw_iter().count() as i64;
    meter::add(meter::Cost::WorkerRequest, 1);
    meter::add(meter::Cost::QueueRead, messages);
    meter::add(meter::Cost::QueueDelete, messages);
    match batch.queue().as_str() {
        config::BACKFILL_QUEUE => audiences::backfill(batch, &env).await,
        config::ACTIVATION_QUEUE => activation::fan_out(batch, &env).await,
        config::DELIVERIES_QUEUE => activation::deliver(batch, &env).await,
        config::EXPORTS_QUEUE => exports::consume(batch, &env).await,
        config::CATALOG_QUEUE => catalog::consume(batch, &env).await,
        _ => consumer::consume(batch, &env, &deliveries).await,
    }
}

/// The Cron Trigger (every minute): the scheduled exports and catalog feeds that are due.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    meter::enabled(&env);
    meter::add(meter::Cost::WorkerRequest, 1);
    let at = event.schedule() as i64;
    if let Err(e) = exports::scheduled(&env, at).await {
        worker::console_error!("scheduled exports: {e}");
    }
    if let Err(e) = catalog::feeds::scheduled(&env, at).await {
        worker::console_error!("catalog feeds: {e}");
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    meter::enabled(&env);
    meter::add(meter::Cost::WorkerRequest, 1);
    match route(req, env, ctx).await {
        Ok(response) => Ok(response),
        Err(e) => http::failure(&e),
    }
}

async fn route(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let config = match config::Config::load(&env) {
        Ok(config) => config,
        Err(message) => return http::error(500, "misconfigured", &message),
    };
    let path = req.path();
    if !path.starts_with("/v1/") {
        if req.method() == Method::Get && path.starts_with("/spa/") {
            return single_page_app(req, &env).await;
        }
        return http::error(404, "not_found", "no such page");
    }
    let (route, auth) = match api::resolve(req.method().as_ref(), &path) {
        Resolution::Found(route, auth) => (route, auth),
        Resolution::Preflight { for_pages } => {
            return http::preflight(&req, &config.sources, &config.dashboard_origins, for_pages)
        }
        Resolution::WrongMethod { allow } => return wrong_method(&req, &path, &allow),
        Resolution::NotFound => {
            let message = format!("no API route {} {path}", req.method().as_ref());
            return http::error(404, "not_found", &message);
        }
    };
    // Declared by the route table, checked once here.
    let actor = match (auth, admin::caller(&req, &config)) {
        (Auth::Admin | Auth::Read, None) => return admin::unauthorized(),
        (Auth::Admin, Some(token)) if token.role != cdp_protocol::auth::Role::Admin => {
            return admin::forbidden(&token.name)
        }
        (_, token) => token.map_or_else(String::new, |t| t.name.clone()),
    };
    let (env, config) = (&env, &config);
    match route {
        Route::Collect => collect::handle(req, env, config, &ctx).await,
        Route::SegmentMetrics => segment_clients::metrics(&req),
        Route::SegmentSettings { write_key } => segment_clients::settings(&req, config, &write_key),
        Route::ProfileLookup => admin::lookup(req, env, config).await,
        Route::ProfileSearch => admin::search(req, env).await,
        Route::Profile { id, view } => admin::profile(req, env, &id, view, &actor).await,
        Route::ProfileErase { id } => admin::erase(env, config, &id, &actor).await,
        Route::ProfileUnmerge { id } => admin::unmerge(req, env, config, &id, &actor).await,
        Route::Stats => admin::stats(env).await,
        Route::Report { name } => reports::answer(req, env, name).await,
        Route::ImportProgress { job } => admin::import_progress(req, env, config, &job).await,
        Route::Audit => admin::audit_log(env).await,
        Route::Replay => admin::replay(req, env).await,
        Route::Faults => admin::faults(req, env, config).await,
        Route::DeadLetters => admin::dead_letters(env).await,
        Route::DeadLetterReplay => admin::replay_dead_letters(req, env).await,
        Route::Audiences => audiences::list(env).await,
        Route::AudienceCreate => audiences::save(req, env, None).await,
        Route::AudiencePreview => audiences::preview(req, env).await,
        Route::Audience { key } => audiences::get(env, &key).await,
        Route::AudienceUpdate { key } => audiences::save(req, env, Some(&key)).await,
        Route::AudienceDelete { key } => audiences::delete(env, &key).await,
        Route::AudienceMembers { key } => audiences::members(req, env, &key).await,
        Route::AudienceSizes { key } => audiences::sizes::history(req, env, &key).await,
        Route::SegmentGroups => audiences::groups(env, None).await,
        Route::SegmentGroupCreate => audiences::create_group(req, env).await,
        Route::SegmentGroup { key } => audiences::groups(env, Some(&key)).await,
        Route::Personalize => audiences::personalize(req, env, config).await,
        Route::Destinations => activation::get(env, None).await,
        Route::DestinationCreate => activation::save(req, env, config, None).await,
        Route::Destination { key } => activation::get(env, Some(&key)).await,
        Route::DestinationUpdate { key } => activation::save(req, env, config, Some(&key)).await,
        Route::DestinationDelete { key } => activation::delete(env, &key).await,
        Route::DestinationDeliveries { key } => activation::deliveries(req, env, &key).await,
        Route::DestinationTest { key } => activation::test(env, config, &key).await,
        Route::DestinationReplay { key } => activation::replay(env, &key).await,
        Route::Exports => exports::get(env, None).await,
        Route::ExportCreate => exports::save(req, env, None).await,
        Route::Export { key } => exports::get(env, Some(&key)).await,
        Route::ExportUpdate { key } => exports::save(req, env, Some(&key)).await,
        Route::ExportDelete { key } => exports::delete(env, &key).await,
        Route::ExportRun { key } => exports::run_now(env, &key).await,
        Route::ExportRuns { key } => exports::runs(env, &key).await,
        Route::ExportFile { key, run } => exports::download(env, &key, &run).await,
        Route::CatalogKinds => catalog::kinds(env).await,
        Route::CatalogKindPut { kind } => catalog::put_kind(req, env, &kind).await,
        Route::CatalogFeeds => catalog::feeds::get(env, None).await,
        Route::CatalogFeedCreate => catalog::feeds::save(req, env, config, None).await,
        Route::CatalogFeed { key } => catalog::feeds::get(env, Some(&key)).await,
        Route::CatalogFeedUpdate { key } => {
            catalog::feeds::save(req, env, config, Some(&key)).await
        }
        Route::CatalogFeedDelete { key } => catalog::feeds::delete(env, &key).await,
        Route::CatalogFeedRun { key } => catalog::feeds::run_now(env, config, &key).await,
        Route::CatalogFeedRuns { key } => catalog::feeds::runs(env, &key).await,
        Route::CatalogUpload { job } => catalog::progress(env, &job).await,
        Route::CatalogPut { kind } => catalog::upload(req, env, config, &kind).await,
        Route::CatalogItems { kind } => catalog::items(req, env, &kind).await,
        Route::CatalogItem { kind, id } => catalog::item(env, &kind, &id).await,
        Route::CatalogItemDelete { kind, id } => catalog::delete_item(env, &kind, &id).await,
    }
}

/// `405` with `Allow`: the path exists, but not with this method.
fn wrong_method(req: &Request, path: &str, allow: &str) -> Result<Response> {
    let message = format!("{path} takes {allow}, not {}", req.method().as_ref());
    let response = http::error(405, "method_not_allowed", &message)?;
    let headers = response.headers().clone();
    headers.set("Allow", allow)?;
    Ok(response.with_headers(headers))
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
