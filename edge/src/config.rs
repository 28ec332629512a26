//! The Worker's configuration, read from its environment (wrangler.toml vars, `.dev.vars`
//! locally, Worker secrets in production), never from code. Binding names are constants
//! that mirror `wrangler.toml` once.

use cdp_protocol::computed::{Money, Settings};
use cdp_protocol::decode::Limits;
use cdp_protocol::identity::Rules;
use cdp_protocol::retention::Retention;
use cdp_protocol::source::Sources;
use worker::Env;

/// The static assets (`www/`).
pub const ASSETS: &str = "ASSETS";
/// The profile store's Durable Object namespace.
pub const PROFILES: &str = "PROFILES";
/// The identity index's Durable Object namespace.
pub const IDENTITIES: &str = "IDENTITIES";
/// The profile directory's Durable Object namespace (listing and search).
pub const DIRECTORY: &str = "DIRECTORY";
/// The counters' Durable Object namespace.
pub const STATS: &str = "STATS";
/// The queue between the collector and the profile store; its further partitions are bound
/// as `EVENTS_1`, `EVENTS_2`, … (see `queue::partitions`).
pub const EVENTS: &str = "EVENTS";
/// The most event queue partitions the Worker looks for.
pub const MAX_EVENT_PARTITIONS: usize = 16;
/// Name of the dead-letter queue, as its consumer sees it.
pub const DEAD_LETTER_QUEUE: &str = "cdp-events-dlq";
/// The audience registry's Durable Object namespace.
pub const AUDIENCES: &str = "AUDIENCES";
/// The queue of audience backfill chunks.
pub const BACKFILL: &str = "BACKFILL";
/// Name of the backfill queue, as its consumer sees it.
pub const BACKFILL_QUEUE: &str = "cdp-audience-backfill";
/// The queue of membership changes (entries and exits), for activation.
pub const ACTIVATION: &str = "ACTIVATION";
/// Name of the activation queue, as its consumer sees it.
pub const ACTIVATION_QUEUE: &str = "cdp-activation";
/// The queue of deliveries: one membership change for one destination.
pub const DELIVERIES: &str = "DELIVERIES";
/// Name of the deliveries queue, as its consumer sees it.
pub const DELIVERIES_QUEUE: &str = "cdp-deliveries";
/// The queue of export pages.
pub const EXPORTS: &str = "EXPORTS";
/// Name of the exports queue, as its consumer sees it.
pub const EXPORTS_QUEUE: &str = "cdp-exports";
/// The catalog store's Durable Object namespace.
pub const CATALOG: &str = "CATALOG";
/// The queue of catalog upload chunks.
pub const CATALOG_QUEUE_BINDING: &str = "CATALOG_CHUNKS";
/// Name of the catalog queue, as its consumer sees it.
pub const CATALOG_QUEUE: &str = "cdp-catalog";
/// The R2 bucket of raw accepted batches.
pub const ARCHIVE: &str = "ARCHIVE";

/// What the Worker needs to know about its deployment.
pub struct Config {
    /// The sources that may send events, by write key.
    pub sources: Sources,
    /// The admin API's tokens (`ADMIN_TOKEN`, and `ADMIN_TOKENS` with names and roles).
    pub tokens: cdp_protocol::auth::Tokens,
    /// Body and event size limits.
    pub limits: Limits,
    /// The workspace's identity rules (`IDENTITY_RULES`, JSON; defaults when unset).
    pub rules: Rules,
    /// Origins whose pages may call the admin API from a browser (`DASHBOARD_ORIGINS`,
    /// comma-separated; none by default: the dashboard is served from the Worker's own
    /// origin, which needs no CORS).
    pub dashboard_origins: Vec<String>,
    /// Local development (`ENVIRONMENT=development`): honours the geography header and
    /// the fault-injection route, which production never does.
    pub development: bool,
}

thread_local! {
    /// The configuration, parsed once per isolate: variables and secrets do not change
    /// while an isolate lives (a deploy or a new secret starts new isolates).
    static LOADED: std::cell::RefCell<Option<std::rc::Rc<Config>>> = const { std::cell::RefCell::new(None) };
    static SETTINGS: std::cell::RefCell<Option<std::rc::Rc<Settings>>> = const { std::cell::RefCell::new(None) };
    static RETENTION: std::cell::Cell<Option<Retention>> = const { std::cell::Cell::new(None) };
}

