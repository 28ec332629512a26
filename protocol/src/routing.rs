//! Routing a delivery's events to profiles: the decisions identity resolution makes, one
//! event after another by the merge rule [`plan`], over what is known of the identifiers
//! (which profile holds each, what each profile holds). No I/O: the consumer reads that
//! state from the identity index and the profiles, calls [`route`], and carries out what it
//! returns (merges in order, then links, the index, the events).
//!
//! What it guarantees, across deliveries in any order, with duplicates:
//! - every identifier is in exactly one profile, and no profile breaks the rules (at most
//!   one `userId`, say): a merge or link that would is refused;
//! - an event delivered twice changes nothing the second time (the consumer drops it by
//!   `messageId`, and the profile store keeps each once);
//! - where no rule refuses anything, the profiles are the connected groups of identifiers,
//!   whatever the order of arrival (merging is union);
//! - where a rule refuses, the first to arrive wins: a shared device (one `anonymousId`,
//!   two `userId`s) joins the profile of the user whose event was resolved first, in
//!   arrival order (within one delivery, by event time). It is not re-split when an
//!   earlier event arrives later; an admin's unmerge does that.

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::{fnv1a, FNV_OFFSET};
use crate::identity::{plan, Identifier, Rules};
use crate::time::Millis;

/// One event to route: its `messageId`, its time, and its usable identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The event's `messageId`.
    pub message_id: String,
    /// Its event time.
    pub at: Millis,
    /// Its identifiers, blocked values already left out.
    pub ids: Vec<Identifier>,
}

/// What is known of the identifiers: which profile holds each, and what each holds. The
/// consumer reads it for the identifiers of a delivery; a test keeps it across deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Identifier → the profile holding it.
    pub home: BTreeMap<Identifier, String>,
    /// Profile → its identifiers.
    pub holdings: BTreeMap<String, BTreeSet<Identifier>>,
}

/// Where one event went.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Into this profile (after every merge of the delivery).
    Stored(String),
    /// Not stored: it carries an erased person's identifier.
    Suppressed,
    /// Not stored: it carries no usable identifier.
    Unlinked,
}

/// An identifier newly linked to a profile, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// The identifier.
    pub id: Identifier,
    /// The profile it joins (after every merge of the delivery).
    pub profile: String,
    /// The event that linked it.
    pub message_id: String,
    /// That event's time.
    pub at: Millis,
    /// The strongest other identifier of that event, through which it joined.
    pub via: Option<Identifier>,
}

/// A profile merged into another, by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The profile that joins and goes away.
    pub from: String,
    /// The profile it joins (as it was then; later merges may move it on).
    pub into: String,
    /// The event that joined them.
    pub message_id: String,
    /// That event's time.
    pub at: Millis,
}

/// The decisions for a delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Per event, in the order given.
    pub outcomes: Vec<Outcome>,
    /// Merges, in the order they must be carried out.
    pub merges: Vec<Merge>,
    /// Identifiers newly linked.
    pub links: Vec<NewLink>,
    /// Identifiers whose profile changed: what the index must now say.
    pub repoint: BTreeMap<Identifier, String>,
    /// Identifiers the rules kept apart from the event's profile (each given its own).
    pub kept_apart: usize,
}

/// A new profile's id, derived from the event and identifier that created it, so a retry
/// of the same delivery creates the same profile rather than a second one.
pub fn new_profile_id(message_id: &str, id: &Identifier) -> String {
    let text = [message_id, "\u{1f}", &id.key()].concat();
    let (a, b) = fnv1a_128(text.as_bytes());
    format!("p-{a:016x}{b:016x}")
}

/// Two FNV-1a hashes of `bytes` with different offsets, wide enough that ids do not
/// collide.
fn fnv1a_128(bytes: &[u8]) -> (u64, u64) {
    (
        fnv1a(bytes, FNV_OFFSET),
        fnv1a(bytes, 0x8422_2325_cbf2_9ce4),
    )
}

