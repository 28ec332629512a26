//! Destinations: where audience membership changes go (a signed webhook, or any
//! Segment-compatible API), what they carry, and when a failed delivery is tried again.
//! Checked here, with errors that name their place; the Worker only sends.

use serde_json::{json, Map, Value};

use crate::audience::definition::{parse_duration, valid_key};
use crate::audience::DefinitionError;

/// The retry schedule's steps, as multiples of `retry.first`: with 5 s, the Standard
/// Webhooks guidance's 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (and 10 h after that).
const STEPS: [i64; 6] = [1, 60, 360, 1_440, 3_600, 7_200];

/// Where a destination sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A signed HTTPS webhook.
    Webhook {
        /// The receiver.
        url: String,
        /// `whsec_…`.
        secret: String,
    },
    /// A Segment-compatible HTTP API (`{endpoint}/v1/batch`).
    Segment {
        /// Its base URL.
        endpoint: String,
        /// The write key it takes.
        write_key: String,
    },
}

/// When a failed delivery is tried again (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The first wait.
    pub first: i64,
    /// The longest wait.
    pub max: i64,
    /// How long after the change delivery is given up (to the dead-letter store).
    pub give_up_after: i64,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            first: 5_000,
            max: 10 * 3_600_000,
            give_up_after: 3 * 86_400_000,
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt + 1` after `attempt` failed (1-based), with
    /// `jitter` in `[0, 1)` spreading it ±10 %, so receivers that failed together are not
    /// all tried again at the same instant.
    pub fn delay(&self, attempt: u32, jitter: f64) -> i64 {
        let step = STEPS[(attempt.max(1) as usize - 1).min(STEPS.len() - 1)];
        let base = self.first.saturating_mul(step).min(self.max);
        let spread = (base as f64 * 0.2 * (jitter.clamp(0.0, 1.0) - 0.5)) as i64;
        (base + spread).clamp(1_000, self.max.max(1_000))
    }
}

/// A checked destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// `[a-z0-9_]{1,64}`.
    pub key: String,
    /// Where it sends.
    pub kind: Kind,
    /// The audiences it receives.
    pub audiences: Vec<String>,
    /// The segment groups whose audiences it receives.
    pub groups: Vec<String>,
    /// Entries sent.
    pub entered: bool,
    /// Exits sent.
    pub exited: bool,
    /// The consent category a person must have granted for anything about them to leave.
    pub consent: Option<String>,
    /// The fields that go out (`identifiers.email`, `traits.name`, `computed.totalRevenue`).
    pub fields: Vec<(String, String)>,
    /// Retries.
    pub retry: Retry,
}

fn refuse<T>(at: &str, message: impl Into<String>) -> Result<T, DefinitionError> {
    Err(DefinitionError {
        at: at.to_owned(),
        message: message.into(),
    })
}

const FIELDS: [&str; 10] = [
    "key",
    "type",
    "audiences",
    "groups",
    "on",
    "consent",
    "fields",
    "retry",
    "settings",
    "name",
];

/// Checks a destination. `development` lets `http://127.0.0.1` receivers through.
pub fn parse(value: &Value, development: bool) -> Result<Destination, DefinitionError> {
    let Some(o) = value.as_object() else {
        return refuse(
            "",
            "a destination is a JSON object with key, type, settings and audiences or groups",
        );
    };
    for field in o.keys() {
        if !FIELDS.contains(&field.as_str())
            && !matches!(
                field.as_str(),
                "state" | "createdAt" | "updatedAt" | "disabledReason"
            )
        {
            return refuse(
                field,
                format!("unknown field; a destination has {}", FIELDS.join(", ")),
            );
        }
    }
    let key = match o.get("key") {
        Some(Value::String(k)) if valid_key(k) => k.clone(),
        _ => return refuse("key", "give a key of 1 to 64 characters a-z, 0-9 and _"),
    };
    let audiences = keys(o, "audiences")?;
    let groups = keys(o, "groups")?;
    if audiences.is_empty() && groups.is_empty() {
        return refuse(
            "audiences",
            "name the audiences (or groups) whose changes it receives",
        );
    }
    let on = keys(o, "on")?;
    let (entered, exited) = if on.is_empty() {
        (true, true)
    } else {
        for (i, c) in on.iter().enumerate() {
            if c != "entered" && c != "exited" {
                return refuse(&format!("on[{i}]"), "entered or exited");
            }
        }
        (
            on.iter().any(|c| c == "entered"),
            on.iter().any(|c| c == "exited"),
        )
    };
    let consent = match o.get("consent") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if valid_key(c) => Some(c.clone()),
        Some(_) => return refuse("consent", "a consent category, e.g. \"marketing\""),
    };
    let mut fields = Vec::new();
    for (i, f) in keys(o, "fields")?.iter().enumerate() {
        match f.split_once('.') {
            Some((g @ ("identifiers" | "traits" | "computed"), k)) if !k.is_empty() => {
                fields.push((g.to_owned(), k.to_owned()));
            }
            _ => {
                return refuse(
                    &format!("fields[{i}]"),
                    "a field is identifiers.<kind>, traits.<key> or computed.<name>",
                )
            }
        }
    }
    let retry = retry(o.get("retry"))?;
    let settings = o.get("settings").and_then(Value::as_object);
    let setting = |name: &str| settings.and_then(|s| s.get(name)).and_then(Value::as_str);
    let kind = match o.get("type").and_then(Value::as_str) {
        Some("webhook") => {
            let Some(url) = setting("url") else {
                return refuse("settings.url", "the receiver's https URL");
            };
            check_url(url, development).or_else(|m| refuse("settings.url", m))?;
            let secret = setting("secret").unwrap_or_default().to_owned();
            if !secret.is_empty() && crate::webhook::key_of(&secret).is_err() {
                return refuse("settings.secret", crate::webhook::BadSecret.to_string());
            }
            Kind::Webhook {
                url: url.to_owned(),
                secret,
            }
        }
        Some("segment") => {
            let Some(endpoint) = setting("endpoint") else {
                return refuse(
                    "settings.endpoint",
                    "the Segment-compatible API's base URL, e.g. https://api.segment.io",
                );
            };
            check_url(endpoint, development).or_else(|m| refuse("settings.endpoint", m))?;
            let Some(write_key) = setting("writeKey").filter(|k| !k.is_empty()) else {
                return refuse(
                    "settings.writeKey",
                    "the write key of the source it sends to",
                );
            };
            Kind::Segment {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                write_key: write_key.to_owned(),
            }
        }
        _ => return refuse("type", "webhook or segment"),
    };
    Ok(Destination {
        key,
        kind,
        audiences,
        groups,
        entered,
        exited,
        consent,
        fields,
        retry,
    })
}

