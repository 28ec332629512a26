//! Identity resolution rules: which identifiers an event carries, how they are normalised,
//! which values never link anything, and how the identifiers of a profile may be joined.
//!
//! The merge algebra is [`IdentityGraph`]: profiles are the connected groups of identifiers
//! that events link, except where a link would give one profile more identifiers of a kind
//! than the rules allow (by default: one `userId`, the shared-device guard). Links are
//! applied in a canonical order (event time, then `messageId`), so the same events in any
//! order and with any duplicates give the same profiles.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, EventType};
use crate::time::Millis;

/// Kinds of identifier, highest priority first.
pub const KINDS: [&str; 4] = ["userId", "email", "phone", "anonymousId"];

/// Values that mean "no identifier" and must never link two people.
const BLOCKED: [&str; 12] = [
    "",
    "null",
    "undefined",
    "none",
    "nil",
    "0",
    "-1",
    "anonymous",
    "unknown",
    "n/a",
    "guest",
    "[object object]",
];

/// One identifier, normalised: `kind` is one of [`KINDS`] (or a type a source declares).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// `userId`, `email`, `phone`, `anonymousId`, …
    pub kind: String,
    /// The normalised value.
    pub value: String,
}

impl Identifier {
    /// An identifier of `kind` with a value already normalised.
    pub fn new(kind: &str, value: &str) -> Self {
        Self {
            kind: kind.into(),
            value: value.into(),
        }
    }

    /// `kind:value`, the identifier's name in the index.
    pub fn key(&self) -> String {
        [self.kind.as_str(), ":", self.value.as_str()].concat()
    }

    /// `*:value` for the kinds that stand in for each other (`userId` and `anonymousId`:
    /// an alias's `previousId`, read as an anonymous id, is often a former user id), so an
    /// erased value coming back as the other is still recognised. Other kinds (email,
    /// phone, declared ones) are matched as themselves: an erased user id "42" must not
    /// drop someone else's `crm_id` 42.
    pub fn any_kind_key(&self) -> Option<String> {
        matches!(self.kind.as_str(), "userId" | "anonymousId")
            .then(|| ["*:", self.value.as_str()].concat())
    }

    /// The keys an erasure suppresses this identifier under, and the keys an event's
    /// identifier is checked against: its own, and for the two id kinds the any-kind key.
    pub fn suppression_keys(&self) -> Vec<String> {
        std::iter::once(self.key())
            .chain(self.any_kind_key())
            .collect()
    }

