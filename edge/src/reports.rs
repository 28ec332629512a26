//! `GET /v1/reports/*`: reports over a time range, answered from the directory
//! partitions' hourly rollups (and the counters' hourly series), one call per partition,
//! never one per profile. The numbers and their definitions are in `cdp_protocol::report`.

use cdp_protocol::api::ReportName;
use cdp_protocol::report::answer;
use cdp_protocol::report::funnel::{self, Funnel, MAX_STEPS};
use cdp_protocol::report::rollup::metric;
use cdp_protocol::report::{Range, RangeQuery};
use worker::{Date, Env, Request, Response, Result};

use crate::audiences::registry::{self, Ask};
use crate::stats::{self, Counter};
use crate::{config, directory, http};
use serde_json::json;

/// Lines a breakdown shows when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;
/// Most lines a breakdown shows.
const MAX_LIMIT: usize = 200;

/// A request's query parameters.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of `req`.
    pub(crate) fn of(req: &Request) -> Result<Self> {
        Ok(Self(req.url()?.query_pairs().into_owned().collect()))
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The range they give (`range`, or `from` and `to`; `grain`), as of now: `fallback`
    /// when they give none, and `grain` instead of theirs when set.
    pub(crate) fn range(
        &self,
        fallback: Option<&str>,
        grain: Option<&str>,
    ) -> std::result::Result<Range, String> {
        let query = RangeQuery {
            range: self
                .get("range")
                .or(fallback.filter(|_| self.get("from").is_none())),
            from: self.get("from"),
            to: self.get("to"),
            grain: grain.or(self.get("grain")),
        };
        Range::parse(&query, Date::now().as_millis() as i64)
    }
}

/// Answers report `name`.
pub async fn answer(req: Request, env: &Env, name: ReportName) -> Result<Response> {
    let params = Params::of(&req)?;
    let param = |name: &str| params.get(name);
    let range = match params.range(None, None) {
        Ok(range) => range,
        Err(message) => return http::error(400, "invalid_range", &message),
    };
    let limit = match param("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return http::bad_parameter(
                "invalid_limit",
                "limit",
                &format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )
        }
    };
    let rows =
        |metrics: &'static [&'static str]| directory::rollups(env, metrics, range.from, range.to);
    let settings = config::computed_settings(env);
    let body = match name {
        ReportName::Overview => {
            let rollups = rows(&[
                metric::EVENTS,
                metric::EVENTS_BY_SOURCE,
                metric::PROFILES,
                metric::VISITS,
            ])
            .await?;
            let pipeline = stats::hourly(env, range.from, range.to).await?;
            let totals = stats::read(env).await?;
            let get = |c: Counter| totals.get(c.name()).copied().unwrap_or(0);
            let held = get(Counter::DeadLettered) - get(Counter::DeadLettersReplayed);
            answer::overview(range, &rollups, &pipeline, held)
        }
        ReportName::Revenue => {
            let rollups =
                rows(&[metric::REVENUE, metric::ORDERS, metric::REVENUE_UNCONVERTED]).await?;
            answer::revenue(range, &rollups, &settings.money.base)
        }
        ReportName::Carts => {
            let rollups = rows(&[
                metric::CARTS_STARTED,
                metric::CARTS_ORDERED,
                metric::CARTS_ABANDONED,
            ])
            .await?;
            answer::carts(range, &rollups, settings.abandon_after / 60_000)
        }
        ReportName::Campaigns => {
            let rollups = rows(&[
                metric::VISITS,
                metric::VISITS_BY_CAMPAIGN,
                metric::VISITS_BY_REFERRER,
                metric::ORDERS_BY_CAMPAIGN,
                metric::REVENUE_BY_CAMPAIGN,
                metric::ORDERS_BY_REFERRER,
                metric::REVENUE_BY_REFERRER,
            ])
            .await?;
            answer::campaigns(range, &rollups, limit)
        }
        ReportName::Products => {
            let rollups = rows(&[
                metric::PRODUCT_VIEWS,
                metric::PRODUCT_ADDS,
                metric::PRODUCT_ORDERS,
                metric::CATEGORY_VIEWS,
                metric::CATEGORY_ORDERS,
            ])
            .await?;
            answer::products(range, &rollups, limit)
        }
        ReportName::Events => {
            let mut names = answer::event_names(range, &rows(&[metric::EVENTS_BY_NAME]).await?);
            let (_, schema) = registry::call(env, &Ask::EventSchema).await?;
            for line in names["events"].as_array_mut().into_iter().flatten() {
                let name = line["name"].as_str().unwrap_or_default().to_owned();
                line["properties"] = schema["events"]
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| json!([]));
            }
            names
        }
        ReportName::Funnel => {
            let funnel = match read_funnel(&params.0, range) {
                Ok(funnel) => funnel,
                Err(message) => return http::error(400, "invalid_funnel", &message),
            };
            let reached = directory::funnel(env, &funnel).await?;
            answer::funnel(range, &funnel, &reached)
        }
    };
    http::json(200, &body)
}

/// A funnel's steps (`step=` repeated, in order; the e-commerce path by default) and
/// conversion `window` (a length such as `30m`, `24h` or `7d`; 7 days by default).
fn read_funnel(pairs: &[(String, String)], range: Range) -> std::result::Result<Funnel, String> {
    let mut steps: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "step")
        .map(|(_, v)| v.trim().to_owned())
        .collect();
    if steps.is_empty() {
        steps = funnel::DEFAULT_STEPS.map(String::from).to_vec();
    }
    if steps.iter().any(String::is_empty) {
        return Err("a step must name an event, e.g. step=Product%20Viewed".into());
    }
    if steps.len() > MAX_STEPS {
        return Err(format!("a funnel has at most {MAX_STEPS} steps"));
    }
    let window = match pairs.iter().find(|(k, _)| k == "window") {
        None => funnel::DEFAULT_WINDOW,
        Some((_, text)) => {
            cdp_protocol::audience::definition::parse_duration(text).ok_or_else(|| {
                format!("window must be a length such as 30m, 24h or 7d, not {text:?}")
            })?
        }
    };
    Ok(Funnel {
        steps,
        window,
        from: range.from,
        to: range.to,
    })
}