/// Routes `arrivals` (oldest first), updating `known` as it goes; `suppressed` says which
/// identifiers belong to erased people.
pub fn route(
    arrivals: &[Arrival],
    suppressed: impl Fn(&Identifier) -> bool,
    known: &mut Known,
    rules: &Rules,
) -> Routing {
    let mut routing = Routing::default();
    let mut moved_to: BTreeMap<String, String> = BTreeMap::new();
    for arrival in arrivals {
        let ids = &arrival.ids;
        if ids.is_empty() {
            routing.outcomes.push(Outcome::Unlinked);
            continue;
        }
        if ids.iter().any(&suppressed) {
            routing.outcomes.push(Outcome::Suppressed);
            continue;
        }
        let step = plan(ids, &known.home, &known.holdings, rules);
        let target = match (&step.target, step.link.first()) {
            (Some(target), _) => target.clone(),
            (None, Some(first)) => new_profile_id(&arrival.message_id, first),
            (None, None) => {
                routing.outcomes.push(Outcome::Unlinked);
                continue;
            }
        };
        known.holdings.entry(target.clone()).or_default();
        for loser in &step.merge {
            routing.merges.push(Merge {
                from: loser.clone(),
                into: target.clone(),
                message_id: arrival.message_id.clone(),
                at: arrival.at,
            });
            moved_to.insert(loser.clone(), target.clone());
            let moved = known.holdings.remove(loser).unwrap_or_default();
            for id in &moved {
                known.home.insert(id.clone(), target.clone());
                routing.repoint.insert(id.clone(), target.clone());
            }
            known
                .holdings
                .entry(target.clone())
                .or_default()
                .extend(moved);
        }
        let strongest = rules.strongest(ids).cloned();
        let mut place = |id: &Identifier, profile: &String, via: Option<Identifier>| {
            known.home.insert(id.clone(), profile.clone());
            known
                .holdings
                .entry(profile.clone())
                .or_default()
                .insert(id.clone());
            routing.repoint.insert(id.clone(), profile.clone());
            routing.links.push(NewLink {
                id: id.clone(),
                profile: profile.clone(),
                message_id: arrival.message_id.clone(),
                at: arrival.at,
                via,
            });
        };
        for id in &step.link {
            place(id, &target, strongest.clone().filter(|s| s != id));
        }
        for id in &step.apart {
            // Kept apart by the rules (another user on a shared device): a profile of its own.
            place(id, &new_profile_id(&arrival.message_id, id), None);
            routing.kept_apart += 1;
        }
        routing.outcomes.push(Outcome::Stored(target));
    }
    // Events and links routed to a profile merged later in the delivery follow it.
    let follow = |profile: &String| {
        let mut p = profile.clone();
        while let Some(next) = moved_to.get(&p) {
            p = next.clone();
        }
        p
    };
    for outcome in &mut routing.outcomes {
        if let Outcome::Stored(profile) = outcome {
            *profile = follow(profile);
        }
    }
    for link in &mut routing.links {
        link.profile = follow(&link.profile);
    }
    routing
}

/// The indexed profiles a delivery cannot change: every event that names one of their
/// identifiers names only identifiers `home` (the index, before the delivery) puts in that
/// same profile. [`route`] stores such a profile's events there and links or merges nothing
/// of it, whatever it holds, so the store need not read its holdings first. (A profile
/// merged away since the index was written is found by its refusal of the write; the
/// delivery is then resolved again, reading every holding.)
pub fn inert<'a>(
    ids_of: &[Vec<Identifier>],
    home: impl Fn(&Identifier) -> Option<&'a String>,
) -> BTreeSet<&'a String> {
    let mut alone = BTreeSet::new();
    let mut changed = BTreeSet::new();
    for ids in ids_of {
        let homes: Vec<Option<&String>> = ids.iter().map(&home).collect();
        let profiles: BTreeSet<&String> = homes.iter().flatten().copied().collect();
        if homes.iter().all(Option::is_some) && profiles.len() == 1 {
            alone.extend(profiles);
        } else {
            changed.extend(profiles);
        }
    }
    alone.difference(&changed).copied().collect()
}

