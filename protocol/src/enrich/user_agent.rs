//! User-Agent parsing: browser, operating system, device type, and bots.
//!
//! A small ordered table of substrings rather than a crate: the maintained parsers
//! (`woothee`, `uaparser`, `user-agent-parser`, `isbot`) all compile `regex` with
//! hundreds of patterns, which adds about a megabyte to the Worker's Wasm, paid on
//! every cold start. Analytics needs the families and major versions of the browsers
//! people use and a reliable bot flag, not every handset model; where a table here
//! is wrong, fixing it is adding one row.
//!
//! Order matters in every table: a Chromium-based browser also says `Chrome/` and
//! `Safari/`, so the more specific token is listed first.

/// How much of a User-Agent is read; real ones are well under this, and the cap keeps a
/// hostile multi-kilobyte header from costing more than a normal one.
pub const MAX_PARSED_BYTES: usize = 1024;

/// The kind of device a User-Agent describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// A desktop or laptop computer.
    Desktop,
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
    /// A crawler, a script or an automated browser.
    Bot,
    /// Anything else: TVs, consoles, unrecognised or missing User-Agents.
    Unknown,
}

impl DeviceType {
    /// The name written to `context.device.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Mobile => "mobile",
            Self::Tablet => "tablet",
            Self::Bot => "bot",
            Self::Unknown => "unknown",
        }
    }
}

/// A named piece of software with the version the User-Agent gives, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Software {
    /// Its family name, e.g. `Chrome` or `macOS`.
    pub name: &'static str,
    /// Its version, e.g. `120.0.6099.109` or `17.1`.
    pub version: Option<String>,
}

/// What a User-Agent string says about who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    /// The browser, when one is recognised.
    pub browser: Option<Software>,
    /// The operating system, when one is recognised.
    pub os: Option<Software>,
    /// The kind of device; `Bot` whenever `is_bot` is set.
    pub device: DeviceType,
    /// Whether it is a crawler, an HTTP library or an automated browser.
    pub is_bot: bool,
    /// The bot's name, when it is a known one.
    pub bot_name: Option<&'static str>,
}

