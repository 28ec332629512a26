//! The enrich stage: what the server adds to a validated event before it is stored.
//!
//! Each enrichment is a pure function over plain data in its own module ([`clock`],
//! [`ip`], [`user_agent`], [`campaign`], [`referrer`], [`geo`]); [`enrich`] reads what
//! it needs from the event and the request ([`EnrichInput`]), applies them under an
//! [`EnrichPolicy`], and writes the results into the event's payload. It decides
//! nothing about keeping the event: it returns an [`Enrichment`] whose flags the
//! caller counts, and whose bot mark the caller drops or keeps as the policy says.
//!
//! What the client sent wins where it is the client's to say (`context.campaign`,
//! `context.device`, `context.os`, `context.location` keys it filled in); what the
//! server must decide (the stored time, the IP under the privacy policy, the referrer
//! kind, the bot mark) is the server's.
//!
//! ```
//! use cdp_protocol::enrich::{enrich, EnrichInput, EnrichPolicy};
//! # use cdp_protocol::event::{Event, EventType};
//! # let mut event = Event { kind: EventType::Page, message_id: "m".into(),
//! #     anonymous_id: Some("a".into()), user_id: None, name: None,
//! #     timestamp: 1_000, received_at: 1_000, body: Default::default() };
//! let input = EnrichInput {
//!     received_at: 1_000,
//!     ip: Some("203.0.113.9".into()),
//!     user_agent: Some("curl/8.4.0".into()),
//!     ..EnrichInput::default()
//! };
//! let outcome = enrich(&mut event, &input, &EnrichPolicy::default());
//! assert_eq!(outcome.bot_name, Some("curl"));
//! assert_eq!(event.body["context"]["ip"], "203.0.113.0");
//! ```

pub mod campaign;
pub mod clock;
pub mod geo;
pub mod ip;
pub mod referrer;
mod url;
pub mod user_agent;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::Event;
use crate::time::{format_rfc3339, parse_rfc3339, Millis};
use campaign::{Campaign, CLICK_IDS};
use clock::{Clamp, ClockPolicy};
use geo::Location;
use ip::IpPolicy;
use referrer::ReferrerKind;

/// What the request tells about every event of a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnrichInput {
    /// When the collector received the request: the same instant validation was given.
    pub received_at: Millis,
    /// The batch's `sentAt`, used for events that carry none of their own.
    pub sent_at: Option<Millis>,
    /// The client's IP address as the edge saw it (`CF-Connecting-IP`).
    pub ip: Option<String>,
    /// The request's `User-Agent` header.
    pub user_agent: Option<String>,
    /// Where the request came from (`request.cf`, or the development header).
    pub location: Option<Location>,
}

/// What to do with events from bots; [`enrich`] only marks them, the caller acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BotAction {
    /// Store them, marked with `context.bot`, so reports can leave them out.
    // Flagging is the default because HTTP libraries count as bots, and server-side
    // senders without their own User-Agent would otherwise lose every event.
    #[default]
    Flag,
    /// Do not store them.
    Drop,
}

/// How enrichment behaves, as a site configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EnrichPolicy {
    /// What of the IP address to store.
    pub ip: IpPolicy,
    /// Bounds on event times.
    pub clock: ClockPolicy,
    /// What the caller does with bot events.
    pub bots: BotAction,
}

/// What enrichment found, for the caller to count and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrichment {
    /// The User-Agent is a crawler, an HTTP library or an automated browser.
    pub is_bot: bool,
    /// The bot's name, when known.
    pub bot_name: Option<&'static str>,
    /// Set when the event's time was out of bounds and replaced by `receivedAt`.
    pub clamped: Option<Clamp>,
    /// `receivedAt − sentAt`, when a `sentAt` was known.
    pub skew_ms: Option<Millis>,
    /// Where the visit came from.
    pub referrer: ReferrerKind,
}

impl Enrichment {
    /// Whether the caller should drop the event under `policy`.
    pub fn drop_as_bot(&self, policy: &EnrichPolicy) -> bool {
        self.is_bot && policy.bots == BotAction::Drop
    }
}