/// A delivery's messages cut into consecutive turns of at most `limit` events each (`size`
/// counts a message's events); a message larger than `limit` is a turn of its own. The
/// consumer delivers turn after turn, so one invocation never holds every event of a
/// queue batch at once.
pub fn turns<T>(messages: &[T], size: impl Fn(&T) -> usize, limit: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut events) = (0, 0);
    for (i, message) in messages.iter().enumerate() {
        let n = size(message);
        if i > start && events + n > limit {
            out.push(&messages[start..i]);
            (start, events) = (i, 0);
        }
        events += n;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

/// Which of `partitions` event queues a message of `events` goes to: the hash of the first
/// `anonymousId` (else `userId`), so a device's events always meet in one consumer, in
/// order, and consumers of different partitions rarely touch the same person. Events with
/// neither go to the first partition.
pub fn partition(events: &[crate::event::Event], partitions: usize) -> usize {
    let device = events
        .iter()
        .find_map(|e| e.anonymous_id.as_deref())
        .or_else(|| events.iter().find_map(|e| e.user_id.as_deref()));
    match (device, partitions) {
        (Some(key), n) if n > 1 => (fnv1a(key.as_bytes(), FNV_OFFSET) % n as u64) as usize,
        _ => 0,
    }
}

#[cfg(test)]
mod turns_tests {
    use super::turns;

    #[test]
    fn messages_go_in_turns_of_at_most_the_limit_and_a_large_one_alone() {
        let sizes = [400, 400, 400, 400, 400, 400, 5000, 10, 10];
        let cut: Vec<Vec<usize>> = turns(&sizes, |n| *n, 2_000)
            .into_iter()
            .map(<[usize]>::to_vec)
            .collect();
        assert_eq!(cut, vec![vec![400; 5], vec![400], vec![5000], vec![10, 10]]);
        assert!(turns(&[] as &[usize], |n| *n, 2_000).is_empty());
    }
}

#[cfg(test)]
mod partition_tests {
    use super::partition;
    use crate::event::{Event, EventType};

    fn event(anonymous: Option<&str>, user: Option<&str>) -> Event {
        Event {
            kind: EventType::Track,
            message_id: "m".into(),
            anonymous_id: anonymous.map(str::to_owned),
            user_id: user.map(str::to_owned),
            name: None,
            timestamp: 0,
            received_at: 0,
            body: Default::default(),
        }
    }

    #[test]
    fn a_device_always_lands_in_the_same_partition_and_devices_spread() {
        let one = [event(Some("a-1"), None), event(Some("a-2"), Some("u"))];
        assert_eq!(
            partition(&one, 4),
            partition(&[event(Some("a-1"), Some("x"))], 4)
        );
        // A message with no anonymousId goes by its userId.
        assert_eq!(
            partition(&[event(None, Some("u-9"))], 4),
            partition(&[event(Some("u-9"), None)], 4)
        );
        let spread: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| partition(&[event(Some(&format!("device-{i}")), None)], 4))
            .collect();
        assert_eq!(spread.len(), 4, "64 devices reach every partition");
        assert!(spread.iter().all(|p| *p < 4));
        assert_eq!(partition(&[event(None, None)], 4), 0);
        assert_eq!(partition(&one, 1), 0);
        assert_eq!(partition(&one, 0), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier::new(kind, value)
    }

    fn arrival(n: usize, ids: &[Identifier]) -> Arrival {
        Arrival {
            message_id: format!("m{n}"),
            at: n as Millis,
            ids: ids.to_vec(),
        }
    }

    /// Delivers `arrivals` in batches, as the consumer does: each batch sorted by event time,
    /// events already delivered (by `messageId`) dropped.
    fn deliver(batches: &[Vec<Arrival>], rules: &Rules) -> Known {
        let mut known = Known::default();
        let mut seen = BTreeSet::new();
        for batch in batches {
            let mut fresh: Vec<Arrival> = batch
                .iter()
                .filter(|a| seen.insert(a.message_id.clone()))
                .cloned()
                .collect();
            fresh.sort_by_key(|a| a.at);
            route(&fresh, |_| false, &mut known, rules);
        }
        known
    }

    /// The profiles as sets of identifiers, in a canonical order.
    fn partition(known: &Known) -> BTreeSet<BTreeSet<Identifier>> {
        known
            .holdings
            .values()
            .filter(|ids| !ids.is_empty())
            .cloned()
            .collect()
    }

    /// The connected groups of identifiers the events link (union of every event's ids).
    fn components(arrivals: &[Arrival]) -> BTreeSet<BTreeSet<Identifier>> {
        let mut groups: Vec<BTreeSet<Identifier>> = Vec::new();
        for a in arrivals {
            let mut merged: BTreeSet<Identifier> = a.ids.iter().cloned().collect();
            groups.retain(|g| {
                if g.is_disjoint(&merged) {
                    true
                } else {
                    merged.extend(g.iter().cloned());
                    false
                }
            });
            if !merged.is_empty() {
                groups.push(merged);
            }
        }
        groups.into_iter().collect()
    }

    /// Streams of events over a few devices, users and emails, so they link often.
    fn streams() -> impl Strategy<Value = Vec<Arrival>> {
        let one = (
            proptest::option::of(0..4u8),
            proptest::option::of(0..3u8),
            proptest::option::of(0..3u8),
        );
        proptest::collection::vec(one, 1..24).prop_map(|events| {
            events
                .into_iter()
                .enumerate()
                .map(|(n, (device, user, email))| {
                    let mut ids = Vec::new();
                    if let Some(d) = device {
                        ids.push(id("anonymousId", &format!("d{d}")));
                    }
                    if let Some(u) = user {
                        ids.push(id("userId", &format!("u{u}")));
                    }
                    if let Some(e) = email {
                        ids.push(id("email", &format!("e{e}@example.com")));
                    }
                    arrival(n, &ids)
                })
                .collect()
        })
    }

    /// An arrival order with duplicates, cut into batches: a shuffle (by sort keys), some
    /// events twice, and the cut points.
    fn arrivals_of(
        events: &[Arrival],
        keys: &[u32],
        twice: &[bool],
        cuts: &[bool],
    ) -> Vec<Vec<Arrival>> {
        let mut order: Vec<(u32, Arrival)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            order.push((keys[i % keys.len()], e.clone()));
            if twice[i % twice.len()] {
                order.push((keys[(i + 1) % keys.len()], e.clone()));
            }
        }
        order.sort_by_key(|(k, _)| *k);
        let mut batches = vec![Vec::new()];
        for (i, (_, e)) in order.into_iter().enumerate() {
            if cuts[i % cuts.len()] && batches.last().is_some_and(|b| !b.is_empty()) {
                batches.push(Vec::new());
            }
            if let Some(last) = batches.last_mut() {
                last.push(e);
            }
        }
        batches
    }

    /// A stream of events, and the same events as they arrive: shuffled, some twice, cut
    /// into deliveries.
    fn deliveries() -> impl Strategy<Value = (Vec<Arrival>, Vec<Vec<Arrival>>)> {
        (
            streams(),
            proptest::collection::vec(any::<u32>(), 1..32),
            proptest::collection::vec(any::<bool>(), 1..8),
            proptest::collection::vec(any::<bool>(), 1..8),
        )
            .prop_map(|(events, keys, twice, cuts)| {
                let batches = arrivals_of(&events, &keys, &twice, &cuts);
                (events, batches)
            })
    }

    fn unlimited() -> Rules {
        Rules {
            limits: BTreeMap::new(),
            ..Rules::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Without limits, the profiles are the linked groups, whatever the arrival order,
        /// batching and duplicates.
        #[test]
        fn without_limits_any_arrival_order_gives_the_linked_groups((events, batches) in deliveries()) {
            let rules = unlimited();
            let known = deliver(&batches, &rules);
            prop_assert_eq!(partition(&known), components(&events));
        }

        /// With the default rules (one userId, one email a profile), in any arrival order:
        /// every identifier is in exactly one profile, no profile breaks the rules, and a
        /// second delivery of everything changes nothing.
        #[test]
        fn with_limits_the_rules_always_hold_and_repeats_change_nothing((events, batches) in deliveries()) {
            let rules = Rules::default();
            let mut known = deliver(&batches, &rules);
            for ids in known.holdings.values() {
                prop_assert!(rules.allows(ids), "a profile breaks the rules: {:?}", ids);
            }
            let held: Vec<&Identifier> = known.holdings.values().flatten().collect();
            let distinct: BTreeSet<&Identifier> = held.iter().copied().collect();
            prop_assert_eq!(held.len(), distinct.len(), "an identifier in two profiles");
            let all: BTreeSet<Identifier> = events.iter().flat_map(|e| e.ids.clone()).collect();
            prop_assert_eq!(distinct.into_iter().cloned().collect::<BTreeSet<_>>(), all);
            for (identifier, profile) in &known.home {
                prop_assert!(known.holdings[profile].contains(identifier));
            }
            let before = known.clone();
            for batch in &batches {
                let mut again = batch.clone();
                again.sort_by_key(|a| a.at);
                route(&again, |_| false, &mut known, &rules);
            }
            prop_assert_eq!(partition(&known), partition(&before), "a repeat changed the profiles");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Routing a delivery without the holdings of the profiles `inert` names decides
        /// exactly what routing it with every holding does.
        #[test]
        fn inert_profiles_need_no_holdings((_events, batches) in deliveries()) {
            let rules = Rules::default();
            let Some((last, before)) = batches.split_last() else { return Ok(()); };
            let known = deliver(before, &rules);
            let mut last = last.clone();
            last.sort_by_key(|a| a.at);
            let ids_of: Vec<Vec<Identifier>> = last.iter().map(|a| a.ids.clone()).collect();
            let skipped = inert(&ids_of, |id| known.home.get(id));
            let mut full = known.clone();
            let mut partial = known.clone();
            partial.holdings.retain(|p, _| !skipped.contains(p));
            let a = route(&last, |_| false, &mut full, &rules);
            let b = route(&last, |_| false, &mut partial, &rules);
            prop_assert_eq!(a.outcomes, b.outcomes);
            prop_assert_eq!(a.merges, b.merges);
            prop_assert_eq!(a.links, b.links);
            prop_assert_eq!(a.repoint, b.repoint);
            prop_assert_eq!(full.home, partial.home);
        }
    }

    #[test]
    fn a_profile_named_with_a_new_identifier_or_another_profile_is_not_inert() {
        let (d1, d2, d3, u) = (
            id("anonymousId", "d1"),
            id("anonymousId", "d2"),
            id("anonymousId", "d3"),
            id("userId", "u"),
        );
        let home: BTreeMap<Identifier, String> = [
            (d1.clone(), "p1".to_owned()),
            (d2.clone(), "p2".to_owned()),
            (d3.clone(), "p3".to_owned()),
        ]
        .into();
        let ids_of = vec![
            vec![d1.clone()],
            vec![d2.clone()],
            vec![d2, u],
            vec![d3.clone()],
            vec![d3, d1],
        ];
        let inert = inert(&ids_of, |id| home.get(id));
        assert!(inert.is_empty(), "p1 and p3 meet, p2 gains u: {inert:?}");
        let alone = vec![vec![id("anonymousId", "d1")]];
        assert_eq!(inert_of(&alone, &home), ["p1"]);
    }

    fn inert_of(ids_of: &[Vec<Identifier>], home: &BTreeMap<Identifier, String>) -> Vec<String> {
        inert(ids_of, |id| home.get(id))
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn on_a_shared_device_the_first_user_to_arrive_keeps_it() {
        let kiosk = id("anonymousId", "kiosk");
        let (alice, bob) = (id("userId", "alice"), id("userId", "bob"));
        let alice_first = [
            arrival(1, &[kiosk.clone(), alice.clone()]),
            arrival(2, &[kiosk.clone(), bob.clone()]),
        ];
        let bob_first = [alice_first[1].clone(), alice_first[0].clone()];
        let rules = Rules::default();
        let with = |order: &[Arrival]| {
            let mut known = Known::default();
            for a in order {
                route(std::slice::from_ref(a), |_| false, &mut known, &rules);
            }
            known.home[&kiosk] == known.home[&alice]
        };
        assert!(with(&alice_first), "alice arrived first: the kiosk is hers");
        assert!(!with(&bob_first), "bob arrived first: the kiosk is his");
    }

    #[test]
    fn events_routed_before_a_merge_follow_it() {
        let (d1, d2, u) = (
            id("anonymousId", "d1"),
            id("anonymousId", "d2"),
            id("userId", "u"),
        );
        let mut known = Known::default();
        let routing = route(
            &[
                arrival(1, std::slice::from_ref(&d1)),
                arrival(2, std::slice::from_ref(&d2)),
                arrival(3, &[d1, d2, u]),
            ],
            |_| false,
            &mut known,
            &Rules::default(),
        );
        assert_eq!(routing.merges.len(), 1);
        let profiles: BTreeSet<&Outcome> = routing.outcomes.iter().collect();
        assert_eq!(
            profiles.len(),
            1,
            "all three in one profile: {:?}",
            routing.outcomes
        );
        assert!(routing
            .links
            .iter()
            .all(|l| Outcome::Stored(l.profile.clone()) == routing.outcomes[0]));
    }

    #[test]
    fn suppressed_and_unlinked_events_go_nowhere() {
        let gone = id("userId", "erased");
        let mut known = Known::default();
        let routing = route(
            &[
                arrival(1, &[gone.clone(), id("anonymousId", "a")]),
                arrival(2, &[]),
            ],
            |i| i == &gone,
            &mut known,
            &Rules::default(),
        );
        assert_eq!(routing.outcomes, [Outcome::Suppressed, Outcome::Unlinked]);
        assert!(known.home.is_empty() && routing.links.is_empty());
    }
}