/// Named bots, searched (lower-cased) in order: crawlers, link previews, monitors, HTTP
/// libraries, then headless and automation markers.
const BOTS: &[(&str, &str)] = &[
    ("adsbot-google", "AdsBot-Google"),
    ("mediapartners-google", "Mediapartners-Google"),
    ("google-inspectiontool", "Google-InspectionTool"),
    ("googleother", "GoogleOther"),
    ("storebot-google", "Storebot-Google"),
    ("feedfetcher-google", "FeedFetcher-Google"),
    ("apis-google", "APIs-Google"),
    ("google-read-aloud", "Google-Read-Aloud"),
    ("googlebot", "Googlebot"),
    ("chrome-lighthouse", "Lighthouse"),
    ("google page speed", "PageSpeed Insights"),
    ("bingpreview", "BingPreview"),
    ("bingbot", "Bingbot"),
    ("adidxbot", "AdIdxBot"),
    ("msnbot", "msnbot"),
    ("duckduckbot", "DuckDuckBot"),
    ("duckassistbot", "DuckAssistBot"),
    ("yandex.com/bots", "YandexBot"),
    ("baiduspider", "Baiduspider"),
    ("yahoo! slurp", "Yahoo! Slurp"),
    ("applebot", "Applebot"),
    ("petalbot", "PetalBot"),
    ("seznambot", "SeznamBot"),
    ("sogou web spider", "Sogou"),
    ("naverbot", "Yeti"),
    ("yeti/", "Yeti"),
    ("qwantify", "Qwantify"),
    ("facebookexternalhit", "facebookexternalhit"),
    ("facebookcatalog", "facebookcatalog"),
    ("meta-externalagent", "meta-externalagent"),
    ("twitterbot", "Twitterbot"),
    ("linkedinbot", "LinkedInBot"),
    ("slackbot", "Slackbot"),
    ("slack-imgproxy", "Slackbot"),
    ("discordbot", "Discordbot"),
    ("telegrambot", "TelegramBot"),
    ("whatsapp", "WhatsApp"),
    ("pinterestbot", "Pinterestbot"),
    ("redditbot", "redditbot"),
    ("embedly", "Embedly"),
    ("skypeuripreview", "SkypeUriPreview"),
    ("gptbot", "GPTBot"),
    ("chatgpt-user", "ChatGPT-User"),
    ("oai-searchbot", "OAI-SearchBot"),
    ("claudebot", "ClaudeBot"),
    ("claude-user", "Claude-User"),
    ("anthropic-ai", "anthropic-ai"),
    ("perplexitybot", "PerplexityBot"),
    ("ccbot", "CCBot"),
    ("bytespider", "Bytespider"),
    ("amazonbot", "Amazonbot"),
    ("ahrefsbot", "AhrefsBot"),
    ("semrushbot", "SemrushBot"),
    ("mj12bot", "MJ12bot"),
    ("dotbot", "DotBot"),
    ("ia_archiver", "ia_archiver"),
    ("archive.org_bot", "archive.org_bot"),
    ("uptimerobot", "UptimeRobot"),
    ("pingdom", "Pingdom"),
    ("statuscake", "StatusCake"),
    ("site24x7", "Site24x7"),
    ("datadogsynthetics", "Datadog Synthetics"),
    ("newrelicpinger", "New Relic"),
    ("gtmetrix", "GTmetrix"),
    ("ptst/", "WebPageTest"),
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("python-requests", "python-requests"),
    ("python-urllib", "Python-urllib"),
    ("python-httpx", "python-httpx"),
    ("aiohttp", "aiohttp"),
    ("scrapy", "Scrapy"),
    ("go-http-client", "Go-http-client"),
    ("apache-httpclient", "Apache-HttpClient"),
    ("java/", "Java"),
    ("libwww-perl", "libwww-perl"),
    ("guzzlehttp", "GuzzleHttp"),
    ("node-fetch", "node-fetch"),
    ("axios/", "axios"),
    ("undici", "undici"),
    ("postmanruntime", "Postman"),
    ("insomnia/", "Insomnia"),
    ("httpie/", "HTTPie"),
    ("headlesschrome", "HeadlessChrome"),
    ("phantomjs", "PhantomJS"),
    ("slimerjs", "SlimerJS"),
    ("puppeteer", "Puppeteer"),
    ("playwright", "Playwright"),
    ("selenium", "Selenium"),
    ("webdriver", "WebDriver"),
    ("cypress/", "Cypress"),
    ("jsdom/", "jsdom"),
    ("htmlunit", "HtmlUnit"),
    ("zombie.js", "Zombie.js"),
];

/// Words that mark an unnamed bot wherever they appear.
const BOT_WORDS: &[&str] = &[
    "crawler",
    "crawling",
    "spider",
    "scraper",
    "headless",
    "httpclient",
    "http-client",
    "http_client",
    "monitoring",
];

/// Phone brands whose model names end in "bot", which the generic `bot` word would catch.
const NOT_BOTS: &[&str] = &["cubot"];

/// Browsers: a lower-case token whose version follows it directly, and the family name.
const BROWSERS: &[(&str, &str)] = &[
    ("edg/", "Edge"),
    ("edga/", "Edge"),
    ("edgios/", "Edge"),
    ("edge/", "Edge"),
    ("opr/", "Opera"),
    ("opt/", "Opera"),
    ("opios/", "Opera"),
    ("samsungbrowser/", "Samsung Internet"),
    ("yabrowser/", "Yandex Browser"),
    ("ucbrowser/", "UC Browser"),
    ("vivaldi/", "Vivaldi"),
    ("fbav/", "Facebook"),
    ("instagram ", "Instagram"),
    ("fxios/", "Firefox"),
    ("crios/", "Chrome"),
    ("headlesschrome/", "HeadlessChrome"),
    ("firefox/", "Firefox"),
    ("chromium/", "Chromium"),
    ("chrome/", "Chrome"),
    ("msie ", "Internet Explorer"),
];

