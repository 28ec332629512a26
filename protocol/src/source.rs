//! Sources: each write key belongs to a source, with the origins allowed to send for it and
//! its privacy settings. Read from the Worker's configuration (`SOURCES`, JSON), never code.
//!
//! ```json
//! [{"writeKey": "demo-write-key", "name": "Demo shop", "allowedOrigins": ["https://shop.example"],
//!   "consent": {"required": true, "category": "analytics"},
//!   "enrich": {"ip": "anonymize", "bots": "flag"},
//!   "cookie": {"name": "cdp_aid", "domain": "shop.example"}}]
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::enrich::EnrichPolicy;
use crate::event::Event;

/// One source of events: a site, an app or a server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// The key clients present; also the source's id in storage and counters.
    pub write_key: String,
    /// A name for people.
    #[serde(default)]
    pub name: String,
    /// Origins (`https://shop.example`) whose pages may send; empty or `*`: any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// What consent events need.
    #[serde(default)]
    pub consent: ConsentRule,
    /// IP, clock and bot policy.
    #[serde(default)]
    pub enrich: EnrichPolicy,
    /// The first-party anonymous-id cookie the collector refreshes.
    #[serde(default)]
    pub cookie: CookieRule,
    /// Traits this source's events carry as identifiers (e.g. `crm_id`), besides `userId`,
    /// `email`, `phone` and `anonymousId`.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// ISO 4217 code (`EUR`) given to this source's events that carry an amount but no
    /// `properties.currency`; none: such amounts count in the workspace's base currency.
    #[serde(default)]
    pub currency: Option<String>,
}

/// The consent a source requires before its events are stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentRule {
    /// Events must say the visitor granted `category`.
    pub required: bool,
    /// The category (as in `context.consent.categoryPreferences`).
    pub category: String,
}

impl Default for ConsentRule {
    fn default() -> Self {
        Self {
            required: false,
            category: "analytics".into(),
        }
    }
}

/// The anonymous-id cookie the collector sets from the server, when it is first-party.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CookieRule {
    /// Cookie name (the tracker's is `cdp_aid`); empty turns the refresh off.
    pub name: String,
    /// Cookie domain, to share it across subdomains; empty: the collector's host.
    pub domain: String,
    /// Lifetime in days.
    pub days: u32,
}

impl Default for CookieRule {
    fn default() -> Self {
        Self {
            name: "cdp_aid".into(),
            domain: String::new(),
            days: 365,
        }
    }
}

impl CookieRule {
    /// Refuses a name or domain that would break the `Set-Cookie` header or add attributes
    /// to it (`;`, CR, LF, spaces), naming the field.
    fn check(&self) -> Result<(), String> {
        // RFC 6265 § 4.1.1: a cookie name is an RFC 2616 token.
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if !self.name.chars().all(token) {
            return Err(format!(
                "cookie.name {:?} may hold only letters, digits and !#$%&'*+-.^_`|~",
                self.name
            ));
        }
        let label = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if !self.domain.chars().all(label) || self.domain.starts_with('-') {
            return Err(format!(
                "cookie.domain {:?} must be a host name such as shop.example",
                self.domain
            ));
        }
        if self.days == 0 || self.days > 400 {
            return Err(format!(
                "cookie.days must be 1 to 400 (browsers cap cookies at 400 days), not {}",
                self.days
            ));
        }
        Ok(())
    }
}

/// Why the sources configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesError(pub String);

impl std::fmt::Display for SourcesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SOURCES is not valid: {}", self.0)
    }
}

impl std::error::Error for SourcesError {}

/// All configured sources.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sources(Vec<Source>);

