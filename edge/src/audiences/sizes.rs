//! Audience sizes over time: each hour, the first run of the Cron Trigger records every
//! audience's size (and the number of profiles, under `""`) in the registry, from the
//! directory's counts. `GET /v1/audiences/{key}/sizes` reads them back.

use std::collections::BTreeMap;

use cdp_protocol::report::rollup::hour_of;
use cdp_protocol::time::format_rfc3339;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response, Result};

use crate::meter::Sql;

use super::registry::{self, Ask};
use crate::{directory, http};

/// The registry's table.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sizes (key TEXT NOT NULL, hour INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (key, hour)) WITHOUT ROWID;";

/// Whether this hour's sizes are still to record (claimed once per hour: the registry's
/// `sizes_hour`).
pub fn claim(sql: &Sql, at: i64) -> Result<bool> {
    #[derive(Deserialize)]
    struct Value {
        value: i64,
    }
    let hour = hour_of(at);
    let last = sql
        .exec("SELECT value FROM meta WHERE key = 'sizes_hour'", None)?
        .to_array::<Value>()?
        .first()
        .map_or(i64::MIN, |v| v.value);
    if last >= hour {
        return Ok(false);
    }
    sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('sizes_hour', ?)",
        vec![hour.into()],
    )?;
    Ok(true)
}

/// Records this hour's sizes (called by the Cron Trigger once [`claim`] said so).
pub async fn snapshot(env: &Env, at: i64) -> Result<()> {
    let sizes = directory::counts(env).await?;
    registry::call(
        env,
        &Ask::RecordSizes {
            hour: hour_of(at),
            sizes,
        },
    )
    .await?;
    Ok(())
}

/// `RecordSizes`, in the registry.
pub fn record(sql: &Sql, hour: i64, sizes: BTreeMap<String, i64>) -> Result<Response> {
    for (key, size) in sizes {
        sql.exec(
            "INSERT OR REPLACE INTO sizes (key, hour, size) VALUES (?, ?, ?)",
            vec![key.into(), hour.into(), size.into()],
        )?;
    }
    http::json(200, &json!({"ok": true}))
}

/// `Sizes`, in the registry: `key`'s recorded sizes in `[from, to)`, oldest first.
pub fn read(sql: &Sql, key: &str, from: i64, to: i64) -> Result<Response> {
    #[derive(Deserialize)]
    struct Point {
        hour: i64,
        size: i64,
    }
    let points: Vec<serde_json::Value> = sql
        .exec(
            "SELECT hour, size FROM sizes WHERE key = ? AND hour >= ? AND hour < ? ORDER BY hour",
            vec![key.into(), from.into(), to.into()],
        )?
        .to_array::<Point>()?
        .into_iter()
        .map(|p| json!({"at": format_rfc3339(p.hour), "size": p.size}))
        .collect();
    http::json(200, &json!({"points": points}))
}

/// `GET /v1/audiences/{key}/sizes?range=30d` (or `from`/`to`): the hourly recorded sizes
/// and the size now.
pub async fn history(req: Request, env: &Env, key: &str) -> Result<Response> {
    let range = match crate::reports::Params::of(&req)?.range(Some("30d"), Some("day")) {
        Ok(range) => range,
        Err(message) => return http::error(400, "invalid_range", &message),
    };
    let Some(audience) = super::find(env, key).await? else {
        return http::error(404, "audience_not_found", &format!("no audience {key:?}"));
    };
    let (_, recorded) = registry::call(
        env,
        &Ask::Sizes {
            key: key.to_owned(),
            from: range.from,
            to: range.to,
        },
    )
    .await?;
    let size = directory::counts(env).await?.get(key).copied().unwrap_or(0);
    http::json(
        200,
        &json!({
            "audience": key,
            "name": audience.get("name"),
            "from": format_rfc3339(range.from),
            "to": format_rfc3339(range.to),
            "points": recorded.get("points"),
            "size": size,
        }),
    )
}
