//! Referrer classification: which kind of source sent a visit.
//!
//! Campaign tags say what the marketer meant and win over the referrer, since ad and
//! email clicks often arrive with a missing or misleading one (webmail strips it, ad
//! redirects replace it). Otherwise the referrer's host is looked up in a short table
//! of the sources that matter for channel reports; anything else is `Other`, with its
//! host kept so reports can still group it.

use super::url;

/// The kind of source a visit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrerKind {
    /// A search engine's results.
    Search,
    /// A social network or video site.
    Social,
    /// A webmail client or an email campaign.
    Email,
    /// An ad: a paid `utm_medium`, an ad click id, or an ad network's redirect.
    Paid,
    /// Another page of the same site.
    Internal,
    /// No referrer: typed, bookmarked, or from an app that sends none.
    Direct,
    /// Any other site.
    Other,
}

impl ReferrerKind {
    /// The name written to `context.referrerType`, also a counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::Social => "social",
            Self::Email => "email",
            Self::Paid => "paid",
            Self::Internal => "internal",
            Self::Direct => "direct",
            Self::Other => "other",
        }
    }
}

/// A classified referrer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Which kind of source.
    pub kind: ReferrerKind,
    /// The referrer's host, lower-cased, when it had a readable one.
    pub host: Option<String>,
}

/// Known sources, checked in order; `name.*` matches the name under any country domain
/// (`google.co.uk`, `yandex.com.tr`), any other entry matches itself and its subdomains.
const SOURCES: &[(&str, ReferrerKind)] = {
    use ReferrerKind::*;
    &[
        // Email first: webmail lives on search engines' domains.
        ("mail.google.com", Email),
        ("outlook.live.com", Email),
        ("outlook.office.com", Email),
        ("outlook.office365.com", Email),
        ("com.google.android.gm", Email),
        ("googleadservices.com", Paid),
        ("doubleclick.net", Paid),
        ("googlesyndication.com", Paid),
        ("google.*", Search),
        ("com.google.android.googlequicksearchbox", Search),
        ("bing.com", Search),
        ("duckduckgo.com", Search),
        ("yahoo.*", Search),
        ("baidu.com", Search),
        ("yandex.*", Search),
        ("ya.ru", Search),
        ("ecosia.org", Search),
        ("search.brave.com", Search),
        ("qwant.com", Search),
        ("startpage.com", Search),
        ("kagi.com", Search),
        ("naver.com", Search),
        ("seznam.cz", Search),
        ("sogou.com", Search),
        ("ask.com", Search),
        ("facebook.com", Social),
        ("fb.com", Social),
        ("fb.me", Social),
        ("messenger.com", Social),
        ("com.facebook.katana", Social),
        ("instagram.com", Social),
        ("threads.net", Social),
        ("t.co", Social),
        ("twitter.com", Social),
        ("x.com", Social),
        ("linkedin.com", Social),
        ("lnkd.in", Social),
        ("com.linkedin.android", Social),
        ("reddit.com", Social),
        ("redd.it", Social),
        ("pinterest.*", Social),
        ("pin.it", Social),
        ("youtube.com", Social),
        ("youtu.be", Social),
        ("tiktok.com", Social),
        ("snapchat.com", Social),
        ("tumblr.com", Social),
        ("quora.com", Social),
        ("vk.com", Social),
        ("weibo.com", Social),
        ("bsky.app", Social),
        ("mastodon.social", Social),
        ("discord.com", Social),
        ("t.me", Social),
        ("wa.me", Social),
    ]
};

/// Second-level labels under which a country code domain registers names
/// (`example.co.uk`, `example.com.au`), for telling a site apart from its subdomains.
const COUNTRY_SECOND_LEVELS: &[&str] = &[
    "co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "ltd", "plc",
    "sch", "nom",
];

/// Hosting domains where each subdomain is a different site.
const SHARED_HOSTS: &[&str] = &[
    "github.io",
    "gitlab.io",
    "pages.dev",
    "workers.dev",
    "netlify.app",
    "vercel.app",
    "web.app",
    "firebaseapp.com",
    "appspot.com",
    "herokuapp.com",
    "azurewebsites.net",
    "cloudfront.net",
    "blogspot.com",
    "wordpress.com",
    "myshopify.com",
];

