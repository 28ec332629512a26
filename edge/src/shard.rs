//! Spreading keys over a fixed number of Durable Objects by a stable hash.

use std::collections::BTreeMap;

/// The shard of `key` among `shards`. FNV-1a: stable across deployments and versions,
/// which a std hasher is not, so a key always finds the object that holds it.
pub fn of(key: &str, shards: u64) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) % shards.max(1)
}

/// Groups keys by shard.
pub fn group(keys: &[String], shards: u64) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for key in keys {
        out.entry(of(key, shards)).or_default().push(key.clone());
    }
    out
}