/// Devices that are neither computers, phones nor tablets, checked first because their
/// User-Agents often also name a desktop or Android platform.
const OTHER_DEVICES: &[&str] = &[
    "smart-tv",
    "smarttv",
    "googletv",
    "android tv",
    "appletv",
    "crkey",
    "xbox",
    "playstation",
    "nintendo",
];

/// Parses a User-Agent header; an empty or unrecognised one gives `Unknown` with nothing
/// named, never an error.
pub fn parse(header: &str) -> UserAgent {
    let lower: Vec<u8> = header
        .bytes()
        .take(MAX_PARSED_BYTES)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    let ua = lower.as_slice();
    let (is_bot, bot_name) = detect_bot(ua);
    UserAgent {
        browser: browser(ua),
        os: os(ua),
        device: if is_bot { DeviceType::Bot } else { device(ua) },
        is_bot,
        bot_name,
    }
}

fn detect_bot(ua: &[u8]) -> (bool, Option<&'static str>) {
    if let Some((_, name)) = BOTS.iter().find(|(token, _)| contains(ua, token)) {
        return (true, Some(name));
    }
    let generic = BOT_WORDS.iter().any(|w| contains(ua, w)) || has_bot_word(ua);
    (generic, None)
}

/// Finds `bot` ending a word (`FooBot/1.0`, `some-bot;`), but not inside one (`Abbott`)
/// nor in a phone brand (`CUBOT_X19`).
fn has_bot_word(ua: &[u8]) -> bool {
    if NOT_BOTS.iter().any(|w| contains(ua, w)) {
        return false;
    }
    let mut from = 0;
    while let Some(at) = find(&ua[from..], "bot") {
        let end = from + at + 3;
        if ua.get(end).is_none_or(|c| !c.is_ascii_alphabetic()) {
            return true;
        }
        from = end;
    }
    false
}

fn browser(ua: &[u8]) -> Option<Software> {
    if let Some((token, name)) = BROWSERS.iter().find(|(token, _)| contains(ua, token)) {
        return Some(Software {
            name,
            version: version_after(ua, token),
        });
    }
    if contains(ua, "trident/") {
        // IE 11 dropped `MSIE`; its version is the `rv:` of the Trident engine.
        return Some(Software {
            name: "Internet Explorer",
            version: version_after(ua, "rv:"),
        });
    }
    if contains(ua, "safari/") && contains(ua, "version/") {
        let name = if contains(ua, "android") {
            "Android Browser"
        } else {
            "Safari"
        };
        return Some(Software {
            name,
            version: version_after(ua, "version/"),
        });
    }
    None
}

fn os(ua: &[u8]) -> Option<Software> {
    let named = |name, version| Some(Software { name, version });
    if contains(ua, "windows phone") {
        return named(
            "Windows Phone",
            version_after(ua, "windows phone os ").or_else(|| version_after(ua, "windows phone ")),
        );
    }
    if let Some(nt) = version_after(ua, "windows nt ") {
        // The NT kernel number, not the marketing name, is what the header carries;
        // Windows 11 still says 10.0.
        let version = match nt.as_str() {
            "10.0" => "10",
            "6.3" => "8.1",
            "6.2" => "8",
            "6.1" => "7",
            "6.0" => "Vista",
            "5.1" | "5.2" => "XP",
            other => other,
        };
        return named("Windows", Some(version.to_owned()));
    }
    if contains(ua, "windows") {
        return named("Windows", None);
    }
    if ["iphone", "ipad", "ipod"].iter().any(|d| contains(ua, d)) {
        let version = version_after(ua, "iphone os ").or_else(|| version_after(ua, "cpu os "));
        return named("iOS", version);
    }
    if contains(ua, "android") {
        return named("Android", version_after(ua, "android "));
    }
    if contains(ua, "cros ") {
        return named("Chrome OS", None);
    }
    if contains(ua, "mac os x") {
        return named("macOS", version_after(ua, "mac os x "));
    }
    if contains(ua, "macintosh") {
        return named("macOS", None);
    }
    if contains(ua, "linux") || contains(ua, "x11") {
        return named("Linux", None);
    }
    None
}