fn keys(o: &Map<String, Value>, field: &str) -> Result<Vec<String>, DefinitionError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s) if !s.is_empty() && s.len() <= 200 => Ok(s.to_owned()),
                _ => refuse(&format!("{field}[{i}]"), "a text"),
            })
            .collect(),
        Some(_) => refuse(field, "a list"),
    }
}

fn retry(value: Option<&Value>) -> Result<Retry, DefinitionError> {
    let mut retry = Retry::default();
    let Some(value) = value else {
        return Ok(retry);
    };
    let Some(o) = value.as_object() else {
        return refuse(
            "retry",
            "an object such as {\"first\": \"5s\", \"max\": \"10h\", \"for\": \"3d\"}",
        );
    };
    for (name, slot) in [
        ("first", &mut retry.first),
        ("max", &mut retry.max),
        ("for", &mut retry.give_up_after),
    ] {
        if let Some(v) = o.get(name) {
            match v.as_str().and_then(parse_duration) {
                Some(ms) if ms <= 30 * 86_400_000 => *slot = ms,
                _ => {
                    return refuse(
                        &format!("retry.{name}"),
                        "a duration up to 30d, e.g. \"5s\", \"10h\", \"3d\"",
                    )
                }
            }
        }
    }
    if retry.first > retry.max {
        return refuse("retry", "first is longer than max");
    }
    Ok(retry)
}

/// Refuses a receiver URL that is not https (or, in local development, http to the
/// loopback), or that names a private, loopback or link-local address.
pub fn check_url(url: &str, development: bool) -> Result<(), String> {
    check_address(url, development, "a receiver")
}