    /// The identifier a [`key`](Self::key) names (kinds never contain `:`).
    pub fn from_key(key: &str) -> Option<Identifier> {
        let (kind, value) = key.split_once(':')?;
        Some(Identifier {
            kind: kind.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// Normalises a raw identifier of `kind`; `None` for a blocked or malformed value.
pub fn normalize(kind: &str, raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if BLOCKED.contains(&trimmed.to_ascii_lowercase().as_str()) {
        return None;
    }
    match kind {
        "email" => {
            let email = trimmed.to_lowercase();
            let (local, domain) = email.split_once('@')?;
            (!local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace))
                .then_some(email)
        }
        "phone" => {
            // E.164: a plus and 8 to 15 digits; "00" is the international prefix too.
            let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
            let digits = if trimmed.starts_with('+') {
                digits
            } else {
                digits.strip_prefix("00")?.to_owned()
            };
            (8..=15)
                .contains(&digits.len())
                .then(|| ["+", &digits].concat())
        }
        _ => Some(trimmed.to_owned()),
    }
}

fn identifier(kind: &str, raw: Option<&Value>) -> Option<Identifier> {
    let raw = match raw? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    normalize(kind, &raw).map(|value| Identifier {
        kind: kind.to_owned(),
        value,
    })
}

/// The identifiers an event carries: `userId`, `anonymousId`, `traits.email` and
/// `traits.phone` (of identify calls, or `context.traits`), an alias's `previousId`, and the
/// traits named in `declared` (identifier kinds a workspace or source declares, e.g. `crm_id`).
pub fn identifiers_of(event: &Event, declared: &[String]) -> Vec<Identifier> {
    let body = &event.body;
    let traits = body
        .get("traits")
        .filter(|_| matches!(event.kind, EventType::Identify))
        .or_else(|| body.get("context").and_then(|c| c.get("traits")));
    let mut ids: Vec<Identifier> = [
        identifier(
            "userId",
            event
                .user_id
                .as_ref()
                .map(|s| Value::String(s.clone()))
                .as_ref(),
        ),
        identifier(
            "anonymousId",
            event
                .anonymous_id
                .as_ref()
                .map(|s| Value::String(s.clone()))
                .as_ref(),
        ),
        identifier("email", traits.and_then(|t| t.get("email"))),
        identifier("phone", traits.and_then(|t| t.get("phone"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    for kind in declared {
        ids.extend(identifier(kind, traits.and_then(|t| t.get(kind))));
    }
    if event.kind == EventType::Alias {
        // previousId is whatever the client knew the user as before: an anonymous id or an
        // earlier user id; it is looked up as both and linked as an anonymous id.
        ids.extend(identifier("anonymousId", body.get("previousId")));
    }
    ids.sort();
    ids.dedup();
    ids
}

/// A workspace's identity rules: per-profile limits, priority of kinds, extra blocked
/// values, and the pairs an admin has said are two people (see [`unmerge`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Most identifiers of each kind one profile may hold (kinds absent here: no limit).
    pub limits: BTreeMap<String, usize>,
    /// Kinds, strongest first; a kind not listed ranks after those listed.
    pub priority: Vec<String>,
    /// Values that never link anything, besides the built-in ones (`null`, `anonymous`, …);
    /// compared trimmed and case-insensitively.
    pub blocked: Vec<String>,
    /// Traits that are identifiers too (`crm_id`, `loyalty_card`), besides the built-in kinds;
    /// sources may declare more (see `Source::identifiers`).
    pub identifiers: Vec<String>,
    /// Pairs of identifiers that are never in one profile (each profile keeps its own).
    #[serde(skip)]
    pub separate: BTreeSet<(Identifier, Identifier)>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            limits: BTreeMap::from([("userId".to_owned(), 1)]),
            priority: KINDS.iter().map(|k| (*k).to_owned()).collect(),
            blocked: Vec::new(),
            identifiers: Vec::new(),
            separate: BTreeSet::new(),
        }
    }
}

impl Rules {
    /// Reads a workspace's rules from JSON (`{"limits": {"userId": 1, "email": 1},
    /// "priority": [...], "blocked": [...]}`); fields left out keep their defaults.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules: Rules = serde_json::from_str(text).map_err(|e| {
            format!("IDENTITY_RULES is not valid: {e} (expected {{\"limits\": {{\"userId\": 1}}, \"priority\": [\"userId\", \"email\", \"phone\", \"anonymousId\"], \"blocked\": [\"test@example.com\"]}})")
        })?;
        if let Some((kind, _)) = rules.limits.iter().find(|(_, max)| **max == 0) {
            return Err(format!(
                "IDENTITY_RULES: the limit of {kind} is 0, which would keep every {kind} out of every profile; use at least 1, or leave the kind out for no limit"
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(kind) = rules
            .priority
            .iter()
            .find(|k| k.is_empty() || !seen.insert(*k))
        {
            return Err(format!(
                "IDENTITY_RULES: priority lists {kind:?} twice or empty; list each kind once, strongest first"
            ));
        }
        rules.declare(&[])?;
        for value in &mut rules.blocked {
            *value = value.trim().to_lowercase();
        }
        Ok(rules)
    }

    /// Adds identifier kinds (a source's declaration); refuses a built-in or malformed name.
    pub fn declare(&mut self, kinds: &[String]) -> Result<(), String> {
        self.identifiers.extend(kinds.iter().cloned());
        if let Some(bad) = self
            .identifiers
            .iter()
            .find(|k| k.is_empty() || k.contains(':') || KINDS.contains(&k.as_str()))
        {
            return Err(format!(
                "identifier kind {bad:?} cannot be declared: it must be a trait name without ':' and not one of {}",
                KINDS.join(", ")
            ));
        }
        self.identifiers.sort();
        self.identifiers.dedup();
        Ok(())
    }

    /// Priority of `id`'s kind: lower is stronger.
    pub fn rank(&self, id: &Identifier) -> usize {
        self.priority
            .iter()
            .position(|k| *k == id.kind)
            .unwrap_or(self.priority.len())
    }

    /// Whether `id` may link anything (not a value the workspace blocks).
    pub fn admits(&self, id: &Identifier) -> bool {
        !self.blocked.contains(&id.value.to_lowercase())
    }

    /// Whether a profile holding `ids` respects the limits and the separations.
    pub fn allows(&self, ids: &BTreeSet<Identifier>) -> bool {
        self.limits
            .iter()
            .all(|(kind, max)| ids.iter().filter(|i| &i.kind == kind).count() <= *max)
            && !self
                .separate
                .iter()
                .any(|(a, b)| ids.contains(a) && ids.contains(b))
    }

    /// The strongest of `ids`, by priority, then value.
    pub fn strongest<'a>(&self, ids: &'a [Identifier]) -> Option<&'a Identifier> {
        ids.iter().min_by_key(|i| (self.rank(i), *i))
    }
}

/// One event's identifiers, as a link to apply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// Event time (ms): links apply oldest first.
    pub at: Millis,
    /// The event's `messageId`: breaks ties, and explains the link.
    pub message_id: String,
    /// The identifiers the event carries.
    pub ids: Vec<Identifier>,
}

/// Why an identifier is in a profile: the event that linked it first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// The linking event.
    pub message_id: String,
    /// Its time.
    pub at: Millis,
    /// The identifier it was linked through (`None` for the event's own first identifier).
    pub via: Option<Identifier>,
}