fn device(ua: &[u8]) -> DeviceType {
    let any = |words: &[&str]| words.iter().any(|w| contains(ua, w));
    if any(OTHER_DEVICES) {
        DeviceType::Unknown
    } else if any(&["ipad", "tablet", "kindle", "silk/", "playbook"])
        || (contains(ua, "android") && !contains(ua, "mobi"))
    {
        // Android phones say `Mobile`; Android tablets do not.
        DeviceType::Tablet
    } else if any(&[
        "mobi",
        "iphone",
        "ipod",
        "windows phone",
        "blackberry",
        "bb10",
        "opera mini",
    ]) {
        DeviceType::Mobile
    } else if any(&["windows", "macintosh", "x11", "cros ", "linux"]) {
        DeviceType::Desktop
    } else {
        DeviceType::Unknown
    }
}

/// The dotted version right after `token` (`_` read as `.`, as Apple writes them).
fn version_after(ua: &[u8], token: &str) -> Option<String> {
    let start = find(ua, token)? + token.len();
    let version: String = ua[start..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'_'))
        .take(32)
        .map(|&c| if c == b'_' { '.' } else { char::from(c) })
        .collect();
    let version = version.trim_end_matches('.');
    (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| version.to_owned())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    find(haystack, needle).is_some()
}

fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn software(s: &Option<Software>) -> Option<(&str, Option<&str>)> {
        s.as_ref().map(|s| (s.name, s.version.as_deref()))
    }

    #[test]
    fn parses_common_browsers_and_systems() {
        use DeviceType::*;
        // (UA, browser, browser version, OS, OS version, device)
        let cases: &[(&str, &str, &str, &str, &str, DeviceType)] = &[
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
                "Chrome", "120.0.6099.109", "Windows", "10", Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
                "Edge", "120.0.2210.91", "Windows", "10", Desktop,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                "Safari", "17.1", "macOS", "10.15.7", Desktop,
            ),
            (
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "Firefox", "121.0", "Linux", "", Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
                "Safari", "17.1.2", "iOS", "17.1.2", Mobile,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/119.0.6045.169 Mobile/15E148 Safari/604.1",
                "Chrome", "119.0.6045.169", "iOS", "16.6", Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
                "Chrome", "120.0.6099.144", "Android", "14", Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
                "Chrome", "119.0.0.0", "Android", "13", Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
                "Samsung Internet", "23.0", "Android", "13", Mobile,
            ),
            (
                "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
                "Firefox", "121.0", "Android", "14", Mobile,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
                "Opera", "106.0.0.0", "Windows", "10", Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
                "Internet Explorer", "11.0", "Windows", "7", Desktop,
            ),
            (
                "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
                "Internet Explorer", "10.0", "Windows", "8", Desktop,
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome", "120.0.0.0", "Chrome OS", "", Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.41.110;]",
                "Facebook", "442.0.0.41.110", "iOS", "17.0", Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
                "Android Browser", "4.0", "Android", "4.0.3", Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36",
                "Chrome", "120.0.6099.230", "Android", "9", Tablet,
            ),
        ];
        for (ua, browser, bv, os, ov, device) in cases {
            let got = parse(ua);
            let opt = |v: &'static str| (!v.is_empty()).then_some(v);
            assert_eq!(software(&got.browser), Some((*browser, opt(bv))), "{ua}");
            assert_eq!(software(&got.os), Some((*os, opt(ov))), "{ua}");
            assert_eq!(got.device, *device, "{ua}");
            assert!(!got.is_bot, "{ua}");
        }
    }

    #[test]
    fn detects_named_bots_and_http_libraries() {
        let cases = [
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
            ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
            ("AdsBot-Google (+http://www.google.com/adsbot.html)", "AdsBot-Google"),
            ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "Bingbot"),
            ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", "YandexBot"),
            ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", "Baiduspider"),
            ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "DuckDuckBot"),
            ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "facebookexternalhit"),
            ("Twitterbot/1.0", "Twitterbot"),
            ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Slackbot"),
            ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", "GPTBot"),
            ("curl/8.4.0", "curl"),
            ("Wget/1.21.4", "Wget"),
            ("python-requests/2.31.0", "python-requests"),
            ("Go-http-client/2.0", "Go-http-client"),
            ("PostmanRuntime/7.36.0", "Postman"),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36", "HeadlessChrome"),
            ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", "PhantomJS"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Cypress/13.6.0 Chrome/118.0.5993.159 Electron/27.1.3 Safari/537.36", "Cypress"),
            ("Mozilla/5.0 (linux) AppleWebKit/537.36 (KHTML, like Gecko) jsdom/22.1.0", "jsdom"),
            ("Mozilla/5.0 (Linux; Android 7.0; Moto G (4)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse", "Lighthouse"),
        ];
        for (ua, name) in cases {
            let got = parse(ua);
            assert!(got.is_bot, "{ua}");
            assert_eq!(got.bot_name, Some(name), "{ua}");
            assert_eq!(got.device, DeviceType::Bot, "{ua}");
        }
    }

    #[test]
    fn detects_unnamed_bots_by_generic_words() {
        for ua in [
            "Mozilla/5.0 (compatible; SomeNewBot/0.1; +https://example.com/bot)",
            "acme-crawler/2.0",
            "Mozilla/5.0 (compatible; MegaIndex.ru/2.0; +http://megaindex.com/crawler)",
            "FriendlySpider/1.0",
            "my-link-bot",
            "Mozilla/5.0 (X11; Linux x86_64) Headless Firefox",
        ] {
            let got = parse(ua);
            assert!(got.is_bot, "{ua}");
            assert_eq!(got.bot_name, None, "{ua}");
        }
    }

    #[test]
    fn bot_word_inside_names_is_not_a_bot() {
        for ua in [
            "Mozilla/5.0 (Linux; Android 10; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 12; Abbott Reader) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        ] {
            assert!(!parse(ua).is_bot, "{ua}");
        }
    }

    #[test]
    fn tvs_consoles_and_garbage_are_unknown_devices() {
        for ua in [
            "",
            "   ",
            "\u{0}\u{1}ÿ",
            "SomeApp/1.0",
            "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.128 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131",
            "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
        ] {
            let got = parse(ua);
            assert_eq!(got.device, DeviceType::Unknown, "{ua}");
            assert!(!got.is_bot, "{ua}");
        }
        assert_eq!(parse("").browser, None);
        assert_eq!(parse("").os, None);
    }

    #[test]
    fn huge_header_reads_only_its_start() {
        let ua = format!(
            "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 {}Googlebot",
            "x".repeat(10 * MAX_PARSED_BYTES)
        );
        let got = parse(&ua);
        assert!(!got.is_bot);
        assert_eq!(software(&got.browser), Some(("Chrome", Some("120.0"))));
    }

    #[test]
    fn device_type_names_are_stable() {
        let cases = [
            (DeviceType::Desktop, "desktop"),
            (DeviceType::Mobile, "mobile"),
            (DeviceType::Tablet, "tablet"),
            (DeviceType::Bot, "bot"),
            (DeviceType::Unknown, "unknown"),
        ];
        for (device, name) in cases {
            assert_eq!(device.as_str(), name);
        }
    }
}