/// Refuses a URL the Worker would call (`what`: "a receiver", "a feed") that is not https
/// (or, in local development, http to the machine itself), or that names a private,
/// loopback or link-local address.
pub fn check_address(url: &str, development: bool, what: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("not a URL: give https://host/path")?;
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host_port
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
        .to_ascii_lowercase();
    if host.is_empty() || rest.contains('@') {
        return Err("give https://host/path, without credentials".into());
    }
    let local = is_private(&host);
    let the = what.strip_prefix("a ").unwrap_or(what);
    match scheme {
        "http" | "https" if development && local => Ok(()),
        "https" if !local => Ok(()),
        "https" => Err(format!("{host} is a private, loopback or link-local address; {what} must be reachable on the internet")),
        _ => Err(format!("the {the} must use https")),
    }
}

/// Whether `host` (a name or an address) is the machine itself, a private network or a
/// link-local address. A name that resolves to one is refused by the Worker when saving,
/// where it can resolve names.
pub fn is_private(host: &str) -> bool {
    if host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
    {
        return true;
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]);
    }
    if let Ok(ip) = host.parse::<std::net::Ipv6Addr>() {
        let first = ip.segments()[0];
        return ip.is_loopback()
            || ip.is_unspecified()
            || (first & 0xfe00) == 0xfc00
            || (first & 0xffc0) == 0xfe80
            || ip
                .to_ipv4_mapped()
                .is_some_and(|v4| is_private(&v4.to_string()));
    }
    false
}

/// One audience membership change, as profiles record it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The profile.
    pub profile: String,
    /// Its membership change number: only grows.
    pub seq: i64,
    /// The audience's key.
    pub audience: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its group.
    #[serde(default)]
    pub group: Option<String>,
    /// `entered` or `exited`.
    pub change: String,
    /// When (ISO 8601).
    pub at: String,
}

/// The `messageId` prefix of the timeline events that record membership changes.
const TIMELINE_PREFIX: &str = "audience-";

impl Change {
    /// The `Audience Entered` or `Audience Exited` event that records this change in the
    /// profile's timeline. It holds the whole change, so the timeline can send it again
    /// (see [`Change::from_timeline_event`]).
    pub fn timeline_event(&self) -> Value {
        let event = if self.change == "entered" {
            "Audience Entered"
        } else {
            "Audience Exited"
        };
        json!({"type": "track", "event": event,
            "messageId": format!("{TIMELINE_PREFIX}{}-{}", self.profile, self.seq),
            "timestamp": self.at, "receivedAt": self.at,
            "properties": {"audience_key": self.audience, "audience_name": self.name, "group": self.group}})
    }

    /// The change a timeline event records (`None`: the event records none).
    pub fn from_timeline_event(event: &Value) -> Option<Self> {
        let change = match event.get("event")?.as_str()? {
            "Audience Entered" => "entered",
            "Audience Exited" => "exited",
            _ => return None,
        };
        let message_id = event.get("messageId")?.as_str()?;
        let (profile, seq) = message_id.strip_prefix(TIMELINE_PREFIX)?.rsplit_once('-')?;
        let properties = event.get("properties")?;
        let text = |key: &str| {
            properties
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(Self {
            profile: profile.to_owned(),
            seq: seq.parse().ok()?,
            audience: text("audience_key")?,
            name: text("audience_name").unwrap_or_default(),
            group: text("group"),
            change: change.to_owned(),
            at: event.get("timestamp")?.as_str()?.to_owned(),
        })
    }
}

/// The membership changes one activation queue message carries: one change (a profile's
/// outbox sends them one at a time) or a list (a delivery's, sent together); `None` when it
/// is neither.
pub fn changes_in(message: &str) -> Option<Vec<Change>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Carried {
        One(Change),
        Many(Vec<Change>),
    }
    match serde_json::from_str(message).ok()? {
        Carried::One(change) => Some(vec![change]),
        Carried::Many(changes) => Some(changes),
    }
}

impl Destination {
    /// Whether this destination receives `change`.
    pub fn wants(&self, change: &Change) -> bool {
        let which = match change.change.as_str() {
            "entered" => self.entered,
            "exited" => self.exited,
            _ => false,
        };
        let named = self.audiences.contains(&change.audience)
            || change
                .group
                .as_ref()
                .is_some_and(|g| self.groups.contains(g));
        which && named
    }

