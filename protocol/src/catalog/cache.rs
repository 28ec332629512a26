//! What a queue consumer's isolate remembers of the catalog between deliveries: the items
//! it looked up, found or not, each for a short while. Most events name items that earlier
//! events named (a shop's catalog is small beside its traffic), so most deliveries enrich
//! without asking the one catalog store object, which would otherwise be on the path of
//! every delivery. An item changed by an upload, a feed or a delete is seen by enrichment
//! within [`FRESH_MS`].

use std::collections::HashMap;

use serde_json::{Map, Value};

/// How long a looked-up item (or its absence) is trusted.
pub const FRESH_MS: i64 = 60_000;

/// Most items remembered; beyond, the cache starts again empty (simpler than an LRU, and
/// a catalog this hot is rare: it costs one lookup per delivery until it fills again).
pub const MAX_ITEMS: usize = 20_000;

/// An item's fields (`None`: not in the catalog) and when they were read.
type Remembered = (Option<Map<String, Value>>, i64);

/// Items by `(kind, id)`.
#[derive(Debug, Default)]
pub struct ItemCache {
    items: HashMap<(String, String), Remembered>,
}

impl ItemCache {
    /// Of `pairs`, those not known or no longer fresh at `now`: what to ask the store.
    pub fn missing(&self, pairs: &[(String, String)], now: i64) -> Vec<(String, String)> {
        pairs
            .iter()
            .filter(|pair| {
                self.items
                    .get(*pair)
                    .is_none_or(|(_, read_at)| now - read_at > FRESH_MS)
            })
            .cloned()
            .collect()
    }

    /// Remembers the store's answer to `asked` at `now`: the `found` items, and every
    /// other asked pair as absent.
    pub fn remember(
        &mut self,
        asked: &[(String, String)],
        found: HashMap<(String, String), Map<String, Value>>,
        now: i64,
    ) {
        if self.items.len() + asked.len() > MAX_ITEMS {
            self.items.clear();
        }
        let mut found = found;
        for pair in asked {
            let fields = found.remove(pair);
            self.items.insert(pair.clone(), (fields, now));
        }
    }

    /// The fields of item `id` of `kind`, if it is known to be in the catalog.
    pub fn get(&self, kind: &str, id: &str) -> Option<&Map<String, Value>> {
        self.items
            .get(&(kind.to_owned(), id.to_owned()))
            .and_then(|(fields, _)| fields.as_ref())
    }

    /// Forgets everything (the kinds' settings changed: items may have new fields).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pair(kind: &str, id: &str) -> (String, String) {
        (kind.to_owned(), id.to_owned())
    }

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn items_found_or_not_are_asked_once_while_fresh() {
        let mut cache = ItemCache::default();
        let asked = vec![pair("products", "stove"), pair("products", "ghost")];
        assert_eq!(cache.missing(&asked, 1_000), asked, "nothing known yet");
        let found = HashMap::from([(pair("products", "stove"), fields(json!({"price": 59})))]);
        cache.remember(&asked, found, 1_000);
        assert_eq!(
            cache.missing(&asked, 1_000 + FRESH_MS),
            Vec::<(String, String)>::new()
        );
        assert_eq!(
            cache.get("products", "stove"),
            Some(&fields(json!({"price": 59})))
        );
        assert_eq!(cache.get("products", "ghost"), None, "known to be absent");
        let later = vec![pair("products", "stove"), pair("content", "guide")];
        assert_eq!(cache.missing(&later, 2_000), vec![pair("content", "guide")]);
    }

    #[test]
    fn what_is_stale_is_asked_again_and_replaced() {
        let mut cache = ItemCache::default();
        let asked = vec![pair("products", "stove")];
        cache.remember(&asked, HashMap::new(), 0);
        assert_eq!(cache.missing(&asked, FRESH_MS + 1), asked);
        let found = HashMap::from([(pair("products", "stove"), fields(json!({"price": 61})))]);
        cache.remember(&asked, found, FRESH_MS + 1);
        assert_eq!(
            cache.get("products", "stove"),
            Some(&fields(json!({"price": 61})))
        );
        cache.clear();
        assert_eq!(cache.missing(&asked, FRESH_MS + 2), asked);
    }

    #[test]
    fn a_full_cache_starts_again() {
        let mut cache = ItemCache::default();
        let many: Vec<_> = (0..MAX_ITEMS)
            .map(|i| pair("products", &i.to_string()))
            .collect();
        cache.remember(&many, HashMap::new(), 0);
        let one = vec![pair("products", "new")];
        cache.remember(&one, HashMap::new(), 0);
        assert_eq!(
            cache.missing(&many[..1], 0),
            many[..1].to_vec(),
            "forgotten"
        );
        assert!(cache.missing(&one, 0).is_empty());
    }
}