/// Classifies a visit from its `referrer` URL, the `page_url` it landed on, the
/// campaign's `medium` (the client's or the URL's `utm_medium`) and whether the URL
/// carried an ad click id.
pub fn classify(
    referrer: Option<&str>,
    page_url: Option<&str>,
    medium: Option<&str>,
    click_id: bool,
) -> Referrer {
    let host = referrer.and_then(url::host);
    let medium = medium.map(|m| m.trim().to_ascii_lowercase());
    let kind = match medium.as_deref() {
        _ if click_id => ReferrerKind::Paid,
        Some(m) if is_paid_medium(m) => ReferrerKind::Paid,
        Some("email" | "e-mail" | "e_mail" | "e mail" | "newsletter") => ReferrerKind::Email,
        Some(
            "social" | "social-network" | "social-media" | "social network" | "social media" | "sm",
        ) => ReferrerKind::Social,
        _ => match &host {
            None => ReferrerKind::Direct,
            Some(h) => by_host(h, page_url),
        },
    };
    Referrer { kind, host }
}

fn by_host(host: &str, page_url: Option<&str>) -> ReferrerKind {
    let page_host = page_url.and_then(url::host);
    if page_host.is_some_and(|page| site(&page) == site(host)) {
        return ReferrerKind::Internal;
    }
    if host.starts_with("mail.") || host.starts_with("webmail.") {
        return ReferrerKind::Email;
    }
    SOURCES
        .iter()
        .find(|(pattern, _)| matches(host, pattern))
        .map_or(ReferrerKind::Other, |(_, kind)| *kind)
}

fn is_paid_medium(medium: &str) -> bool {
    medium.starts_with("paid")
        || matches!(
            medium,
            "cpc" | "ppc" | "cpm" | "cpv" | "cpa" | "cpp" | "display" | "banner" | "retargeting"
        )
}