impl Sources {
    /// Reads `SOURCES` (a JSON array of sources). `WRITE_KEYS` (comma-separated) adds a
    /// source with default settings for each key, for the simplest set-ups.
    pub fn parse(
        sources_json: Option<&str>,
        write_keys: Option<&str>,
    ) -> Result<Self, SourcesError> {
        let mut sources: Vec<Source> = match sources_json.map(str::trim).filter(|s| !s.is_empty()) {
            Some(json) => serde_json::from_str(json).map_err(|e| SourcesError(e.to_string()))?,
            None => Vec::new(),
        };
        for key in write_keys
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            if !sources.iter().any(|s| s.write_key == key) {
                sources.push(Source {
                    write_key: key.to_owned(),
                    name: String::new(),
                    allowed_origins: Vec::new(),
                    consent: ConsentRule::default(),
                    enrich: EnrichPolicy::default(),
                    cookie: CookieRule::default(),
                    identifiers: Vec::new(),
                    currency: None,
                });
            }
        }
        if let Some(empty) = sources.iter().position(|s| s.write_key.is_empty()) {
            return Err(SourcesError(format!(
                "source {empty} has an empty writeKey"
            )));
        }
        for source in &mut sources {
            source
                .cookie
                .check()
                .map_err(|e| SourcesError(format!("source {:?}: {e}", source.write_key)))?;
            if let Some(code) = &source.currency {
                source.currency = Some(currency_code(code).ok_or_else(|| {
                    SourcesError(format!(
                        "source {:?}: currency must be an ISO 4217 code such as EUR, not {code:?}",
                        source.write_key
                    ))
                })?);
            }
        }
        if sources.is_empty() {
            return Err(SourcesError(
                "no source is configured: set SOURCES or WRITE_KEYS".into(),
            ));
        }
        Ok(Self(sources))
    }

    /// Every identifier kind some source declares.
    pub fn identifier_kinds(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|s| s.identifiers.iter().cloned())
            .collect()
    }

    /// The source a write key belongs to.
    pub fn by_key(&self, write_key: &str) -> Option<&Source> {
        self.0.iter().find(|s| s.write_key == write_key)
    }

    /// Whether any source allows `origin`, for answering CORS preflights (which carry no key).
    pub fn any_allows(&self, origin: &str) -> bool {
        self.0.iter().any(|s| s.allows_origin(Some(origin)))
    }
}

impl Source {
    /// Whether a request from `origin` may send for this source. Requests without an
    /// `Origin` header come from servers, not pages, and are not restricted by it.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        self.allowed_origins.is_empty()
            || self.allowed_origins.iter().any(|allowed| {
                allowed == "*" || allowed.trim_end_matches('/').eq_ignore_ascii_case(origin)
            })
    }

    /// Gives an event that carries an amount (`revenue`, `total`, `value`, `price` or
    /// `products`) but no currency the source's default currency, so a shop's orders sent
    /// without one are not read in another currency. What the client sent wins.
    pub fn default_currency(&self, event: &mut Event) {
        let Some(currency) = &self.currency else {
            return;
        };
        let Some(Value::Object(properties)) = event.body.get_mut("properties") else {
            return;
        };
        let has_amount = ["revenue", "total", "value", "price", "products"]
            .iter()
            .any(|k| properties.contains_key(*k));
        if has_amount && !properties.contains_key("currency") {
            properties.insert("currency".into(), Value::String(currency.clone()));
        }
    }

    /// Whether the event carries the consent this source requires.
    pub fn consent_allows(&self, event: &Event) -> bool {
        if !self.consent.required {
            return true;
        }
        let granted = event
            .body
            .get("context")
            .and_then(|c| c.get("consent"))
            .and_then(|c| c.get("categoryPreferences"))
            .and_then(|p| p.get(&self.consent.category));
        granted == Some(&Value::Bool(true))
    }
}

