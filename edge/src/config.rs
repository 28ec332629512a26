//! The Worker's configuration, read from its environment (wrangler.toml vars, `.dev.vars`
//! locally, Worker secrets in production), never from code.

use worker::Env;

/// Binding name of the static assets (`www/`), as in `wrangler.toml`.
pub const ASSETS: &str = "ASSETS";

/// Binding name of the profile store's Durable Object namespace, as in `wrangler.toml`.
pub const PROFILES: &str = "PROFILES";

/// What the Worker needs to know about its deployment.
pub struct Config {
    /// Write keys that may send events.
    pub write_keys: Vec<String>,
    /// Bearer token of the admin API.
    pub admin_token: String,
}

impl Config {
    /// Reads `WRITE_KEYS` (comma-separated) and `ADMIN_TOKEN`; an error names what is missing.
    pub fn from_env(env: &Env) -> Result<Self, String> {
        let read = |name: &str| {
            env.var(name)
                .map(|v| v.to_string())
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the Worker variable or secret {name} is not set"))
        };
        let write_keys = read("WRITE_KEYS")?
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Self {
            write_keys,
            admin_token: read("ADMIN_TOKEN")?,
        })
    }

    /// Whether `key` may send events.
    pub fn accepts_write_key(&self, key: &str) -> bool {
        self.write_keys.iter().any(|k| k == key)
    }
}