    /// Whether the person (as the profile view shows them: `computedTraits.consent`) has
    /// granted the destination's consent category.
    pub fn consented(&self, profile: &Value) -> bool {
        let Some(category) = &self.consent else {
            return true;
        };
        profile
            .pointer(&format!("/computedTraits/consent/{category}"))
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// The profile part of a payload: its id and only the fields the destination names.
    pub fn profile_fields(&self, id: &str, profile: &Value) -> Value {
        let mut out = json!({"id": id, "identifiers": {}, "traits": {}});
        for (group, key) in &self.fields {
            let value = match group.as_str() {
                "identifiers" => {
                    let values: Vec<Value> = profile
                        .get("identifiers")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|i| i.get("type").and_then(Value::as_str) == Some(key))
                        .filter_map(|i| i.get("value").cloned())
                        .collect();
                    if values.is_empty() {
                        continue;
                    }
                    Value::Array(values)
                }
                "traits" => match profile.pointer(&format!("/traits/{key}")) {
                    Some(v) => v.clone(),
                    None => continue,
                },
                _ => match profile.pointer(&format!("/computedTraits/{key}")) {
                    Some(v) => v.clone(),
                    None => continue,
                },
            };
            let slot = if group == "computed" {
                "computed"
            } else {
                group.as_str()
            };
            if out.get(slot).is_none() {
                out[slot] = json!({});
            }
            out[slot][key] = value;
        }
        out
    }
}

