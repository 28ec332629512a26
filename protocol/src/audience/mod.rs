//! Audiences: named groups of people by what they did, did not do and have, kept current
//! as events arrive and as time passes.
//!
//! [`definition`] checks what a marketer writes; [`membership`] decides, for one person at
//! one instant, whether they are in and when that can next change by itself. This module
//! evaluates a workspace's audiences together, in dependency order (`inAudience`).

pub mod definition;
pub mod membership;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

pub use definition::{parse, Cond, Definition, DefinitionError};
pub use membership::{evaluate, Fact, Subject, Verdict};

use definition::EventKind;

/// The audiences `cond` names with `inAudience`.
fn references(cond: &Cond, out: &mut BTreeSet<String>) {
    match cond {
        Cond::All(items) | Cond::Any(items) => items.iter().for_each(|c| references(c, out)),
        Cond::Not(inner) => references(inner, out),
        Cond::InAudience(key) => {
            out.insert(key.clone());
        }
        Cond::Did(_) | Cond::Have(_) => {}
    }
}

/// The audiences `definition` depends on.
pub fn depends_on(definition: &Definition) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    references(&definition.condition, &mut out);
    out
}

/// The definitions in an order where each comes after those it names with `inAudience`;
/// refuses an unknown name or a cycle, naming the audience.
pub fn ordered(definitions: &[Definition]) -> Result<Vec<&Definition>, DefinitionError> {
    let by_key: BTreeMap<&str, &Definition> =
        definitions.iter().map(|d| (d.key.as_str(), d)).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for d in definitions {
        visit(d, &by_key, &mut done, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

fn visit<'a>(
    d: &'a Definition,
    by_key: &BTreeMap<&str, &'a Definition>,
    done: &mut BTreeSet<&'a str>,
    path: &mut Vec<&'a str>,
    out: &mut Vec<&'a Definition>,
) -> Result<(), DefinitionError> {
    if done.contains(d.key.as_str()) {
        return Ok(());
    }
    if path.contains(&d.key.as_str()) {
        path.push(&d.key);
        return Err(DefinitionError {
            at: "where".into(),
            message: format!("inAudience makes a cycle: {}", path.join(" → ")),
        });
    }
    path.push(&d.key);
    for key in depends_on(d) {
        let Some(next) = by_key.get(key.as_str()) else {
            return Err(DefinitionError {
                at: "where".into(),
                message: format!("inAudience names {key:?}, which is no audience"),
            });
        };
        visit(next, by_key, done, path, out)?;
    }
    path.pop();
    done.insert(&d.key);
    out.push(d);
    Ok(())
}

/// The event names and types any of `definitions` looks at, so a profile reads only those.
pub fn events_read(definitions: &[Definition]) -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(cond: &Cond, names: &mut BTreeSet<String>, types: &mut BTreeSet<String>) {
        let mut take = |kind: &EventKind| match kind {
            EventKind::Named(n) => {
                names.insert(n.clone());
            }
            EventKind::Type(t) => {
                types.insert(t.clone());
            }
        };
        match cond {
            Cond::All(items) | Cond::Any(items) => {
                items.iter().for_each(|c| walk(c, names, types));
            }
            Cond::Not(inner) => walk(inner, names, types),
            Cond::Did(did) => {
                take(&did.matcher.event);
                if let Some(then) = &did.then {
                    take(&then.matcher.event);
                }
            }
            Cond::Have(_) | Cond::InAudience(_) => {}
        }
    }
    let (mut names, mut types) = (BTreeSet::new(), BTreeSet::new());
    for d in definitions {
        walk(&d.condition, &mut names, &mut types);
    }
    (names, types)
}

/// Every audience's verdict for one person at `now`. `definitions` must have passed
/// [`ordered`]; an `inAudience` naming an unknown audience is false.
pub fn evaluate_all(
    definitions: &[Definition],
    events: &[Fact<'_>],
    profile: &Value,
    now: i64,
) -> BTreeMap<String, Verdict> {
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    let order = ordered(definitions).unwrap_or_else(|_| definitions.iter().collect());
    for d in order {
        let known = verdicts.clone();
        let member_of = move |key: &str| known.get(key).is_some_and(|v| v.member);
        let subject = Subject {
            events,
            profile,
            member_of: &member_of,
        };
        let mut verdict = evaluate(&d.condition, &subject, now);
        // A change in an audience this one names is a change here too.
        for key in depends_on(d) {
            if let Some(at) = verdicts.get(&key).and_then(|v| v.next_change) {
                verdict.next_change = Some(verdict.next_change.map_or(at, |n| n.min(at)));
            }
        }
        verdicts.insert(d.key.clone(), verdict);
    }
    verdicts
}

#[cfg(test)]
mod tests;