/// The merge algebra: identifiers grouped into profiles by the links of events.
#[derive(Debug, Clone, Default)]
pub struct IdentityGraph {
    rules: Rules,
    links: BTreeSet<Link>,
}

/// One resolved profile: its identifiers, each with its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProfile {
    /// The identifiers, with the event that linked each.
    pub ids: BTreeMap<Identifier, Cause>,
}

/// What to do with one event's identifiers, given the profiles that hold some of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<P> {
    /// The profile the event belongs to; `None`: a new one.
    pub target: Option<P>,
    /// Profiles to merge into the target (each joins whole).
    pub merge: Vec<P>,
    /// Identifiers to link to the target.
    pub link: Vec<Identifier>,
    /// Identifiers that may not join the target: each starts a profile of its own.
    pub apart: Vec<Identifier>,
}

/// Plans one event. It belongs to the profile of its strongest identifier; if that one is
/// new, to the profile of its next known identifier when the strongest may join it (an
/// anonymous visitor logging in), else to a new profile (another user on a shared device).
/// Its other identifiers, strongest first, then join that profile (a whole profile merged
/// in, a new identifier linked) only if the result respects the rules. `home` says which
/// profile holds an identifier; `holdings` what each profile holds. This one function is the
/// merge rule of both [`IdentityGraph`] and the store.
pub fn plan<P: Ord + Clone>(
    ids: &[Identifier],
    home: &BTreeMap<Identifier, P>,
    holdings: &BTreeMap<P, BTreeSet<Identifier>>,
    rules: &Rules,
) -> Plan<P> {
    let mut ids = ids.to_vec();
    ids.sort_by_key(|i| (rules.rank(i), i.clone()));
    ids.dedup();
    let mut plan = Plan {
        target: None,
        merge: Vec::new(),
        link: Vec::new(),
        apart: Vec::new(),
    };
    let Some((strongest, rest)) = ids.split_first() else {
        return plan;
    };
    let held_by = |p: &P| holdings.get(p).cloned().unwrap_or_default();
    let mut held: BTreeSet<Identifier> = match home.get(strongest) {
        Some(owner) => {
            plan.target = Some(owner.clone());
            held_by(owner)
        }
        None => {
            let joinable = rest.iter().find_map(|id| home.get(id)).filter(|owner| {
                let mut union = held_by(owner);
                union.insert(strongest.clone());
                rules.allows(&union)
            });
            plan.target = joinable.cloned();
            plan.link.push(strongest.clone());
            let mut held = joinable.map(&held_by).unwrap_or_default();
            held.insert(strongest.clone());
            held
        }
    };
    for id in rest {
        match home.get(id) {
            Some(owner) if Some(owner) == plan.target.as_ref() || plan.merge.contains(owner) => {}
            Some(owner) => {
                let union: BTreeSet<Identifier> = held.union(&held_by(owner)).cloned().collect();
                if rules.allows(&union) {
                    held = union;
                    plan.merge.push(owner.clone());
                }
            }
            None => {
                let mut union = held.clone();
                union.insert(id.clone());
                if rules.allows(&union) {
                    held = union;
                    plan.link.push(id.clone());
                } else {
                    plan.apart.push(id.clone());
                }
            }
        }
    }
    plan
}

