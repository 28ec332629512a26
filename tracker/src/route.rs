//! Single-page-app route changes: which ones are a new page.

/// Whether moving from `previous` to `next` (full URLs) is a new page view.
///
/// Routers often call `replaceState` then `pushState` for one navigation, or push the
/// same URL again; the caller coalesces the calls of one task and asks once, so only a
/// real change of URL counts. A change of the `#fragment` alone counts only when
/// `track_hash` is set (for hash-routed apps).
pub fn is_new_page(previous: &str, next: &str, track_hash: bool) -> bool {
    if track_hash {
        previous != next
    } else {
        without_hash(previous) != without_hash(next)
    }
}

fn without_hash(url: &str) -> &str {
    crate::outbox::cut(url, b'#').map_or(url, |(before, _)| before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_table() {
        let cases = [
            ("https://s/a", "https://s/b", false, true),
            ("https://s/a", "https://s/a", false, false),
            ("https://s/a", "https://s/a?x=1", false, true),
            ("https://s/a", "https://s/a#top", false, false),
            ("https://s/a#one", "https://s/a#two", false, false),
            ("https://s/a#one", "https://s/a#two", true, true),
            ("https://s/a#one", "https://s/b#one", false, true),
        ];
        for (previous, next, track_hash, expected) in cases {
            assert_eq!(
                is_new_page(previous, next, track_hash),
                expected,
                "{previous} → {next}"
            );
        }
    }
}