/// The webhook payload of one change.
pub fn webhook_payload(change: &Change, profile: Value) -> Value {
    json!({
        "type": format!("audience.{}", change.change),
        "audience": {"key": change.audience, "name": change.name, "group": change.group},
        "profile": profile,
        "sequence": change.seq,
        "occurredAt": change.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_read_back_from_its_timeline_event() {
        let change = Change {
            profile: "p-1f-x".into(),
            seq: 12,
            audience: "buyers".into(),
            name: "Buyers".into(),
            group: Some("sales".into()),
            change: "exited".into(),
            at: "2026-12-03T10:00:00.000Z".into(),
        };
        let event = change.timeline_event();
        assert_eq!(event["event"], "Audience Exited");
        assert_eq!(event["messageId"], "audience-p-1f-x-12");
        assert_eq!(Change::from_timeline_event(&event), Some(change.clone()));
        let entered = Change {
            change: "entered".into(),
            group: None,
            ..change
        };
        let event = entered.timeline_event();
        assert_eq!(event["event"], "Audience Entered");
        assert_eq!(Change::from_timeline_event(&event), Some(entered));
    }

    #[test]
    fn a_message_carries_one_change_or_a_list() {
        let one = json!({"profile": "p-1", "seq": 1, "audience": "a", "change": "entered",
            "at": "2026-12-03T10:00:00.000Z"});
        let two = json!([one, {"profile": "p-2", "seq": 4, "audience": "a", "name": "A",
            "group": "g", "change": "exited", "at": "2026-12-03T10:00:01.000Z"}]);
        assert_eq!(changes_in(&one.to_string()).map(|c| c.len()), Some(1));
        let both = changes_in(&two.to_string()).expect("a list");
        assert_eq!(both.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(both[1].group.as_deref(), Some("g"));
        assert_eq!(changes_in("[]"), Some(Vec::new()));
        assert_eq!(changes_in("{\"profile\": 1}"), None);
        assert_eq!(changes_in("not json"), None);
    }

    #[test]
    fn other_events_record_no_change() {
        let page = json!({"type": "page", "messageId": "audience-p-1", "timestamp": "2026-12-03T10:00:00Z"});
        assert_eq!(Change::from_timeline_event(&page), None);
        let forged = json!({"type": "track", "event": "Audience Entered", "messageId": "m-1",
            "timestamp": "2026-12-03T10:00:00Z", "properties": {"audience_key": "a"}});
        assert_eq!(
            Change::from_timeline_event(&forged),
            None,
            "not an audience messageId"
        );
    }

    fn webhook(extra: Value) -> Value {
        let mut d = json!({"key": "crm", "type": "webhook", "audiences": ["cart_no_buy"],
            "settings": {"url": "https://hooks.example.com/cdp"}});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    #[test]
    fn the_issues_example_is_a_destination() {
        let d = parse(&json!({"key": "crm", "type": "webhook", "audiences": ["cart_no_buy"], "groups": ["shop"],
            "on": ["entered", "exited"], "consent": "marketing",
            "fields": ["identifiers.email", "traits.name", "computed.totalRevenue"],
            "retry": {"first": "5s", "max": "10h", "for": "3d"},
            "settings": {"url": "https://hooks.example.com/cdp", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}), false)
        .unwrap();
        assert_eq!(d.retry, Retry::default());
        assert_eq!(d.consent.as_deref(), Some("marketing"));
        assert_eq!(d.fields.len(), 3);
    }

    #[test]
    fn bad_destinations_are_refused_naming_the_place() {
        for (extra, at) in [
            (json!({"type": "carrier-pigeon"}), "type"),
            (
                json!({"settings": {"url": "http://hooks.example.com"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://127.0.0.1/x"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://10.1.2.3/x"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://[::1]/x"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://169.254.169.254/latest"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://localhost/x"}}),
                "settings.url",
            ),
            (
                json!({"settings": {"url": "https://hooks.example.com", "secret": "whsec_short"}}),
                "settings.secret",
            ),
            (json!({"on": ["joined"]}), "on[0]"),
            (json!({"fields": ["email"]}), "fields[0]"),
            (json!({"retry": {"first": "soon"}}), "retry.first"),
            (json!({"audiences": []}), "audiences"),
            (json!({"colour": "red"}), "colour"),
        ] {
            let e = parse(&webhook(extra.clone()), false).unwrap_err();
            assert_eq!(e.at, at, "{extra}: {e}");
        }
        // Local development may use the loopback over http.
        assert!(parse(
            &webhook(json!({"settings": {"url": "http://127.0.0.1:9000/hook"}})),
            true
        )
        .is_ok());
    }

    #[test]
    fn retries_back_off_to_the_maximum() {
        let r = Retry::default();
        let waits: Vec<i64> = (1..=8).map(|a| r.delay(a, 0.5)).collect();
        assert_eq!(
            waits,
            [
                5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
                36_000_000
            ]
        );
        assert!(
            r.delay(2, 0.0) < 300_000 && r.delay(2, 0.99) > 300_000,
            "jitter spreads"
        );
        let quick = Retry {
            first: 1_000,
            max: 2_000,
            give_up_after: 60_000,
        };
        assert_eq!(quick.delay(3, 0.5), 2_000);
    }

    #[test]
    fn wants_consent_and_fields() {
        let d = parse(
            &webhook(
                json!({"groups": ["shop"], "on": ["entered"], "consent": "marketing",
            "fields": ["identifiers.email", "traits.name", "computed.totalRevenue"]}),
            ),
            false,
        )
        .unwrap();
        let change = |audience: &str, group: Option<&str>, what: &str| Change {
            profile: "p".into(),
            seq: 1,
            audience: audience.into(),
            name: String::new(),
            group: group.map(str::to_owned),
            change: what.into(),
            at: String::new(),
        };
        assert!(d.wants(&change("cart_no_buy", None, "entered")));
        assert!(d.wants(&change("other", Some("shop"), "entered")));
        assert!(!d.wants(&change("cart_no_buy", None, "exited")));
        assert!(!d.wants(&change("other", None, "entered")));
        let profile = json!({"identifiers": [{"type": "email", "value": "a@example.com"}, {"type": "anonymousId", "value": "x"}],
            "traits": {"name": "Ada", "plan": "pro"}, "computedTraits": {"totalRevenue": 12.5, "consent": {"marketing": true}}});
        assert!(d.consented(&profile));
        assert!(!d.consented(&json!({"computedTraits": {"consent": {"marketing": false}}})));
        assert!(!d.consented(&json!({})), "no choice is no consent");
        assert_eq!(
            d.profile_fields("p", &profile),
            json!({"id": "p", "identifiers": {"email": ["a@example.com"]},
            "traits": {"name": "Ada"}, "computed": {"totalRevenue": 12.5}})
        );
    }
}