/// Enriches a validated event in place and reports what it found.
///
/// Writes `timestamp` (corrected), `originalTimestamp` (the client's, when it sent
/// one), `skewMs`, and under `context`: `ip`, `location`, `browser`, `os`,
/// `device.type`, `bot`, `campaign`, `referrerType` and `referrerHost`.
pub fn enrich(event: &mut Event, input: &EnrichInput, policy: &EnrichPolicy) -> Enrichment {
    let (client_time, time) = event_time(event, input, &policy.clock);
    let landing = Landing::read(&event.body);
    // The client's own context values describe the end user when a server library
    // relays the event, so they are preferred over the relaying request's headers.
    let agent = text(&event.body, &["context", "userAgent"])
        .or(input.user_agent.as_deref())
        .filter(|ua| !ua.trim().is_empty())
        .map(parse_user_agent);
    let ip = text(&event.body, &["context", "ip"])
        .or(input.ip.as_deref())
        .and_then(|raw| ip::apply(policy.ip, raw));

    let mut context = match event.body.remove("context") {
        Some(Value::Object(context)) => context,
        // Validation allows only an object, null or nothing here.
        _ => Map::new(),
    };
    match ip {
        Some(ip) => context.insert("ip".into(), Value::String(ip)),
        // Dropped, or not an address at all: either way nothing of it is stored.
        None => context.remove("ip"),
    };
    if let Some(location) = input.location.as_ref().filter(|l| !l.is_empty()) {
        fill(&mut context, "location", location.to_json());
    }
    if let Some(agent) = &agent {
        describe_agent(&mut context, agent);
    }
    let referrer = landing.write(&mut context);
    event.body.insert("context".into(), Value::Object(context));

    event.timestamp = time.timestamp;
    let stamp = |ms| Value::String(format_rfc3339(ms));
    event.body.insert("timestamp".into(), stamp(time.timestamp));
    if let Some(original) = client_time {
        event
            .body
            .insert("originalTimestamp".into(), stamp(original));
    }
    if let Some(skew) = time.skew_ms {
        event
            .body
            .insert("skewMs".into(), Value::Number(skew.into()));
    }

    Enrichment {
        is_bot: agent.as_ref().is_some_and(|a| a.is_bot),
        bot_name: agent.as_ref().and_then(|a| a.bot_name),
        clamped: time.clamped,
        skew_ms: time.skew_ms,
        referrer,
    }
}

/// The client's own time for an event, if it sent one, and the corrected time.
fn event_time(
    event: &Event,
    input: &EnrichInput,
    policy: &ClockPolicy,
) -> (Option<Millis>, clock::Corrected) {
    // Validation fills a missing timestamp with receivedAt, so that value means "none";
    // RudderStack clients send their client time as `originalTimestamp` instead.
    let client_time = if event.timestamp != event.received_at {
        Some(event.timestamp)
    } else {
        text(&event.body, &["originalTimestamp"]).and_then(parse_rfc3339)
    };
    let sent_at = text(&event.body, &["sentAt"])
        .and_then(parse_rfc3339)
        .or(input.sent_at);
    let time = clock::correct(client_time, sent_at, input.received_at, policy);
    (client_time, time)
}

thread_local! {
    /// The last User-Agent parsed: the events of a batch nearly always share one, and
    /// parsing it once per batch instead of once per event is most of enrichment's cost.
    static LAST_AGENT: std::cell::RefCell<Option<(String, user_agent::UserAgent)>> =
        const { std::cell::RefCell::new(None) };
}

fn parse_user_agent(raw: &str) -> user_agent::UserAgent {
    LAST_AGENT.with(|last| {
        let mut last = last.borrow_mut();
        match last.as_ref() {
            Some((seen, parsed)) if seen == raw => parsed.clone(),
            _ => {
                let parsed = user_agent::parse(raw);
                *last = Some((raw.to_owned(), parsed.clone()));
                parsed
            }
        }
    })
}

/// What the page an event was made on says about how the visitor arrived.
struct Landing {
    /// The campaign in the page URL.
    campaign: Campaign,
    /// Whether the client sent its own `context.campaign`.
    client_campaign: bool,
    /// The referrer, classified.
    source: referrer::Referrer,
}

