//! Campaign attribution from the landing page's URL: UTM parameters and ad click ids.
//!
//! Segment's browser library already sends `context.campaign` from `utm_*` parameters;
//! this fills it for clients that do not (server libraries, other trackers, plain
//! HTTP), so every stored event can be attributed the same way. Click ids
//! (`gclid`, `fbclid`, …) prove a visit came from an ad even without UTM tags.

use serde_json::{Map, Value};

use super::url::query_pairs;

/// The ad click ids noted, as their query parameter names.
pub const CLICK_IDS: &[&str] = &[
    "gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid",
];

/// The campaign a URL's query string names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Campaign {
    /// `utm_source`: who sent the visit, e.g. `newsletter` or `google`.
    pub source: Option<String>,
    /// `utm_medium`: how, e.g. `email` or `cpc`.
    pub medium: Option<String>,
    /// `utm_campaign`: which campaign.
    pub name: Option<String>,
    /// `utm_term`: the paid search keyword.
    pub term: Option<String>,
    /// `utm_content`: which ad or link of the campaign.
    pub content: Option<String>,
    /// Ad click ids found, as (parameter name, value), in URL order.
    pub click_ids: Vec<(&'static str, String)>,
}

impl Campaign {
    /// Reads the UTM parameters and click ids of `url` (an absolute URL or a bare
    /// `?query`). The first non-empty value of each parameter wins; names are matched
    /// case-insensitively, since hand-written links vary.
    pub fn from_url(url: &str) -> Self {
        let mut campaign = Self::default();
        for (key, value) in query_pairs(url) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let slot = match key.as_str() {
                "utm_source" => &mut campaign.source,
                "utm_medium" => &mut campaign.medium,
                "utm_campaign" => &mut campaign.name,
                "utm_term" => &mut campaign.term,
                "utm_content" => &mut campaign.content,
                _ => {
                    let known = CLICK_IDS.iter().find(|id| **id == key);
                    if let Some(id) = known {
                        if !campaign.click_ids.iter().any(|(k, _)| k == id) {
                            campaign.click_ids.push((id, value.to_owned()));
                        }
                    }
                    continue;
                }
            };
            if slot.is_none() {
                *slot = Some(value.to_owned());
            }
        }
        campaign
    }

    /// Whether any UTM parameter was found (click ids aside).
    pub fn has_utm(&self) -> bool {
        [
            &self.source,
            &self.medium,
            &self.name,
            &self.term,
            &self.content,
        ]
        .iter()
        .any(|f| f.is_some())
    }

    /// The Segment `context.campaign` object: `source`, `medium`, `name`, `term`,
    /// `content`, then each click id under its own name.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut object = Map::new();
        let utm = [
            ("source", &self.source),
            ("medium", &self.medium),
            ("name", &self.name),
            ("term", &self.term),
            ("content", &self.content),
        ];
        for (key, value) in utm {
            if let Some(v) = value {
                object.insert(key.into(), Value::String(v.clone()));
            }
        }
        for (key, value) in &self.click_ids {
            object.insert((*key).into(), Value::String(value.clone()));
        }
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm(c: &Campaign) -> [Option<&str>; 5] {
        [&c.source, &c.medium, &c.name, &c.term, &c.content].map(|f| f.as_deref())
    }

    #[test]
    fn reads_utm_parameters_percent_decoded() {
        let cases = [
            (
                "https://shop.example/?utm_source=news%20letter&utm_medium=email&utm_campaign=Black+Friday&utm_term=shoes&utm_content=hero",
                [Some("news letter"), Some("email"), Some("Black Friday"), Some("shoes"), Some("hero")],
            ),
            (
                "https://shop.example/p?UTM_Source=Google&utm_medium=cpc#utm_campaign=ignored",
                [Some("Google"), Some("cpc"), None, None, None],
            ),
            (
                "?utm_campaign=%C3%A9t%C3%A9&utm_campaign=second",
                [None, None, Some("été"), None, None],
            ),
            (
                "https://shop.example/?utm_source=&utm_source=fallback&utm_medium=%20",
                [Some("fallback"), None, None, None, None],
            ),
            ("https://shop.example/", [None; 5]),
            ("not a url", [None; 5]),
        ];
        for (url, want) in cases {
            assert_eq!(utm(&Campaign::from_url(url)), want, "{url}");
        }
    }

    #[test]
    fn notes_click_ids_once_each() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("https://x/?gclid=abc", &[("gclid", "abc")]),
            (
                "https://x/?fbclid=f1&msclkid=m1&fbclid=f2",
                &[("fbclid", "f1"), ("msclkid", "m1")],
            ),
            (
                "https://x/?GCLID=A&ttclid=t",
                &[("gclid", "A"), ("ttclid", "t")],
            ),
            ("https://x/?gclidx=1&clid=2", &[]),
        ];
        for (url, want) in cases {
            let got = Campaign::from_url(url);
            let got: Vec<(&str, &str)> = got
                .click_ids
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            assert_eq!(got, *want, "{url}");
        }
    }

    #[test]
    fn has_utm_ignores_click_ids() {
        assert!(!Campaign::from_url("https://x/?gclid=1").has_utm());
        assert!(Campaign::from_url("https://x/?utm_term=a").has_utm());
    }

    #[test]
    fn writes_segment_campaign_object() {
        let campaign = Campaign::from_url("https://x/?utm_campaign=spring&utm_source=g&gclid=G1");
        let json = Value::Object(campaign.to_json());
        assert_eq!(
            json,
            serde_json::json!({"source": "g", "name": "spring", "gclid": "G1"})
        );
    }
}