/// A currency code in its canonical form (three ASCII letters, upper case).
pub fn currency_code(code: &str) -> Option<String> {
    let code = code.trim();
    (code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use serde_json::json;

    fn event(context: Value) -> Event {
        let mut body = serde_json::Map::new();
        body.insert("context".into(), context);
        Event {
            kind: EventType::Track,
            message_id: "m".into(),
            anonymous_id: Some("a".into()),
            user_id: None,
            name: Some("A".into()),
            timestamp: 0,
            received_at: 0,
            body,
        }
    }

    #[test]
    fn reads_sources_and_write_keys() {
        let sources = Sources::parse(
            Some(r#"[{"writeKey":"k1","allowedOrigins":["https://a.example"],"consent":{"required":true}}]"#),
            Some("k2, k1"),
        )
        .expect("valid");
        assert!(sources.by_key("k1").is_some_and(|s| s.consent.required));
        assert!(sources.by_key("k2").is_some_and(|s| !s.consent.required));
        assert!(sources.by_key("k3").is_none());
    }

    #[test]
    fn reads_the_readme_example() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("[{\"writeKey\": \"shop-key\"")
            .expect("the README shows a SOURCES example");
        let end = start + readme[start..].find("}]").expect("example closes") + 2;
        let sources =
            Sources::parse(Some(&readme[start..end]), None).expect("the README example is valid");
        let shop = sources.by_key("shop-key").expect("shop-key");
        assert!(shop.consent.required && !shop.allows_origin(Some("https://other.example")));
    }

    #[test]
    fn refuses_unknown_fields_empty_keys_and_nothing() {
        assert!(Sources::parse(Some(r#"[{"writeKey":"k","allowedOrigin":[]}]"#), None).is_err());
        assert!(Sources::parse(Some(r#"[{"writeKey":""}]"#), None).is_err());
        assert!(Sources::parse(None, Some(" , ")).is_err());
        let err = Sources::parse(Some("{"), None).unwrap_err();
        assert!(err.to_string().starts_with("SOURCES is not valid"));
    }

    #[test]
    fn origins_table() {
        let sources = Sources::parse(
            Some(r#"[{"writeKey":"k","allowedOrigins":["https://a.example/"]}]"#),
            Some("open"),
        )
        .expect("valid");
        let strict = sources.by_key("k").expect("k");
        let open = sources.by_key("open").expect("open");
        assert!(strict.allows_origin(Some("https://a.example")));
        assert!(strict.allows_origin(Some("HTTPS://A.EXAMPLE")));
        assert!(!strict.allows_origin(Some("https://evil.example")));
        assert!(!strict.allows_origin(Some("http://a.example")));
        assert!(strict.allows_origin(None), "servers send no Origin");
        assert!(open.allows_origin(Some("https://anything.example")));
        assert!(sources.any_allows("https://anything.example"));
    }

    #[test]
    fn an_amount_without_a_currency_takes_the_source_default() {
        let sources = Sources::parse(Some(r#"[{"writeKey":"k","currency":"eur"}]"#), None).unwrap();
        let source = sources.by_key("k").unwrap();
        assert_eq!(source.currency.as_deref(), Some("EUR"));
        let with = |properties: Value| {
            let mut e = event(json!({}));
            e.body.insert("properties".into(), properties);
            source.default_currency(&mut e);
            e.body["properties"].get("currency").cloned()
        };
        assert_eq!(with(json!({"total": 5})), Some(json!("EUR")));
        assert_eq!(
            with(json!({"total": 5, "currency": "JPY"})),
            Some(json!("JPY"))
        );
        assert_eq!(
            with(json!({"product_id": "p"})),
            None,
            "no amount, no currency"
        );
        let bad = Sources::parse(Some(r#"[{"writeKey":"k","currency":"euro"}]"#), None);
        assert!(bad.unwrap_err().to_string().contains("ISO 4217"));
    }

    #[test]
    fn cookie_settings_that_would_break_the_header_are_refused_by_field() {
        for (cookie, field) in [
            (r#"{"domain": "shop.example\r\nX: 1"}"#, "cookie.domain"),
            (r#"{"name": "aid; Domain=evil.example"}"#, "cookie.name"),
            (r#"{"name": "a id"}"#, "cookie.name"),
            (r#"{"days": 0}"#, "cookie.days"),
        ] {
            let json = format!(r#"[{{"writeKey": "k", "cookie": {cookie}}}]"#);
            let e = Sources::parse(Some(&json), None).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("\"k\""), "{cookie}: {e}");
        }
        let fine = r#"[{"writeKey": "k", "cookie": {"name": "cdp_aid", "domain": ".shop.example", "days": 30}}]"#;
        assert!(Sources::parse(Some(fine), None).is_ok());
        let off = r#"[{"writeKey": "k", "cookie": {"name": ""}}]"#;
        assert!(
            Sources::parse(Some(off), None).is_ok(),
            "an empty name turns the refresh off"
        );
    }

    #[test]
    fn consent_gate_needs_the_category_granted() {
        let sources = Sources::parse(
            Some(r#"[{"writeKey":"k","consent":{"required":true,"category":"analytics"}}]"#),
            Some("open"),
        )
        .expect("valid");
        let strict = sources.by_key("k").expect("k");
        let granted = event(json!({"consent": {"categoryPreferences": {"analytics": true}}}));
        let denied = event(json!({"consent": {"categoryPreferences": {"analytics": false}}}));
        let silent = event(json!({}));
        let wrong_type = event(json!({"consent": {"categoryPreferences": {"analytics": "yes"}}}));
        assert!(strict.consent_allows(&granted));
        assert!(!strict.consent_allows(&denied));
        assert!(!strict.consent_allows(&silent));
        assert!(!strict.consent_allows(&wrong_type));
        assert!(sources
            .by_key("open")
            .is_some_and(|s| s.consent_allows(&silent)));
    }
}