impl Landing {
    fn read(body: &Map<String, Value>) -> Self {
        let page_url =
            text(body, &["context", "page", "url"]).or_else(|| text(body, &["properties", "url"]));
        let mut campaign = page_url.map(Campaign::from_url).unwrap_or_default();
        if !campaign.has_utm() && campaign.click_ids.is_empty() {
            if let Some(search) = text(body, &["context", "page", "search"]) {
                campaign = Campaign::from_url(search);
            }
        }
        let client_campaign = body
            .get("context")
            .and_then(|c| c.get("campaign"))
            .and_then(Value::as_object);
        let medium = text(body, &["context", "campaign", "medium"]).or(campaign.medium.as_deref());
        let click_id = !campaign.click_ids.is_empty()
            || client_campaign.is_some_and(|c| CLICK_IDS.iter().any(|id| c.contains_key(*id)));
        let referrer_url = text(body, &["context", "page", "referrer"])
            .or_else(|| text(body, &["properties", "referrer"]));
        let source = referrer::classify(referrer_url, page_url, medium, click_id);
        Self {
            client_campaign: client_campaign.is_some(),
            campaign,
            source,
        }
    }

    /// Writes `campaign`, `referrerType` and `referrerHost` into `context`.
    fn write(self, context: &mut Map<String, Value>) -> ReferrerKind {
        let campaign = if self.client_campaign {
            // The client's UTM reading stands; only click ids it did not note are added.
            Campaign {
                click_ids: self.campaign.click_ids,
                ..Campaign::default()
            }
        } else {
            self.campaign
        };
        fill(context, "campaign", campaign.to_json());
        let kind = self.source.kind;
        context.insert("referrerType".into(), Value::String(kind.as_str().into()));
        match self.source.host {
            Some(host) => context.insert("referrerHost".into(), Value::String(host)),
            None => context.remove("referrerHost"),
        };
        kind
    }
}

/// Writes `browser`, `os` and `device.type` where the client left them out, and marks
/// a bot with `bot: {name}` (`{}` when unnamed).
fn describe_agent(context: &mut Map<String, Value>, agent: &user_agent::UserAgent) {
    for (key, software) in [("browser", &agent.browser), ("os", &agent.os)] {
        if let Some(software) = software {
            let mut object = Map::new();
            object.insert("name".into(), Value::String(software.name.into()));
            if let Some(version) = &software.version {
                object.insert("version".into(), Value::String(version.clone()));
            }
            fill(context, key, object);
        }
    }
    let mut device = Map::new();
    device.insert("type".into(), Value::String(agent.device.as_str().into()));
    fill(context, "device", device);
    if agent.is_bot {
        let mut bot = Map::new();
        if let Some(name) = agent.bot_name {
            bot.insert("name".into(), Value::String(name.into()));
        }
        context.insert("bot".into(), Value::Object(bot));
    }
}

/// The non-empty string at `path` in nested objects.
fn text<'a>(body: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut object = body;
    for key in parents {
        object = object.get(*key)?.as_object()?;
    }
    object.get(*last)?.as_str().filter(|s| !s.trim().is_empty())
}