impl Config {
    /// The configuration, read from `env` the first time and kept for the isolate's life;
    /// an invalid one is read again each time (and refused each time, naming what is wrong).
    pub fn load(env: &Env) -> Result<std::rc::Rc<Self>, String> {
        if let Some(config) = LOADED.with(|c| c.borrow().clone()) {
            return Ok(config);
        }
        let config = std::rc::Rc::new(Self::from_env(env)?);
        LOADED.with(|c| *c.borrow_mut() = Some(config.clone()));
        Ok(config)
    }

    /// Reads `SOURCES` and/or `WRITE_KEYS`, `ADMIN_TOKEN`, `MAX_EVENT_BYTES`,
    /// `MAX_BATCH_BYTES`, `IDENTITY_RULES` and `ENVIRONMENT`; an error names what is wrong.
    pub fn from_env(env: &Env) -> Result<Self, String> {
        let read = |name: &str| {
            env.var(name)
                .map(|v| v.to_string())
                .ok()
                .filter(|v| !v.trim().is_empty())
        };
        let sources = Sources::parse(read("SOURCES").as_deref(), read("WRITE_KEYS").as_deref())
            .map_err(|e| e.to_string())?;
        let tokens = cdp_protocol::auth::Tokens::parse(
            read("ADMIN_TOKEN").as_deref(),
            read("ADMIN_TOKENS").as_deref(),
        )?;
        let defaults = Limits::default();
        let size = |name: &str, default: usize| -> Result<usize, String> {
            read(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("{name} must be a number of bytes, not {v:?}"))
            })
        };
        let mut rules =
            read("IDENTITY_RULES").map_or_else(|| Ok(Rules::default()), |r| Rules::parse(&r))?;
        rules
            .declare(&sources.identifier_kinds())
            .map_err(|e| format!("SOURCES: {e}"))?;
        money(&read)?;
        retention_of(&read)?;
        Ok(Self {
            sources,
            tokens,
            limits: Limits {
                max_event_bytes: size("MAX_EVENT_BYTES", defaults.max_event_bytes)?,
                max_batch_bytes: size("MAX_BATCH_BYTES", defaults.max_batch_bytes)?,
            },
            rules,
            dashboard_origins: read("DASHBOARD_ORIGINS")
                .unwrap_or_default()
                .split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            development: read("ENVIRONMENT").as_deref() == Some("development"),
        })
    }
}

/// How the profile store reads a profile's numbers: `CART_ABANDON_MINUTES` (default 60),
/// `CURRENCY` (default USD) and `CURRENCY_RATES`. An invalid money setting is refused by
/// [`Config::from_env`] at the front door, so the store falls back to the defaults.
pub fn computed_settings(env: &Env) -> std::rc::Rc<Settings> {
    if let Some(settings) = SETTINGS.with(|s| s.borrow().clone()) {
        return settings;
    }
    let settings = std::rc::Rc::new(read_settings(env));
    SETTINGS.with(|s| *s.borrow_mut() = Some(settings.clone()));
    settings
}

fn read_settings(env: &Env) -> Settings {
    let read = |name: &str| env.var(name).ok().map(|v| v.to_string());
    let abandon_after = read("CART_ABANDON_MINUTES")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|m| *m > 0)
        .map_or(cdp_protocol::computed::DEFAULT_ABANDON_AFTER_MS, |m| {
            m * 60_000
        });
    let money = money(&read).unwrap_or_default();
    Settings {
        abandon_after,
        money,
    }
}

fn money(read: &dyn Fn(&str) -> Option<String>) -> Result<Money, String> {
    let set = |name: &str| read(name).filter(|v| !v.trim().is_empty());
    Money::parse(set("CURRENCY").as_deref(), set("CURRENCY_RATES").as_deref())
}

fn retention_of(read: &dyn Fn(&str) -> Option<String>) -> Result<Retention, String> {
    Retention::parse(
        read("RETAIN_EVENTS").as_deref(),
        read("RETAIN_ANONYMOUS").as_deref(),
    )
}

/// The workspace's retention: `RETAIN_EVENTS` (default 395d) and `RETAIN_ANONYMOUS`
/// (default 90d). An invalid setting is refused by [`Config::from_env`] at the front door,
/// so the store falls back to the defaults.
pub fn retention(env: &Env) -> Retention {
    if let Some(held) = RETENTION.with(std::cell::Cell::get) {
        return held;
    }
    let read = |name: &str| {
        env.var(name)
            .ok()
            .map(|v| v.to_string())
            .filter(|v| !v.trim().is_empty())
    };
    let retention = retention_of(&read).unwrap_or_default();
    RETENTION.with(|r| r.set(Some(retention)));
    retention
}
