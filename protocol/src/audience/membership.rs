//! Whether a person is in an audience now, and the next instant the answer can change
//! without a new event (a window running out, a sequence's wait ending). The profile's
//! object calls this after every change and again, by alarm, at that instant; nothing
//! else decides membership, so a kept membership and a fresh evaluation cannot disagree.

use serde_json::Value;

use super::definition::{Aggregate, Cond, Count, Did, EventKind, Fold, Matcher, Then, Window};
use crate::search::Op;

/// One event of the person, as evaluation reads it.
#[derive(Debug, Clone, Copy)]
pub struct Fact<'a> {
    /// `track`, `page`, …
    pub r#type: &'a str,
    /// A track event's name.
    pub name: Option<&'a str>,
    /// Event time (ms).
    pub timestamp: i64,
    /// The whole event (`properties`, `context`, `traits`).
    pub body: &'a Value,
}

/// What evaluation knows of a person.
pub struct Subject<'a> {
    /// Their events, in any order.
    pub events: &'a [Fact<'a>],
    /// `{"traits": …, "computed": …, "identifiers": …}`, as profile search sees it.
    pub profile: &'a Value,
    /// Membership in other audiences (for `inAudience`), evaluated before.
    pub member_of: &'a dyn Fn(&str) -> bool,
}

/// An audience's answer for one person at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// In the audience.
    pub member: bool,
    /// The next instant after `now` at which the answer can change with no new event.
    pub next_change: Option<i64>,
}

/// Evaluates `cond` for `subject` at `now`. Events later than `now` do not count yet
/// (their time is a next change).
pub fn evaluate(cond: &Cond, subject: &Subject<'_>, now: i64) -> Verdict {
    let mut next = Next { now, at: None };
    let member = holds(cond, subject, now, &mut next);
    Verdict {
        member,
        next_change: next.at,
    }
}

/// The earliest instant after `now` worth waking for.
struct Next {
    now: i64,
    at: Option<i64>,
}

impl Next {
    fn offer(&mut self, at: i64) {
        if at > self.now {
            self.at = Some(self.at.map_or(at, |a| a.min(at)));
        }
    }
}

fn holds(cond: &Cond, subject: &Subject<'_>, now: i64, next: &mut Next) -> bool {
    match cond {
        // Every child is evaluated (no short cut), so each one's next change is known.
        Cond::All(items) => {
            let each: Vec<bool> = items.iter().map(|c| holds(c, subject, now, next)).collect();
            each.iter().all(|held| *held)
        }
        Cond::Any(items) => {
            let each: Vec<bool> = items.iter().map(|c| holds(c, subject, now, next)).collect();
            each.iter().any(|held| *held)
        }
        Cond::Not(inner) => !holds(inner, subject, now, next),
        Cond::Have(condition) => condition.holds(subject.profile),
        Cond::InAudience(key) => (subject.member_of)(key),
        Cond::Did(did) => did_holds(did, subject, now, next),
    }
}

fn matches(matcher: &Matcher, fact: &Fact<'_>) -> bool {
    let kind = match &matcher.event {
        EventKind::Named(name) => fact.r#type == "track" && fact.name == Some(name.as_str()),
        EventKind::Type(t) => fact.r#type == t,
    };
    kind && matcher.filters.iter().all(|f| f.holds(fact.body))
}

fn in_window(window: Window, t: i64, now: i64) -> bool {
    match window {
        Window::Ever => true,
        Window::Sliding(w) => t > now - w,
        Window::Between(from, to) => (from..=to).contains(&t),
    }
}

fn did_holds(did: &Did, subject: &Subject<'_>, now: i64, next: &mut Next) -> bool {
    let mut counted: Vec<&Fact<'_>> = Vec::new();
    for fact in subject.events.iter().filter(|f| matches(&did.matcher, f)) {
        if fact.timestamp > now {
            next.offer(fact.timestamp);
            continue;
        }
        if in_window(did.window, fact.timestamp, now) {
            if let Window::Sliding(w) = did.window {
                next.offer(fact.timestamp + w);
            }
            counted.push(fact);
        }
    }
    let n = counted.len() as u64;
    let count_ok = match did.count {
        Count::AtLeast(k) => n >= u64::from(k),
        Count::AtMost(k) => n <= u64::from(k),
        Count::Exactly(k) => n == u64::from(k),
    };
    let aggregate_ok = did
        .aggregate
        .as_ref()
        .is_none_or(|a| aggregate_holds(a, &counted));
    let then_ok = match &did.then {
        None => true,
        Some(then) => {
            // Relative to the latest counted event, E.
            let latest = counted.iter().map(|f| f.timestamp).max();
            latest.is_some_and(|e| then_holds(then, e, subject, now, next))
        }
    };
    count_ok && aggregate_ok && then_ok
}

fn then_holds(then: &Then, e: i64, subject: &Subject<'_>, now: i64, next: &mut Next) -> bool {
    let mut followed_within = false;
    let mut followed = false;
    for fact in subject.events.iter().filter(|f| matches(&then.matcher, f)) {
        if fact.timestamp > now {
            next.offer(fact.timestamp);
        } else if fact.timestamp > e {
            followed = true;
            followed_within |= fact.timestamp <= e + then.within;
        }
    }
    if then.did {
        followed_within
    } else {
        // No follow-up since E, and E is at least `within` old.
        next.offer(e + then.within);
        !followed && now >= e + then.within
    }
}

fn aggregate_holds(aggregate: &Aggregate, facts: &[&Fact<'_>]) -> bool {
    let (group, key) = &aggregate.field;
    let values: Vec<f64> = facts
        .iter()
        .filter_map(|f| f.body.get(group)?.get(key)?.as_f64())
        .collect();
    let folded = match aggregate.fold {
        Fold::Sum => Some(values.iter().sum()),
        Fold::Avg if values.is_empty() => None,
        Fold::Avg => Some(values.iter().sum::<f64>() / values.len() as f64),
        Fold::Min => values.iter().copied().reduce(f64::min),
        Fold::Max => values.iter().copied().reduce(f64::max),
    };
    let Some(v) = folded else {
        return false;
    };
    let target = aggregate.value;
    match aggregate.op {
        Op::Eq => v == target,
        Op::Ne => v != target,
        Op::Gt => v > target,
        Op::Ge => v >= target,
        Op::Lt => v < target,
        Op::Le => v <= target,
        Op::Contains | Op::Exists => false,
    }
}
