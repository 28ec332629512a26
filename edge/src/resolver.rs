//! Identity resolution in the store: which profile each event belongs to, merging profiles
//! and linking identifiers on the way. The decisions are the pure `cdp_protocol::routing`
//! (tested across deliveries on the host); this module reads what they need (the index,
//! the profiles' holdings, erased identifiers) and carries them out.
//!
//! Events are resolved oldest first. The index is read once for every identifier of the
//! batch; merges are carried out in the order they were decided (copy, forward), then the
//! index is re-pointed, so a retry after a failure finds the work done or redoes it
//! harmlessly.
//!
//! Consumers of different queue partitions resolve at once. What they share is serialised
//! where it meets: the index is re-pointed only where it still says what this delivery read
//! (a compare-and-set), a profile merged away refuses writes, and a merge's forward is
//! refused when the profile changed since it was copied. The loser fails before storing any
//! event and is resolved again.

use std::collections::{BTreeMap, BTreeSet};

use cdp_protocol::event::Event;
use cdp_protocol::identity::{identifiers_of, Identifier, Rules};
use cdp_protocol::routing::{route, Arrival, Known, Outcome};
use worker::{Env, Result};

use crate::identity_index::{self, Pause};
use crate::profile_store::{self, IdentityRow};
use crate::stats::{self, Counter, Counts};

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

/// A new profile's id (the pure rule's, re-exported for the unmerge).
pub use cdp_protocol::routing::new_profile_id;

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
///
/// `first` for a delivery's first attempt: profiles it cannot change (known visitors
/// bringing nothing new, most events) are taken from the index as they are, without reading
/// their holdings; one merged away meanwhile refuses the write, and the attempts after the
/// first read every holding, so they follow its forward.
pub async fn resolve(
    env: &Env,
    mut events: Vec<Event>,
    rules: &Rules,
    counts: &mut Counts,
    first: bool,
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
        .flat_map(Identifier::suppression_keys)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = identity_index::lookup(env, &keys, true).await?;
    let pauses = known.pauses;
    let suppressed: BTreeSet<String> = known.suppressed.into_iter().collect();
    // The rules, plus the pairs the involved profiles were told to keep apart (unmerges).
    let mut rules = rules.clone();
    let indexed = known.profiles;

    let mut holdings: BTreeMap<String, BTreeSet<Identifier>> = BTreeMap::new();
    let inert = if first {
        cdp_protocol::routing::inert(&ids_of, |id| indexed.get(&id.key()))
    } else {
        BTreeSet::new()
    };
    // Every other indexed profile's holding at once (one call each, in parallel); the rare
    // forward of a merged profile is followed after, one step at a time.
    let named: BTreeSet<&String> = ids_of
        .iter()
        .flatten()
        .filter_map(|id| indexed.get(&id.key()))
        .filter(|p| !inert.contains(p))
        .collect();
    let asked = named.iter().map(|p| profile_store::holding(env, p));
    for (profile, held) in named
        .iter()
        .zip(futures_util::future::join_all(asked).await)
    {
        let held = held?;
        if held.merged_into.is_none() {
            rules.separate.extend(
                held.apart.iter().filter_map(|(a, b)| {
                    Some((Identifier::from_key(a)?, Identifier::from_key(b)?))
                }),
            );
            holdings.insert((*profile).clone(), held.ids.into_iter().collect());
        }
    }
    let mut home: BTreeMap<Identifier, String> = BTreeMap::new();
    let mut repoint: BTreeMap<String, String> = BTreeMap::new();
    for id in ids_of.iter().flatten() {
        if let Some(profile) = indexed.get(&id.key()) {
            if inert.contains(profile) {
                home.insert(id.clone(), profile.clone());
                continue;
            }
            let now = current(env, profile, &mut holdings, &mut rules).await?;
            if &now != profile {
                repoint.insert(id.key(), now.clone());
            }
            home.insert(id.clone(), now);
        }
    }

    // The decisions, pure (protocol/src/routing.rs), then carried out in order.
    let arrivals: Vec<Arrival> = events
        .iter()
        .zip(&ids_of)
        .map(|(e, ids)| Arrival {
            message_id: e.message_id.clone(),
            at: e.timestamp,
            ids: ids.clone(),
        })
        .collect();
    let mut state = Known { home, holdings };
    let is_suppressed =
        |id: &Identifier| id.suppression_keys().iter().any(|k| suppressed.contains(k));
    let routing = route(&arrivals, is_suppressed, &mut state, &rules);
    Pause::Assign.hold(&pauses).await;
    for merge in &routing.merges {
        let forward = Pause::Forward.hold(&pauses);
        profile_store::merge(env, merge, forward).await?;
    }
    let unlinked = routing
        .outcomes
        .iter()
        .filter(|o| **o == Outcome::Unlinked)
        .count();
    let mut routed = Routed::default();
    for (event, outcome) in events.into_iter().zip(routing.outcomes) {
        match outcome {
            Outcome::Stored(profile) => routed.events.entry(profile).or_default().push(event),
            Outcome::Suppressed => {
                routed.suppressed.insert(event.message_id.clone());
            }
            Outcome::Unlinked => {}
        }
    }
    for link in routing.links {
        routed
            .links
            .entry(link.profile)
            .or_default()
            .push(IdentityRow {
                kind: link.id.kind,
                value: link.id.value,
                first_seen: link.at,
                message_id: link.message_id,
                via: link.via.as_ref().map(Identifier::key),
            });
    }
    let tally = [
        (Counter::Merges, routing.merges.len()),
        (Counter::KeptApart, routing.kept_apart),
        (Counter::Suppressed, routed.suppressed.len()),
        (Counter::Unlinked, unlinked),
    ];
    for (counter, n) in tally.into_iter().filter(|(_, n)| *n > 0) {
        stats::bump(counts, counter, n as i64);
    }
    repoint.extend(routing.repoint.into_iter().map(|(id, p)| (id.key(), p)));
    if !repoint.is_empty() {
        // Only where the index still says what this delivery read: another partition's
        // consumer may have linked the same person meanwhile. Then nothing of this delivery
        // is stored yet, and it is resolved again (the queue retries it) from what the index
        // says now; its merges already done stand, as the events say they are one person.
        let moved = identity_index::assign_if(env, &repoint, &indexed).await?;
        if !moved.is_empty() {
            let keys: Vec<&str> = moved.keys().map(String::as_str).collect();
            return Err(worker::Error::RustError(format!(
                "the identity index changed while this delivery resolved it ({}): resolved again",
                keys.join(", ")
            )));
        }
    }
    Pause::Write.hold(&pauses).await;
    Ok(routed)
}
