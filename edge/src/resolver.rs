//! Identity resolution in the store: which profile each event belongs to, merging profiles
//! and linking identifiers on the way, by the pure rule `cdp_protocol::identity::plan`.
//!
//! Events are resolved oldest first. The index is read once for every identifier of the
//! batch; merges are applied as they are planned (copy, forward, re-point the index), so
//! a retry after a failure finds the work done or redoes it harmlessly.

use std::collections::{BTreeMap, BTreeSet};

use cdp_protocol::event::Event;
use cdp_protocol::identity::{identifiers_of, plan, Identifier, Rules};
use worker::{Env, Result};

use crate::identity_index;
use crate::profile_store::{self, IdentityRow};
use crate::stats::Counts;

/// Events and new identifier links, by profile id.
#[derive(Default)]
pub struct Routed {
    /// Events to store, by profile.
    pub events: BTreeMap<String, Vec<Event>>,
    /// Identifiers to link, by profile.
    pub links: BTreeMap<String, Vec<IdentityRow>>,
    /// Events of erased people, dropped: not stored, not archived.
    pub suppressed: BTreeSet<String>,
}

/// A new profile's id, derived from the event and identifier that created it, so a retry
/// of the same delivery creates the same profile rather than a second one.
pub fn new_profile_id(message_id: &str, id: &Identifier) -> String {
    let text = [message_id, "\u{1f}", &id.key()].concat();
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "p-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x84222325cbf29ce4)
    )
}

/// Follows forwards of merged profiles to the profile that holds the person now.
async fn current(
    env: &Env,
    profile: &str,
    holdings: &mut BTreeMap<String, BTreeSet<Identifier>>,
    rules: &mut Rules,
) -> Result<String> {
    let mut profile = profile.to_owned();
    for _ in 0..8 {
        if holdings.contains_key(&profile) {
            return Ok(profile);
        }
        let held = profile_store::holding(env, &profile).await?;
        match held.merged_into {
            Some(next) => profile = next,
            None => {
                holdings.insert(profile.clone(), held.ids.into_iter().collect());
                rules
                    .separate
                    .extend(held.apart.iter().filter_map(|(a, b)| {
                        Some((Identifier::from_key(a)?, Identifier::from_key(b)?))
                    }));
                return Ok(profile);
            }
        }
    }
    Ok(profile)
}

/// Resolves `events` to profiles. Events without a usable identifier (only blocked values)
/// link nothing and are not stored; they are counted as `unlinked`.
pub async fn resolve(
    env: &Env,
    mut events: Vec<Event>,
    rules: &Rules,
    counts: &mut Counts,
) -> Result<Routed> {
    // Oldest first; a stable sort keeps the arrival order of events of the same millisecond.
    events.sort_by_key(|e| e.timestamp);
    let ids_of: Vec<Vec<Identifier>> = events
        .iter()
        .map(|e| {
            identifiers_of(e, &rules.identifiers)
                .into_iter()
                .filter(|id| rules.admits(id))
                .collect()
        })
        .collect();
    // Each identifier's own key, and its value under any kind (how erasure suppresses).
    let keys: Vec<String> = ids_of
        .iter()
        .flatten()
        .flat_map(|id| [id.key(), id.any_kind_key()])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = identity_index::lookup(env, &keys, true).await?;
    let suppressed: BTreeSet<String> = known.suppressed.into_iter().collect();
    // The rules, plus the pairs the involved profiles were told to keep apart (unmerges).
    let mut rules = rules.clone();
    let indexed = known.profiles;

    let mut holdings: BTreeMap<String, BTreeSet<Identifier>> = BTreeMap::new();
    let mut home: BTreeMap<Identifier, String> = BTreeMap::new();
    let mut repoint: BTreeMap<String, String> = BTreeMap::new();
    for id in ids_of.iter().flatten() {
        if let Some(profile) = indexed.get(&id.key()) {
            let now = current(env, profile, &mut holdings, &mut rules).await?;
            if &now != profile {
                repoint.insert(id.key(), now.clone());
            }
            home.insert(id.clone(), now);
        }
    }

    let rules = &rules;
    let mut routed = Routed::default();
    for (event, ids) in events.into_iter().zip(ids_of) {
        if ids.is_empty() {
            *counts.entry("unlinked".into()).or_default() += 1;
            continue;
        }
        if ids
            .iter()
            .any(|id| suppressed.contains(&id.key()) || suppressed.contains(&id.any_kind_key()))
        {
            // An erased person: never stored, never re-created.
            *counts.entry("suppressed".into()).or_default() += 1;
            routed.suppressed.insert(event.message_id.clone());
            continue;
        }
        let step = plan(&ids, &home, &holdings, rules);
        let target = match (&step.target, step.link.first()) {
            (Some(target), _) => target.clone(),
            (None, Some(first)) => new_profile_id(&event.message_id, first),
            (None, None) => {
                *counts.entry("unlinked".into()).or_default() += 1;
                continue;
            }
        };
        holdings.entry(target.clone()).or_default();
        for loser in &step.merge {
            profile_store::merge(env, loser, &target, &event.message_id, event.timestamp).await?;
            *counts.entry("merges".into()).or_default() += 1;
            let moved = holdings.remove(loser).unwrap_or_default();
            for id in &moved {
                home.insert(id.clone(), target.clone());
                repoint.insert(id.key(), target.clone());
            }
            holdings.entry(target.clone()).or_default().extend(moved);
            // Events of this batch already routed to the loser follow it.
            if let Some(moved_events) = routed.events.remove(loser) {
                routed
                    .events
                    .entry(target.clone())
                    .or_default()
                    .extend(moved_events);
            }
            if let Some(moved_links) = routed.links.remove(loser) {
                routed
                    .links
                    .entry(target.clone())
                    .or_default()
                    .extend(moved_links);
            }
        }
        // Explains each link: the event, and the strongest identifier it carried besides.
        let strongest = rules.strongest(&ids).map(Identifier::key);
        let mut place = |id: &Identifier, profile: &String, via: Option<String>| {
            home.insert(id.clone(), profile.clone());
            holdings
                .entry(profile.clone())
                .or_default()
                .insert(id.clone());
            repoint.insert(id.key(), profile.clone());
            routed
                .links
                .entry(profile.clone())
                .or_default()
                .push(IdentityRow {
                    kind: id.kind.clone(),
                    value: id.value.clone(),
                    first_seen: event.timestamp,
                    message_id: event.message_id.clone(),
                    via,
                });
        };
        for id in &step.link {
            place(id, &target, strongest.clone().filter(|s| s != &id.key()));
        }
        for id in &step.apart {
            // Kept apart by the rules (another user on a shared device): a profile of its own.
            place(id, &new_profile_id(&event.message_id, id), None);
            *counts.entry("kept_apart".into()).or_default() += 1;
        }
        routed.events.entry(target).or_default().push(event);
    }
    if !repoint.is_empty() {
        identity_index::assign(env, &repoint).await?;
    }
    Ok(routed)
}
