//! The two things enrichment reads from a URL: its host and its query parameters.
//!
//! Hand-written rather than pulled from the `url` crate: campaign and referrer rules only
//! need to split a URL, never to build or normalise one, and a forgiving splitter suits
//! what browsers put in `document.referrer` better than a strict WHATWG parser would.

/// The host of an absolute (`scheme://`) or protocol-relative (`//`) URL, lower-cased,
/// without user info, port or trailing dot; `None` for a relative URL or an empty host.
pub fn host(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => url.strip_prefix("//")?,
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        // An IPv6 literal keeps its colons; only what follows `]` can be a port.
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.');
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return None;
    }
    // Browsers write hosts in ASCII (punycode for international names), so ASCII
    // lower-casing suffices and spares the Worker Unicode case tables.
    Some(host.to_ascii_lowercase())
}

/// The decoded `key=value` pairs of a URL's query string, in order; a bare query string
/// such as `?a=1` (what `location.search` holds) works too.
pub fn query_pairs(url: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+` as a space, the form encoding of query strings; a `%`
/// not followed by two hex digits is kept as it is, and invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let d = *digit?;
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_strips_scheme_user_port_and_case() {
        let cases = [
            ("https://www.Google.com/search?q=x", Some("www.google.com")),
            ("http://user:pw@shop.example:8080/a", Some("shop.example")),
            ("//cdn.example/x.js", Some("cdn.example")),
            ("https://example.com.", Some("example.com")),
            ("https://[2001:db8::1]:443/", Some("2001:db8::1")),
            (
                "android-app://com.google.android.gm/",
                Some("com.google.android.gm"),
            ),
            ("https://example.com?utm_source=x", Some("example.com")),
            ("https://example.com#top", Some("example.com")),
            ("/relative/path", None),
            ("example.com/no-scheme", None),
            ("https://", None),
            ("", None),
            ("1http://bad-scheme.example/", None),
        ];
        for (url, want) in cases {
            assert_eq!(host(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn query_pairs_decodes_in_order_and_ignores_fragment() {
        let pairs: Vec<_> =
            query_pairs("https://x/?a=1&b=hello+world&c=%C3%A9t%C3%A9&flag&&d=x#e=5").collect();
        let want = [
            ("a", "1"),
            ("b", "hello world"),
            ("c", "été"),
            ("flag", ""),
            ("d", "x"),
        ];
        assert_eq!(pairs.len(), want.len());
        for ((k, v), (wk, wv)) in pairs.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn query_pairs_reads_a_bare_search_string() {
        let pairs: Vec<_> = query_pairs("?utm_source=news").collect();
        assert_eq!(pairs, [("utm_source".to_owned(), "news".to_owned())]);
        assert_eq!(query_pairs("https://x/no-query").count(), 0);
    }

    #[test]
    fn percent_decode_keeps_broken_escapes() {
        let cases = [
            ("100%", "100%"),
            ("%zz", "%zz"),
            ("%4", "%4"),
            ("a%2Bb", "a+b"),
            ("%FF", "\u{fffd}"),
        ];
        for (input, want) in cases {
            assert_eq!(percent_decode(input), want, "{input}");
        }
    }
}