impl IdentityGraph {
    /// An empty graph under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            links: BTreeSet::new(),
        }
    }

    /// Adds an event's link; adding the same event twice changes nothing.
    pub fn add(&mut self, link: Link) {
        if !link.ids.is_empty() {
            self.links.insert(link);
        }
    }

    /// The profiles, as sets of identifiers (each with its cause), in a canonical order:
    /// the links applied oldest first through [`plan`].
    pub fn profiles(&self) -> Vec<ResolvedProfile> {
        let mut groups: BTreeMap<usize, BTreeMap<Identifier, Cause>> = BTreeMap::new();
        let mut home: BTreeMap<Identifier, usize> = BTreeMap::new();
        for link in &self.links {
            let holdings: BTreeMap<usize, BTreeSet<Identifier>> = groups
                .iter()
                .map(|(g, ids)| (*g, ids.keys().cloned().collect()))
                .collect();
            let step = plan(&link.ids, &home, &holdings, &self.rules);
            let cause = |via: Option<Identifier>| Cause {
                message_id: link.message_id.clone(),
                at: link.at,
                via,
            };
            let target = step
                .target
                .unwrap_or_else(|| groups.keys().next_back().map_or(0, |g| g + 1));
            let first = step.link.first().cloned();
            for merged in step.merge {
                for (id, c) in groups.remove(&merged).unwrap_or_default() {
                    home.insert(id.clone(), target);
                    groups.entry(target).or_default().insert(id, c);
                }
            }
            for id in step.link {
                let via = first.clone().filter(|f| f != &id && step.target.is_none());
                home.insert(id.clone(), target);
                groups.entry(target).or_default().insert(id, cause(via));
            }
            for id in step.apart {
                let apart = groups.keys().next_back().map_or(0, |g| g + 1);
                home.insert(id.clone(), apart);
                groups.insert(apart, BTreeMap::from([(id, cause(None))]));
            }
        }
        let mut profiles: Vec<ResolvedProfile> = groups
            .into_values()
            .map(|ids| ResolvedProfile { ids })
            .collect();
        profiles.sort_by(|a, b| a.ids.keys().next().cmp(&b.ids.keys().next()));
        profiles
    }
}

/// How a profile splits when an admin unmerges an identifier that was wrongly joined to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmerge {
    /// The profile's strongest other identifier: it stays, and is kept apart from the
    /// detached one from now on.
    pub anchor: Identifier,
    /// The identifiers that leave with the detached one, each with its new cause.
    pub moved: BTreeMap<Identifier, Cause>,
    /// The identifiers that stay, each with its cause.
    pub kept: BTreeMap<Identifier, Cause>,
    /// `messageId`s of the events that leave: those whose strongest identifier leaves.
    pub moved_events: BTreeSet<String>,
}

