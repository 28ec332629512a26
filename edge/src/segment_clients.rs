//! What Segment's client libraries ask of a collector besides events: analytics.js posts its
//! own usage metrics to `/v1/m`, and every Segment client reads its settings from
//! `/v1/projects/{writeKey}/settings` on its CDN host. Answering both lets analytics.js and
//! the mobile libraries run against this collector with nothing but a host changed.

use worker::{Request, Response, Result};

use crate::config::Config;
use crate::http;

/// `POST /v1/m`: analytics.js's metrics about itself (counters with no person in them).
/// They are read and dropped; answering 200 keeps the library from retrying them.
pub fn metrics(req: &Request) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    http::allow_origin(
        http::json(200, &serde_json::json!({"success": true}))?,
        origin.as_deref(),
    )
}

/// `GET /v1/projects/{writeKey}/settings`: the settings a Segment client loads before it
/// sends anything, pointing it at this collector (`cdnURL` in analytics.js, `cdnHost` in the
/// mobile libraries). Only the Segment destination is named, so analytics.js loads no
/// other integration's code.
pub fn settings(req: &Request, config: &Config, write_key: &str) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let Some(source) = config.sources.by_key(write_key) else {
        let message = format!("no source has the write key {write_key:?}");
        return http::allow_origin(
            http::error(404, "unknown_write_key", &message)?,
            origin.as_deref(),
        );
    };
    if !source.allows_origin(origin.as_deref()) {
        let message = "this origin may not send events for this source";
        return http::allow_origin(
            http::error(403, "origin_not_allowed", message)?,
            origin.as_deref(),
        );
    }
    let url = req.url()?;
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let body = serde_json::json!({
        "integrations": {"Segment.io": {
            "apiKey": write_key,
            "apiHost": format!("{host}/v1"),
            "protocol": url.scheme(),
        }},
        "plan": {},
        "edgeFunction": {},
        "analyticsNextEnabled": true,
    });
    let response = http::json(200, &body)?;
    let headers = response.headers().clone();
    // Clients fetch settings on every page load; a few minutes of caching costs nothing.
    headers.set("Cache-Control", "public, max-age=300")?;
    http::allow_origin(response.with_headers(headers), origin.as_deref())
}