/// Adds `values` under `context[key]`, keeping every key the client already set; a
/// client value of another type than an object is left alone.
fn fill(context: &mut Map<String, Value>, key: &str, values: Map<String, Value>) {
    if values.is_empty() {
        return;
    }
    match context.get_mut(key) {
        None | Some(Value::Null) => {
            context.insert(key.into(), Value::Object(values));
        }
        Some(Value::Object(existing)) => {
            for (k, v) in values {
                if existing.get(&k).is_none_or(Value::is_null) {
                    existing.insert(k, v);
                }
            }
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::decode::{decode, Endpoint, Limits};
    use crate::validate::check_batch;

    /// 2026-11-22T10:00:00.000Z
    const NOW: Millis = 1_795_341_600_000;

    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    /// An event as the collector holds it after validation.
    fn event(json: Value) -> Event {
        let body = json!({ "batch": [json] }).to_string();
        let envelope = decode(body.as_bytes(), Endpoint::Batch, &Limits::default()).unwrap();
        let mut checked = check_batch(envelope, NOW, &Limits::default());
        assert!(checked.rejected.is_empty(), "{:?}", checked.rejected);
        checked.accepted.remove(0)
    }

    fn input() -> EnrichInput {
        EnrichInput {
            received_at: NOW,
            ..EnrichInput::default()
        }
    }

    fn enriched(json: Value, input: &EnrichInput) -> (Event, Enrichment) {
        let mut event = event(json);
        let outcome = enrich(&mut event, input, &EnrichPolicy::default());
        (event, outcome)
    }

    #[test]
    fn enriches_a_browser_page_event() {
        let (event, outcome) = enriched(
            json!({
                "type": "page", "anonymousId": "a1", "name": "Home",
                // The client's clock is one hour behind; it queued the event for 2 s.
                "timestamp": "2026-11-22T08:59:58.000Z",
                "context": {
                    "userAgent": CHROME_MAC,
                    "page": {
                        "url": "https://www.shop.example/?utm_source=google&utm_medium=cpc&utm_campaign=winter%20sale&gclid=G1",
                        "referrer": "https://www.google.com/"
                    }
                }
            }),
            &EnrichInput {
                sent_at: Some(NOW - 3_600_000),
                ip: Some("203.0.113.195".into()),
                user_agent: Some("curl/8.4.0".into()),
                location: Some(Location {
                    country: Some("DE".into()),
                    city: Some("Berlin".into()),
                    latitude: Some(52.5),
                    ..Location::default()
                }),
                ..input()
            },
        );
        assert_eq!(
            outcome,
            Enrichment {
                is_bot: false,
                bot_name: None,
                clamped: None,
                skew_ms: Some(3_600_000),
                referrer: ReferrerKind::Paid,
            }
        );
        assert_eq!(event.timestamp, NOW - 2_000);
        let body = Value::Object(event.body);
        assert_eq!(body["timestamp"], "2026-11-22T09:59:58.000Z");
        assert_eq!(body["originalTimestamp"], "2026-11-22T08:59:58.000Z");
        assert_eq!(body["skewMs"], 3_600_000);
        assert_eq!(body["receivedAt"], "2026-11-22T10:00:00.000Z");
        let context = &body["context"];
        assert_eq!(context["ip"], "203.0.113.0");
        assert_eq!(
            context["location"],
            json!({"country": "DE", "city": "Berlin", "latitude": 52.5})
        );
        // The client's context.userAgent describes the visitor; the header is ignored.
        assert_eq!(
            context["browser"],
            json!({"name": "Chrome", "version": "120.0.0.0"})
        );
        assert_eq!(
            context["os"],
            json!({"name": "macOS", "version": "10.15.7"})
        );
        assert_eq!(context["device"], json!({"type": "desktop"}));
        assert_eq!(context.get("bot"), None);
        assert_eq!(
            context["campaign"],
            json!({"source": "google", "medium": "cpc", "name": "winter sale", "gclid": "G1"})
        );
        assert_eq!(context["referrerType"], "paid");
        assert_eq!(context["referrerHost"], "www.google.com");
        assert_eq!(context["page"]["referrer"], "https://www.google.com/");
    }

    #[test]
    fn corrects_and_bounds_timestamps() {
        // (event fields, batch sentAt, timestamp, originalTimestamp, skewMs, clamped)
        let cases = [
            (
                json!({"timestamp": "2026-11-22T09:59:00.000Z", "sentAt": "2026-11-22T09:59:30.000Z"}),
                Some(NOW - 3_600_000),
                "2026-11-22T09:59:30.000Z",
                Some("2026-11-22T09:59:00.000Z"),
                Some(30_000),
                None,
            ),
            (
                json!({"timestamp": "2026-11-22T11:00:00.000Z"}),
                Some(NOW + 3_600_000),
                "2026-11-22T10:00:00.000Z",
                Some("2026-11-22T11:00:00.000Z"),
                Some(-3_600_000),
                None,
            ),
            (
                json!({}),
                Some(NOW - 500),
                "2026-11-22T10:00:00.000Z",
                None,
                Some(500),
                None,
            ),
            (
                json!({"originalTimestamp": "2026-11-22T09:58:00.000Z"}),
                Some(NOW - 60_000),
                "2026-11-22T09:59:00.000Z",
                Some("2026-11-22T09:58:00.000Z"),
                Some(60_000),
                None,
            ),
            (
                json!({"timestamp": "2027-01-01T00:00:00.000Z"}),
                None,
                "2026-11-22T10:00:00.000Z",
                Some("2027-01-01T00:00:00.000Z"),
                None,
                Some(Clamp::Future),
            ),
            (
                json!({"timestamp": "2020-01-01T00:00:00.000Z"}),
                None,
                "2026-11-22T10:00:00.000Z",
                Some("2020-01-01T00:00:00.000Z"),
                None,
                Some(Clamp::TooOld),
            ),
        ];
        for (fields, batch_sent_at, timestamp, original, skew, clamped) in cases {
            let mut raw = json!({"type": "track", "event": "E", "anonymousId": "a"});
            for (k, v) in fields.as_object().unwrap() {
                raw[k] = v.clone();
            }
            let (event, outcome) = enriched(
                raw,
                &EnrichInput {
                    sent_at: batch_sent_at,
                    ..input()
                },
            );
            assert_eq!(event.body["timestamp"], timestamp, "{fields}");
            assert_eq!(event.timestamp, parse_rfc3339(timestamp).unwrap());
            assert_eq!(
                event.body.get("originalTimestamp").and_then(Value::as_str),
                original,
                "{fields}"
            );
            assert_eq!(event.body.get("skewMs").and_then(Value::as_i64), skew);
            assert_eq!(
                (outcome.skew_ms, outcome.clamped),
                (skew, clamped),
                "{fields}"
            );
        }
    }

    #[test]
    fn ip_follows_the_policy_and_prefers_the_clients() {
        // (policy, context.ip sent by the client, request IP, stored context.ip)
        let cases = [
            (
                IpPolicy::Anonymize,
                None,
                Some("198.51.100.7"),
                Some("198.51.100.0"),
            ),
            (
                IpPolicy::Anonymize,
                Some("2001:db8:1:2::9"),
                Some("198.51.100.7"),
                Some("2001:db8:1::"),
            ),
            (
                IpPolicy::Keep,
                None,
                Some("198.51.100.7"),
                Some("198.51.100.7"),
            ),
            (
                IpPolicy::Drop,
                Some("198.51.100.7"),
                Some("198.51.100.7"),
                None,
            ),
            (
                IpPolicy::Keep,
                Some("not an ip"),
                Some("198.51.100.7"),
                None,
            ),
            (IpPolicy::Anonymize, None, None, None),
        ];
        for (ip_policy, client_ip, request_ip, want) in cases {
            let mut raw = json!({"type": "page", "anonymousId": "a"});
            if let Some(ip) = client_ip {
                raw["context"] = json!({ "ip": ip });
            }
            let mut event = event(raw);
            let input = EnrichInput {
                ip: request_ip.map(Into::into),
                ..input()
            };
            let policy = EnrichPolicy {
                ip: ip_policy,
                ..EnrichPolicy::default()
            };
            enrich(&mut event, &input, &policy);
            let got = event.body["context"].get("ip").and_then(Value::as_str);
            assert_eq!(got, want, "{ip_policy:?} {client_ip:?} {request_ip:?}");
        }
    }

    #[test]
    fn keeps_what_the_client_sent_in_context() {
        let (event, outcome) = enriched(
            json!({
                "type": "screen", "userId": "u1", "name": "Cart",
                "context": {
                    "device": {"type": "ios", "model": "iPhone15,2"},
                    "os": {"name": "iOS"},
                    "location": {"latitude": 52.51234, "city": null},
                    "campaign": {"source": "app-push"},
                    "page": {"url": "https://shop.example/?utm_source=ignored&fbclid=F1"}
                }
            }),
            &EnrichInput {
                user_agent: Some(
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1".into(),
                ),
                location: Some(Location {
                    city: Some("Berlin".into()),
                    latitude: Some(52.5),
                    ..Location::default()
                }),
                ..input()
            },
        );
        let context = &event.body["context"];
        assert_eq!(
            context["device"],
            json!({"type": "ios", "model": "iPhone15,2"})
        );
        assert_eq!(context["os"], json!({"name": "iOS", "version": "17.1"}));
        assert_eq!(
            context["location"],
            json!({"latitude": 52.51234, "city": "Berlin"})
        );
        assert_eq!(
            context["campaign"],
            json!({"source": "app-push", "fbclid": "F1"})
        );
        assert_eq!(context["browser"]["name"], "Safari");
        assert_eq!(outcome.referrer, ReferrerKind::Paid);
    }

    #[test]
    fn marks_bots_and_leaves_the_drop_to_the_policy() {
        // (User-Agent, bot name, context.bot)
        let cases = [
            ("curl/8.4.0", Some("curl"), json!({"name": "curl"})),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                Some("Googlebot"),
                json!({"name": "Googlebot"}),
            ),
            ("Mozilla/5.0 (compatible; NewCrawler/1.0)", None, json!({})),
        ];
        for (ua, name, mark) in cases {
            let (event, outcome) = enriched(
                json!({"type": "page", "anonymousId": "a"}),
                &EnrichInput {
                    user_agent: Some(ua.into()),
                    ..input()
                },
            );
            assert!(outcome.is_bot, "{ua}");
            assert_eq!(outcome.bot_name, name, "{ua}");
            assert_eq!(event.body["context"]["bot"], mark, "{ua}");
            assert_eq!(event.body["context"]["device"]["type"], "bot", "{ua}");
            assert!(!outcome.drop_as_bot(&EnrichPolicy::default()));
            let dropping = EnrichPolicy {
                bots: BotAction::Drop,
                ..EnrichPolicy::default()
            };
            assert!(outcome.drop_as_bot(&dropping));
        }
    }

    #[test]
    fn classifies_the_referrer_from_the_page() {
        // (context.page, properties, referrerType, referrerHost)
        let cases = [
            (json!({}), json!({}), "direct", None),
            (
                json!({"url": "https://shop.example/a", "referrer": "https://www.shop.example/"}),
                json!({}),
                "internal",
                Some("www.shop.example"),
            ),
            (
                json!({}),
                json!({"url": "https://shop.example/", "referrer": "https://t.co/x"}),
                "social",
                Some("t.co"),
            ),
            (
                json!({"search": "?utm_medium=email&utm_source=news"}),
                json!({}),
                "email",
                None,
            ),
            (
                json!({"referrer": "https://news.ycombinator.com/"}),
                json!({}),
                "other",
                Some("news.ycombinator.com"),
            ),
        ];
        for (page, properties, kind, host) in cases {
            let (event, outcome) = enriched(
                json!({"type": "page", "anonymousId": "a", "context": {"page": page}, "properties": properties}),
                &input(),
            );
            let context = &event.body["context"];
            assert_eq!(context["referrerType"], kind, "{page} {properties}");
            assert_eq!(outcome.referrer.as_str(), kind);
            assert_eq!(
                context.get("referrerHost").and_then(Value::as_str),
                host,
                "{page} {properties}"
            );
        }
    }

    #[test]
    fn a_bare_event_gets_only_what_is_known() {
        let (event, outcome) = enriched(json!({"type": "identify", "userId": "u"}), &input());
        assert_eq!(
            Value::Object(event.body["context"].as_object().unwrap().clone()),
            json!({"referrerType": "direct"})
        );
        assert_eq!(event.body.get("originalTimestamp"), None);
        assert_eq!(event.body.get("skewMs"), None);
        assert_eq!(event.timestamp, NOW);
        assert!(!outcome.is_bot);
    }

    #[test]
    fn policy_reads_from_json_with_defaults() {
        let policy: EnrichPolicy =
            serde_json::from_str(r#"{"ip":"drop","bots":"drop","clock":{"maxAgeMs":86400000}}"#)
                .unwrap();
        assert_eq!(policy.ip, IpPolicy::Drop);
        assert_eq!(policy.bots, BotAction::Drop);
        assert_eq!(policy.clock.max_age_ms, 86_400_000);
        assert_eq!(
            policy.clock.max_future_ms,
            ClockPolicy::default().max_future_ms
        );
        let empty: EnrichPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, EnrichPolicy::default());
        assert!(serde_json::from_str::<EnrichPolicy>(r#"{"ipPolicy":"keep"}"#).is_err());
    }
}