/// Splits a profile, given its events' links, when `detach` must not be in it: the links
/// are resolved again (by the same rule, [`plan`]) with `detach` and the profile's
/// strongest other identifier kept apart. What `detach` ends up with leaves; the rest
/// stays. `None` when `detach` is not in the profile or is all it holds.
pub fn unmerge(links: &[Link], detach: &Identifier, rules: &Rules) -> Option<Unmerge> {
    let all: Vec<Identifier> = links
        .iter()
        .flat_map(|l| l.ids.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !all.contains(detach) {
        return None;
    }
    let others: Vec<Identifier> = all.iter().filter(|i| *i != detach).cloned().collect();
    let anchor = rules.strongest(&others)?.clone();
    let mut apart = rules.clone();
    apart.separate.insert((detach.clone(), anchor.clone()));
    let mut graph = IdentityGraph::new(apart);
    for link in links {
        graph.add(link.clone());
    }
    let mut moved = BTreeMap::new();
    let mut kept = BTreeMap::new();
    for profile in graph.profiles() {
        let side = if profile.ids.contains_key(detach) {
            &mut moved
        } else {
            &mut kept
        };
        side.extend(profile.ids);
    }
    let moved_events = links
        .iter()
        .filter(|l| {
            rules
                .strongest(&l.ids)
                .is_some_and(|s| moved.contains_key(s))
        })
        .map(|l| l.message_id.clone())
        .collect();
    Some(Unmerge {
        anchor,
        moved,
        kept,
        moved_events,
    })
}

/// Splits events into groups that share no identifier (each event given by its
/// identifiers), as indexes in their order: events of one group may link or merge
/// profiles with each other, never with another group's, so groups can be delivered, and
/// fail, on their own.
pub fn linked_groups(ids_of: &[Vec<Identifier>]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..ids_of.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with: BTreeMap<&Identifier, usize> = BTreeMap::new();
    for (i, ids) in ids_of.iter().enumerate() {
        for id in ids {
            match first_with.get(id) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(id, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..ids_of.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

/// The trait keys whose value is one of `gone` (a trait named like the identifier's kind,
/// e.g. `email`, holding the same value once normalised): after an unmerge those traits
/// describe the person who left, not the one who stays.
pub fn traits_naming<'a>(
    traits: impl IntoIterator<Item = (&'a str, &'a str)>,
    gone: &[Identifier],
) -> Vec<String> {
    traits
        .into_iter()
        .filter(|(key, value)| {
            gone.iter()
                .any(|id| id.kind == *key && normalize(key, value).as_deref() == Some(&id.value))
        })
        .map(|(key, _)| key.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(kind: &str, value: &str) -> Identifier {
        Identifier::new(kind, value)
    }

    fn link(at: Millis, message_id: &str, ids: &[(&str, &str)]) -> Link {
        Link {
            at,
            message_id: message_id.into(),
            ids: ids.iter().map(|(k, v)| id(k, v)).collect(),
        }
    }

    fn partition(links: &[Link]) -> Vec<BTreeSet<Identifier>> {
        partition_with(&Rules::default(), links)
    }

    fn partition_with(rules: &Rules, links: &[Link]) -> Vec<BTreeSet<Identifier>> {
        let mut graph = IdentityGraph::new(rules.clone());
        for l in links {
            graph.add(l.clone());
        }
        graph
            .profiles()
            .into_iter()
            .map(|p| p.ids.into_keys().collect())
            .collect()
    }

    #[test]
    fn unmerge_moves_the_identifier_with_what_came_only_through_it() {
        // Bob's email was typed on Alice's laptop; Bob's phone browsing came in with it.
        let links = vec![
            link(1, "m1", &[("anonymousId", "laptop"), ("userId", "alice")]),
            link(2, "m2", &[("anonymousId", "laptop"), ("email", "bob@x.io")]),
            link(3, "m3", &[("anonymousId", "phone"), ("email", "bob@x.io")]),
            link(4, "m4", &[("anonymousId", "phone")]),
            link(5, "m5", &[("anonymousId", "laptop")]),
        ];
        let rules = Rules::default();
        let split = unmerge(&links, &id("email", "bob@x.io"), &rules).unwrap();
        assert_eq!(split.anchor, id("userId", "alice"));
        assert_eq!(
            split.moved.keys().cloned().collect::<Vec<_>>(),
            vec![id("anonymousId", "phone"), id("email", "bob@x.io")]
        );
        assert_eq!(
            split.kept.keys().cloned().collect::<Vec<_>>(),
            vec![id("anonymousId", "laptop"), id("userId", "alice")]
        );
        assert_eq!(
            split.moved_events,
            BTreeSet::from(["m2".to_owned(), "m3".to_owned(), "m4".to_owned()])
        );
        // Once the pair is kept apart, the same events never join them again, in any order.
        let mut apart = rules.clone();
        apart
            .separate
            .insert((id("email", "bob@x.io"), split.anchor.clone()));
        let mut graph = IdentityGraph::new(apart);
        for l in links.iter().rev() {
            graph.add(l.clone());
        }
        assert_eq!(graph.profiles().len(), 2);
        assert!(unmerge(&links, &id("email", "nobody@x.io"), &rules).is_none());
    }

    #[test]
    fn declared_identifier_kinds_are_read_from_traits() {
        let mut body = serde_json::Map::new();
        body.insert("traits".into(), json!({"crm_id": " C-1 ", "plan": "pro"}));
        let event = Event {
            kind: EventType::Identify,
            message_id: "m".into(),
            anonymous_id: Some("a".into()),
            user_id: None,
            name: None,
            timestamp: 0,
            received_at: 0,
            body,
        };
        let crm = vec!["crm_id".to_owned()];
        assert_eq!(
            identifiers_of(&event, &crm),
            vec![id("anonymousId", "a"), id("crm_id", "C-1")]
        );
        assert_eq!(identifiers_of(&event, &[]), vec![id("anonymousId", "a")]);
        let mut rules = Rules::default();
        assert!(rules.declare(&crm).is_ok());
        assert!(rules
            .declare(&["email".to_owned()])
            .unwrap_err()
            .contains("cannot be declared"));
    }

    #[test]
    fn rules_come_from_json_with_clear_errors() {
        let rules = Rules::parse(
            r#"{"limits": {"userId": 1, "email": 1}, "blocked": [" Test@Example.com "]}"#,
        )
        .unwrap();
        assert_eq!(rules.limits.get("email"), Some(&1));
        assert_eq!(
            rules.priority,
            Rules::default().priority,
            "left out: default"
        );
        assert!(!rules.admits(&id("email", "test@example.com")));
        assert!(rules.admits(&id("email", "ada@example.com")));
        let one_email = partition_with(
            &rules,
            &[
                link(1, "m1", &[("anonymousId", "a"), ("email", "x@x.io")]),
                link(2, "m2", &[("anonymousId", "a"), ("email", "y@x.io")]),
            ],
        );
        assert_eq!(one_email.len(), 2, "a second email starts a new profile");
        for (bad, says) in [
            (r#"{"limits": {"email": 0}}"#, "is 0"),
            (r#"{"priority": ["email", "email"]}"#, "twice"),
            (r#"{"limit": {}}"#, "unknown field"),
        ] {
            let e = Rules::parse(bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let phone_first = Rules::parse(r#"{"priority": ["phone", "userId"]}"#).unwrap();
        assert_eq!(
            phone_first.strongest(&[id("userId", "u"), id("phone", "+4912345678")]),
            Some(&id("phone", "+4912345678"))
        );
    }

    #[test]
    fn normalises_and_blocks() {
        assert_eq!(
            normalize("email", "  Ada@Example.COM "),
            Some("ada@example.com".into())
        );
        assert_eq!(normalize("email", "not-an-email"), None);
        assert_eq!(
            normalize("phone", "+49 (30) 1234-5678"),
            Some("+493012345678".into())
        );
        assert_eq!(
            normalize("phone", "0049 30 12345678"),
            Some("+493012345678".into())
        );
        assert_eq!(normalize("phone", "12"), None);
        for blocked in [
            "null",
            "undefined",
            "0",
            "anonymous",
            "",
            "  ",
            "NULL",
            "[object Object]",
        ] {
            assert_eq!(normalize("userId", blocked), None, "{blocked:?}");
        }
        assert_eq!(normalize("userId", " u-1 "), Some("u-1".into()));
    }

    #[test]
    fn reads_identifiers_of_events() {
        let mut body = serde_json::Map::new();
        body.insert("traits".into(), json!({"email": "A@B.co", "phone": "null"}));
        let event = Event {
            kind: EventType::Identify,
            message_id: "m".into(),
            anonymous_id: Some("anon".into()),
            user_id: Some("undefined".into()),
            name: None,
            timestamp: 0,
            received_at: 0,
            body,
        };
        assert_eq!(
            identifiers_of(&event, &[]),
            vec![id("anonymousId", "anon"), id("email", "a@b.co")]
        );
    }

    #[test]
    fn login_keeps_the_anonymous_history() {
        let profiles = partition(&[
            link(1, "m1", &[("anonymousId", "a1")]),
            link(2, "m2", &[("anonymousId", "a1"), ("userId", "u1")]),
        ]);
        assert_eq!(
            profiles,
            vec![BTreeSet::from([
                id("anonymousId", "a1"),
                id("userId", "u1")
            ])]
        );
    }

    #[test]
    fn two_devices_of_one_user_become_one_profile() {
        let profiles = partition(&[
            link(1, "m1", &[("anonymousId", "laptop")]),
            link(2, "m2", &[("anonymousId", "phone")]),
            link(3, "m3", &[("anonymousId", "laptop"), ("userId", "u1")]),
            link(4, "m4", &[("anonymousId", "phone"), ("userId", "u1")]),
        ]);
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].len(), 3);
    }

    #[test]
    fn a_second_user_on_a_shared_device_starts_a_new_profile() {
        let profiles = partition(&[
            link(1, "m1", &[("anonymousId", "kiosk"), ("userId", "alice")]),
            link(2, "m2", &[("anonymousId", "kiosk"), ("userId", "bob")]),
        ]);
        assert_eq!(
            profiles,
            vec![
                BTreeSet::from([id("anonymousId", "kiosk"), id("userId", "alice")]),
                BTreeSet::from([id("userId", "bob")])
            ]
        );
    }

    #[test]
    fn plan_sends_the_second_users_event_to_a_new_profile_and_a_login_to_the_visitor() {
        let home = BTreeMap::from([
            (id("anonymousId", "kiosk"), "p-alice"),
            (id("anonymousId", "visitor"), "p-visitor"),
        ]);
        let holdings = BTreeMap::from([
            (
                "p-alice",
                BTreeSet::from([id("anonymousId", "kiosk"), id("userId", "alice")]),
            ),
            ("p-visitor", BTreeSet::from([id("anonymousId", "visitor")])),
        ]);
        let bob = plan(
            &[id("anonymousId", "kiosk"), id("userId", "bob")],
            &home,
            &holdings,
            &Rules::default(),
        );
        assert_eq!(
            bob,
            Plan {
                target: None,
                merge: vec![],
                link: vec![id("userId", "bob")],
                apart: vec![]
            }
        );
        let login = plan(
            &[id("anonymousId", "visitor"), id("userId", "carol")],
            &home,
            &holdings,
            &Rules::default(),
        );
        assert_eq!(
            login,
            Plan {
                target: Some("p-visitor"),
                merge: vec![],
                link: vec![id("userId", "carol")],
                apart: vec![]
            }
        );
    }

    #[test]
    fn an_email_never_joins_two_users() {
        let profiles = partition(&[
            link(1, "m1", &[("userId", "u1"), ("email", "shared@x.io")]),
            link(2, "m2", &[("userId", "u2"), ("email", "shared@x.io")]),
        ]);
        assert_eq!(profiles.len(), 2);
    }

    /// A tiny deterministic generator, so the property test needs no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn merges_are_idempotent_and_commutative_over_shuffled_duplicated_streams() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let pool: Vec<Identifier> = (0..6)
                .map(|i| id("anonymousId", &format!("a{i}")))
                .chain((0..3).map(|i| id("userId", &format!("u{i}"))))
                .chain((0..2).map(|i| id("email", &format!("e{i}@x.io"))))
                .collect();
            let links: Vec<Link> = (0..rng.below(12) + 1)
                .map(|n| {
                    let count = rng.below(3) + 1;
                    let ids = (0..count)
                        .map(|_| pool[rng.below(pool.len() as u64) as usize].clone())
                        .collect();
                    Link {
                        at: rng.below(5) as Millis,
                        message_id: format!("m{round}-{n}"),
                        ids,
                    }
                })
                .collect();
            let expected = partition(&links);
            // Every identifier lands in exactly one profile, and every profile keeps the rules.
            let all: BTreeSet<&Identifier> = links.iter().flat_map(|l| &l.ids).collect();
            assert_eq!(expected.iter().map(BTreeSet::len).sum::<usize>(), all.len());
            assert!(expected.iter().all(|p| Rules::default().allows(p)));
            for _ in 0..5 {
                let mut shuffled = links.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let dup = shuffled[rng.below(shuffled.len() as u64) as usize].clone();
                shuffled.push(dup);
                assert_eq!(partition(&shuffled), expected, "round {round}");
            }
        }
    }

    #[test]
    fn the_traits_of_an_identifier_that_left_are_named() {
        let gone = [Identifier {
            kind: "email".into(),
            value: "ada@example.com".into(),
        }];
        let traits = [
            ("email", " Ada@Example.com "),
            ("name", "ada@example.com"),
            ("phone", "+441234"),
        ];
        assert_eq!(traits_naming(traits, &gone), ["email"]);
        assert!(traits_naming([("email", "bob@example.com")], &gone).is_empty());
    }

    #[test]
    fn events_are_grouped_by_the_identifiers_they_share() {
        let id = |kind: &str, value: &str| Identifier {
            kind: kind.into(),
            value: value.into(),
        };
        let events = vec![
            vec![id("anonymousId", "a")],
            vec![id("anonymousId", "b")],
            vec![id("anonymousId", "c"), id("userId", "u")],
            vec![id("anonymousId", "a"), id("userId", "u")],
            vec![],
            vec![id("anonymousId", "b")],
        ];
        assert_eq!(
            linked_groups(&events),
            vec![vec![0, 2, 3], vec![1, 5], vec![4]]
        );
        assert!(linked_groups(&[]).is_empty());
    }

    #[test]
    fn only_user_and_anonymous_ids_are_matched_across_kinds() {
        assert_eq!(
            Identifier::new("userId", "42").any_kind_key().as_deref(),
            Some("*:42")
        );
        assert_eq!(
            Identifier::new("anonymousId", "42")
                .any_kind_key()
                .as_deref(),
            Some("*:42")
        );
        assert_eq!(Identifier::new("crm_id", "42").any_kind_key(), None);
        assert_eq!(
            Identifier::new("userId", "42").suppression_keys(),
            ["userId:42", "*:42"]
        );
        assert_eq!(
            Identifier::new("crm_id", "42").suppression_keys(),
            ["crm_id:42"]
        );
        assert_eq!(Identifier::new("email", "a@b.c").any_kind_key(), None);
    }
}