fn matches(host: &str, pattern: &str) -> bool {
    if let Some(brand) = pattern.strip_suffix(".*") {
        // The brand label followed by a top-level domain of one or two short labels.
        let labels: Vec<&str> = host.split('.').collect();
        return labels.iter().enumerate().any(|(i, label)| {
            let tld = &labels[i + 1..];
            *label == brand
                && (1..=2).contains(&tld.len())
                && tld.iter().all(|l| (2..=3).contains(&l.len()))
        });
    }
    host.strip_suffix(pattern)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// The registrable part of a host (`shop.example.co.uk` → `example.co.uk`), by a rule of
/// thumb rather than the full public suffix list, which would cost the Worker ~200 KB.
fn site(host: &str) -> &str {
    // An IP address (v6 has colons, v4 only digits and dots) is a site of its own.
    if host.contains(':') || host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if let Some(shared) = SHARED_HOSTS.iter().find(|s| matches(host, s)) {
        shared.split('.').count() + 1
    } else if n >= 3 && labels[n - 1].len() == 2 && COUNTRY_SECOND_LEVELS.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    // `get` rather than indexing: the dot is ASCII, so it never fails, and the Worker
    // is spared the formatting code of a slicing panic.
    match host.rmatch_indices('.').nth(keep - 1) {
        Some((dot, _)) => host.get(dot + 1..).unwrap_or(host),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReferrerKind::*;

    const PAGE: Option<&str> = Some("https://www.shop.example/products/1");

    #[test]
    fn classifies_referrer_hosts() {
        let cases = [
            ("https://www.google.com/", Search, "www.google.com"),
            (
                "https://www.google.co.uk/search?q=shoes",
                Search,
                "www.google.co.uk",
            ),
            ("https://google.com.br/", Search, "google.com.br"),
            ("https://www.bing.com/search?q=x", Search, "www.bing.com"),
            ("https://duckduckgo.com/", Search, "duckduckgo.com"),
            ("https://search.yahoo.co.jp/", Search, "search.yahoo.co.jp"),
            ("https://www.baidu.com/link?url=x", Search, "www.baidu.com"),
            ("https://yandex.ru/search/?text=x", Search, "yandex.ru"),
            (
                "https://www.ecosia.org/search?q=x",
                Search,
                "www.ecosia.org",
            ),
            (
                "android-app://com.google.android.googlequicksearchbox/",
                Search,
                "com.google.android.googlequicksearchbox",
            ),
            ("https://l.facebook.com/l.php?u=x", Social, "l.facebook.com"),
            ("https://lm.facebook.com/", Social, "lm.facebook.com"),
            ("https://l.instagram.com/", Social, "l.instagram.com"),
            ("https://t.co/abc", Social, "t.co"),
            ("https://x.com/someone", Social, "x.com"),
            ("https://www.linkedin.com/feed/", Social, "www.linkedin.com"),
            ("https://out.reddit.com/t3_x", Social, "out.reddit.com"),
            ("https://www.pinterest.de/pin/1", Social, "www.pinterest.de"),
            ("https://m.youtube.com/watch?v=x", Social, "m.youtube.com"),
            ("https://www.tiktok.com/", Social, "www.tiktok.com"),
            (
                "https://mail.google.com/mail/u/0/",
                Email,
                "mail.google.com",
            ),
            (
                "https://outlook.live.com/mail/0/",
                Email,
                "outlook.live.com",
            ),
            (
                "https://mail.yahoo.com/d/folders/1",
                Email,
                "mail.yahoo.com",
            ),
            ("https://webmail.gmx.net/", Email, "webmail.gmx.net"),
            (
                "https://googleads.g.doubleclick.net/pagead",
                Paid,
                "googleads.g.doubleclick.net",
            ),
            (
                "https://news.ycombinator.com/item?id=1",
                Other,
                "news.ycombinator.com",
            ),
            ("https://googleblog.example/", Other, "googleblog.example"),
            ("https://box.com/", Other, "box.com"),
            (
                "https://www.google.example.org/",
                Other,
                "www.google.example.org",
            ),
        ];
        for (referrer, kind, host) in cases {
            let got = classify(Some(referrer), PAGE, None, false);
            assert_eq!(got.kind, kind, "{referrer}");
            assert_eq!(got.host.as_deref(), Some(host), "{referrer}");
        }
    }

    #[test]
    fn same_site_is_internal_with_or_without_www() {
        let cases = [
            (
                "https://www.shop.example/",
                "https://www.shop.example/cart",
                Internal,
            ),
            (
                "https://shop.example/",
                "https://www.shop.example/",
                Internal,
            ),
            (
                "http://WWW.Shop.Example:8080/x",
                "https://shop.example/",
                Internal,
            ),
            (
                "https://blog.shop.example/post",
                "https://www.shop.example/",
                Internal,
            ),
            ("https://www.shop.co.uk/", "https://shop.co.uk/", Internal),
            ("https://other.co.uk/", "https://shop.co.uk/", Other),
            ("https://alice.github.io/", "https://bob.github.io/", Other),
            (
                "https://bob.github.io/a",
                "https://bob.github.io/b",
                Internal,
            ),
            (
                "http://127.0.0.1:8787/",
                "http://127.0.0.1:8787/cart",
                Internal,
            ),
            (
                "http://localhost:8787/",
                "http://localhost:8787/cart",
                Internal,
            ),
            (
                "https://www.google.com/",
                "https://www.google.com/",
                Internal,
            ),
        ];
        for (referrer, page, kind) in cases {
            assert_eq!(
                classify(Some(referrer), Some(page), None, false).kind,
                kind,
                "{referrer} → {page}"
            );
        }
    }

    #[test]
    fn no_referrer_is_direct() {
        for referrer in [
            None,
            Some(""),
            Some("  "),
            Some("about:blank"),
            Some("/relative"),
        ] {
            let got = classify(referrer, PAGE, None, false);
            assert_eq!(
                got,
                Referrer {
                    kind: Direct,
                    host: None
                },
                "{referrer:?}"
            );
        }
    }

    #[test]
    fn campaign_tags_win_over_the_referrer() {
        let google = Some("https://www.google.com/");
        let cases = [
            (google, Some("cpc"), false, Paid),
            (None, Some("PPC"), false, Paid),
            (google, Some("paid_social"), false, Paid),
            (google, Some("display"), false, Paid),
            (google, None, true, Paid),
            (None, Some("organic"), true, Paid),
            (None, Some("email"), false, Email),
            (
                Some("https://www.shop.example/"),
                Some("email"),
                false,
                Email,
            ),
            (None, Some("social"), false, Social),
            (google, Some("organic"), false, Search),
            (None, Some("referral"), false, Direct),
        ];
        for (referrer, medium, click_id, kind) in cases {
            let got = classify(referrer, PAGE, medium, click_id);
            assert_eq!(got.kind, kind, "{referrer:?} {medium:?} {click_id}");
        }
    }

    #[test]
    fn kind_names_are_stable() {
        let cases = [
            (Search, "search"),
            (Social, "social"),
            (Email, "email"),
            (Paid, "paid"),
            (Internal, "internal"),
            (Direct, "direct"),
            (Other, "other"),
        ];
        for (kind, name) in cases {
            assert_eq!(kind.as_str(), name);
        }
    }
}
