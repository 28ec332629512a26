//! The profile store: one Durable Object per profile (named by its profile id), with the
//! profile's events, identifiers (each with the event that linked it), traits and merge log
//! in the object's own SQLite database.
//!
//! Writing is idempotent by `messageId` (an event whose id the profile holds is not stored
//! again), which is what turns at-least-once delivery into exactly-once in the profile.
//! Each newly stored event also updates the traits (latest by event time, with the source and event of each value)
//! and the computed traits' aggregate, in the same synchronous write. A merge copies a
//! profile into another (idempotent too), then leaves a forward in the emptied one, so a
//! stale reference still finds the person; an unmerge splits one off again. Every change
//! ends in one hook ([`change`]): the profile's notice to the [`directory`](crate::directory)
//! goes through an outbox written with the change, and its deadlines (an abandoned cart, a
//! retry) share the object's one alarm.
//!
//! This module is the Worker's side: the calls other parts make and what they carry.
//! [`object`] is the Durable Object (schema and writes), [`table`] how its state lies in
//! its one table, [`events`] its events, [`views`] what a profile shows, [`unmerge`] how a
//! profile splits.

mod change;
mod events;
mod membership;
mod object;
mod retention;
mod table;
mod unmerge;
mod views;

use std::collections::BTreeMap;

use cdp_protocol::event::Event;
use cdp_protocol::identity::{Identifier, Rules};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Env, Method, Request, RequestInit, Result};

use crate::audiences::registry::Definitions;
use crate::config::PROFILES;

pub use object::ProfileStore;

/// An identifier as the profile keeps it: with the event that linked it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRow {
    /// Identifier kind.
    pub kind: String,
    /// Normalised value.
    pub value: String,
    /// Time of the linking event.
    pub first_seen: i64,
    /// The linking event.
    pub message_id: String,
    /// The identifier it was linked through, `kind:value`.
    pub via: Option<String>,
}

impl IdentityRow {
    /// `kind:value`, as the index names the identifier.
    pub fn key(&self) -> String {
        [self.kind.as_str(), ":", &self.value].concat()
    }
}

/// What a profile holds of identity, for resolution.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Holding {
    /// Set when this profile was merged into another.
    pub merged_into: Option<String>,
    /// Its identifiers.
    pub ids: Vec<Identifier>,
    /// Pairs of identifiers (`kind:value`) an admin said are two people (unmerge): no
    /// event may join them in one profile.
    #[serde(default)]
    pub apart: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct IngestBody {
    profile: String,
    events: Vec<Event>,
    links: Vec<IdentityRow>,
    /// Name of the source of each event, by `messageId`.
    #[serde(default)]
    sources: BTreeMap<String, String>,
    /// The audience definitions as the delivery read them.
    #[serde(default)]
    audiences: Option<Definitions>,
    /// The delivery may have reached the profile before, and its membership changes not
    /// been sent: those recorded with events held already are handed back again.
    #[serde(default)]
    again: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct EventRow {
    message_id: String,
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    received_at: i64,
    body: String,
    #[serde(default)]
    source: Option<String>,
    /// The order it was stored in (see the events table).
    #[serde(default)]
    seq: i64,
}

#[derive(Serialize, Deserialize)]
struct TraitRow {
    key: String,
    value: String,
    timestamp: i64,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Dump {
    events: Vec<EventRow>,
    identity: Vec<IdentityRow>,
    #[serde(default)]
    apart: Vec<(String, String)>,
    /// What retention left of the profile's expired events (see `retention`).
    #[serde(default)]
    expired: Option<cdp_protocol::computed::Aggregate>,
    #[serde(default)]
    audience_facts: Vec<retention::KeptFact>,
    /// What the profile held when this was taken, as [`Dump::version`] says it: a merge's
    /// forward is refused when the profile changed since (its changes would be cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

impl Dump {
    /// A fingerprint of what the dump holds, in an order of its own (the rows' order in
    /// SQLite is not part of it): equal when nothing was added, removed or re-linked.
    fn version(&self) -> Result<String> {
        let mut parts: Vec<String> = self.events.iter().map(|e| e.message_id.clone()).collect();
        parts.extend(
            self.identity
                .iter()
                .map(|r| format!("{}\u{1f}{}\u{1f}{}", r.key(), r.first_seen, r.message_id)),
        );
        parts.extend(self.apart.iter().map(|(a, b)| format!("{a}\u{1f}{b}")));
        parts.sort();
        parts.push(to_json(&self.expired)?);
        parts.push(to_json(&self.audience_facts)?);
        let text = parts.join("\u{1e}");
        Ok(format!(
            "{:016x}",
            cdp_protocol::hash::fnv1a(text.as_bytes(), cdp_protocol::hash::FNV_OFFSET)
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct Absorb {
    from: String,
    message_id: String,
    at: i64,
    dump: Dump,
    /// Set when the profile is created by an unmerge (split from `from`) rather than a merge.
    #[serde(default)]
    split_into: Option<String>,
}

/// What an unmerge moves out of a profile, as the profile computes it.
#[derive(Serialize, Deserialize)]
pub struct Split {
    /// The identifier kept apart from the detached one from now on (`kind:value`).
    pub anchor: String,
    moved: Vec<IdentityRow>,
    kept: Vec<IdentityRow>,
    events: Vec<EventRow>,
}

impl Split {
    /// The identifiers that move, `kind:value`.
    pub fn moved_keys(&self) -> Vec<String> {
        self.moved.iter().map(IdentityRow::key).collect()
    }

    /// How many events move.
    pub fn moved_events(&self) -> usize {
        self.events.len()
    }
}

#[derive(Serialize, Deserialize)]
struct SplitAsk {
    detach: Identifier,
    rules: Rules,
}

/// A request to one profile's object: callers build it and the object reads it, one type
/// for both, so a misspelt route or a missing field is a compile error or a 400, never a
/// default that deletes data.
#[derive(Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "camelCase")]
enum Ask {
    /// Store events and link identifiers.
    Ingest(IngestBody),
    /// What the profile holds of identity.
    Holding,
    /// Everything, for a merge.
    Dump,
    /// Take in a merged or split-off profile.
    Absorb(Absorb),
    /// How the profile would split (changes nothing).
    Split(SplitAsk),
    /// Let an unmerged part go.
    Detach(Detach),
    /// The profile was merged into `to`: empty it and leave a forward, unless it changed
    /// since the dump of `version` was taken.
    Forward {
        to: String,
        #[serde(default)]
        version: Option<String>,
    },
    /// Erase everything.
    Erase,
    /// The profile as the admin API shows it.
    Profile,
    /// Why its identifiers belong together.
    Explain,
    /// Everything held, for a subject access request.
    Export,
    /// Its events, filtered and paged by the timeline query's parameters.
    Timeline { query: Vec<(String, String)> },
    /// Evaluate its audiences under these definitions (a backfill).
    Evaluate { audiences: Definitions },
    /// The audiences it is in.
    Memberships,
    /// Whether it would be in audience `key` under these definitions (changes nothing).
    Preview { audiences: Definitions, key: String },
}

/// Which view of a profile to read.
#[derive(Clone)]
pub enum Showing {
    /// The profile.
    Profile,
    /// Why its identifiers belong together.
    Explain,
    /// Everything held.
    Export,
    /// Its events, by the timeline query's parameters.
    Timeline(Vec<(String, String)>),
}

impl From<Showing> for Ask {
    fn from(showing: Showing) -> Self {
        match showing {
            Showing::Profile => Ask::Profile,
            Showing::Explain => Ask::Explain,
            Showing::Export => Ask::Export,
            Showing::Timeline(query) => Ask::Timeline { query },
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Detach {
    identifier: String,
    anchor: String,
    into: String,
    message_ids: Vec<String>,
    moved: Vec<String>,
    kept: Vec<IdentityRow>,
}

/// What an erasure removed, for the index and the archive to forget too.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Erased {
    /// The person's events.
    pub message_ids: Vec<String>,
    /// The person's identifiers, `kind:value`.
    pub identifiers: Vec<String>,
}

/// Erases profile `profile`; returns what it held.
pub async fn erase(env: &Env, profile: &str) -> Result<Erased> {
    Ok(call(env, profile, &Ask::Erase).await?.1)
}

/// What an ingest call reports back.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct IngestReport {
    /// Events newly stored.
    pub stored: usize,
    /// Events already held (same `messageId`), ignored.
    pub duplicates: usize,
    /// The profile's summary for the directory, which the caller publishes together with
    /// the other profiles of its batch (one call per directory shard, not one per profile).
    #[serde(default)]
    pub summary: Option<Value>,
    /// The audience entries and exits the delivery caused, which the caller sends to the
    /// activation queue with the rest of its delivery (see `change`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<cdp_protocol::destination::Change>,
    /// Events not stored because the profile was erased after the delivery resolved them to
    /// it (by `messageId`): the erased person's, dropped as suppressed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<String>,
}

async fn call<T: DeserializeOwned>(env: &Env, profile: &str, ask: &Ask) -> Result<(u16, T)> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(to_json(ask)?.into()));
    let req = Request::new_with_init("https://profile/", &init)?;
    let stub = env
        .durable_object(PROFILES)?
        .id_from_name(profile)?
        .get_stub()?;
    let mut res = crate::meter::call(&stub, req).await?;
    let status = res.status_code();
    // A 404 (no such profile) and a 409 (nothing to split) are answers the callers read.
    if status >= 500 || !matches!(status, 200..=299 | 404 | 409) {
        let detail = res.text().await.unwrap_or_default();
        return Err(crate::http::internal_answer(
            "profile store",
            status,
            &detail,
        ));
    }
    Ok((status, res.json().await?))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(worker::Error::from)
}

/// Stores `events` in profile `profile` and links `links` to it; resolves once durable.
pub async fn ingest(
    env: &Env,
    profile: &str,
    events: &[Event],
    links: &[IdentityRow],
    sources: &BTreeMap<String, String>,
    audiences: &Definitions,
    again: bool,
) -> Result<IngestReport> {
    let ask = Ask::Ingest(IngestBody {
        profile: profile.to_owned(),
        events: events.to_vec(),
        links: links.to_vec(),
        sources: events
            .iter()
            .filter_map(|e| {
                sources
                    .get(&e.message_id)
                    .map(|s| (e.message_id.clone(), s.clone()))
            })
            .collect(),
        audiences: Some(audiences.clone()),
        again,
    });
    let (status, answer): (u16, Value) = call(env, profile, &ask).await?;
    if status == 409 {
        return Err(worker::Error::RustError(format!(
            "profile {profile} was merged away after its events were resolved to it; the delivery is tried again"
        )));
    }
    serde_json::from_value(answer).map_err(worker::Error::from)
}

/// Evaluates profile `profile`'s audiences under `audiences` (a backfill); whether its
/// membership changed.
pub async fn evaluate(env: &Env, profile: &str, audiences: &Definitions) -> Result<bool> {
    let ask = Ask::Evaluate {
        audiences: audiences.clone(),
    };
    let (_, answer): (u16, Value) = call(env, profile, &ask).await?;
    Ok(answer.get("changed").and_then(Value::as_bool) == Some(true))
}

/// Whether profile `profile` would be in audience `key` under `audiences` (a preview:
/// nothing is recorded).
pub async fn preview(env: &Env, profile: &str, audiences: &Definitions, key: &str) -> Result<bool> {
    let ask = Ask::Preview {
        audiences: audiences.clone(),
        key: key.to_owned(),
    };
    let (_, answer): (u16, Value) = call(env, profile, &ask).await?;
    Ok(answer.get("member").and_then(Value::as_bool) == Some(true))
}

/// The audiences profile `profile` is in (`[{key, since}]`), following merges.
pub async fn memberships(env: &Env, profile: &str) -> Result<Vec<Value>> {
    let mut id = profile.to_owned();
    for _ in 0..8 {
        let (_, answer): (u16, Value) = call(env, &id, &Ask::Memberships).await?;
        match answer.get("mergedInto").and_then(Value::as_str) {
            Some(next) => id = next.to_owned(),
            None => {
                let held = answer.get("audiences").and_then(Value::as_array);
                return Ok(held.cloned().unwrap_or_default());
            }
        }
    }
    Ok(Vec::new())
}

/// What profile `profile` holds of identity.
pub async fn holding(env: &Env, profile: &str) -> Result<Holding> {
    Ok(call(env, profile, &Ask::Holding).await?.1)
}

/// Merges profile `merge.from` into `merge.into`: copies everything, then leaves a forward
/// in `from`, unless `from` changed while it was copied (a consumer of another partition
/// stored events or linked an identifier there): then it is copied again. `before_forward`
/// runs once, before the first forward (local development's injected pause). Idempotent.
/// A profile merged away or erased meanwhile fails the merge, and the delivery is resolved
/// again.
pub async fn merge(
    env: &Env,
    merge: &cdp_protocol::routing::Merge,
    before_forward: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let (from, into) = (merge.from.as_str(), merge.into.as_str());
    let gone = |profile: &str| {
        worker::Error::RustError(format!(
            "profile {profile} was merged into another or erased while this delivery merged {from} into {into}; the delivery is resolved again"
        ))
    };
    let mut before_forward = Some(before_forward);
    for _ in 0..4 {
        let (status, dump): (u16, Value) = call(env, from, &Ask::Dump).await?;
        if status == 409 {
            return Err(gone(from));
        }
        let dump: Dump = serde_json::from_value(dump)?;
        let version = dump.version.clone();
        let absorb = Ask::Absorb(Absorb {
            from: from.to_owned(),
            message_id: merge.message_id.clone(),
            at: merge.at,
            dump,
            split_into: None,
        });
        if call::<Value>(env, into, &absorb).await?.0 == 409 {
            return Err(gone(into));
        }
        if let Some(pause) = before_forward.take() {
            pause.await;
        }
        let forward = Ask::Forward {
            to: into.to_owned(),
            version,
        };
        let (status, answer) = call::<Value>(env, from, &forward).await?;
        if status != 409 {
            return Ok(());
        }
        if answer.pointer("/error/reason").and_then(Value::as_str) != Some(CHANGED) {
            return Err(gone(from));
        }
    }
    Err(worker::Error::RustError(format!(
        "profile {from} kept changing while it was merged into {into}; the delivery is tried again"
    )))
}

/// The reason a forward gives when the profile changed since its dump.
const CHANGED: &str = "profile_changed";

/// How profile `profile` would split if `detach` left it (`None`: it does not hold it, or
/// holds nothing else). Changes nothing.
pub async fn split(
    env: &Env,
    profile: &str,
    detach: &Identifier,
    rules: &Rules,
) -> Result<Option<Split>> {
    let ask = Ask::Split(SplitAsk {
        detach: detach.clone(),
        rules: rules.clone(),
    });
    let (status, split): (u16, Value) = call(env, profile, &ask).await?;
    if status != 200 {
        return Ok(None);
    }
    serde_json::from_value(split)
        .map(Some)
        .map_err(worker::Error::from)
}

/// Carries out `split` of profile `from`: its moving part goes into the new profile `into`,
/// then `repoint` runs (the index learns where the moved identifiers live), and only then
/// does the part leave `from`: a failure at any step leaves every event and identifier in
/// at least one profile the index can reach, and the call can be repeated.
pub async fn apply_split(
    env: &Env,
    from: &str,
    into: &str,
    detach: &Identifier,
    split: Split,
    repoint: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let now = worker::Date::now().as_millis() as i64;
    let message_ids = split.events.iter().map(|e| e.message_id.clone()).collect();
    let moved = split.moved_keys();
    let absorb = Ask::Absorb(Absorb {
        from: from.to_owned(),
        message_id: "unmerge".to_owned(),
        at: now,
        dump: Dump {
            events: split.events,
            identity: split.moved,
            apart: vec![(detach.key(), split.anchor.clone())],
            // What retention took stays with the profile split from (it cannot be told
            // apart by identifier).
            expired: None,
            audience_facts: Vec::new(),
            version: None,
        },
        split_into: Some(into.to_owned()),
    });
    call::<Value>(env, into, &absorb).await?;
    repoint.await?;
    let detach = Ask::Detach(Detach {
        identifier: detach.key(),
        anchor: split.anchor,
        into: into.to_owned(),
        message_ids,
        moved,
        kept: split.kept,
    });
    call::<Value>(env, from, &detach).await?;
    Ok(())
}

/// A profile as the admin API shows it, or where it went.
pub enum View {
    /// The profile.
    Found(Value),
    /// Merged into another profile.
    MergedInto(String),
    /// No such profile.
    Missing,
}

/// A view of `profile`.
pub async fn view(env: &Env, profile: &str, showing: &Showing) -> Result<View> {
    let ask = Ask::from(showing.clone());
    let (status, body): (u16, Value) = call(env, profile, &ask).await?;
    Ok(
        match (status, body.get("mergedInto").and_then(Value::as_str)) {
            (200, Some(to)) => View::MergedInto(to.to_owned()),
            (200, None) => View::Found(body),
            _ => View::Missing,
        },
    )
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

#[derive(Deserialize)]
struct Text {
    value: String,
}

#[derive(Deserialize)]
struct PageRow {
    row: String,
    timestamp: i64,
    body: String,
}

#[derive(Deserialize)]
struct FactRow {
    message_id: String,
    r#type: String,
    name: Option<String>,
    timestamp: i64,
    body: String,
    source: Option<String>,
    /// The block that holds it, when asked for.
    #[serde(default)]
    block: Option<String>,
}

impl FactRow {
    /// Adds the event, whose body is `body`, to `aggregate`.
    fn add_to(
        &self,
        aggregate: &mut cdp_protocol::computed::Aggregate,
        body: &serde_json::Map<String, Value>,
    ) {
        aggregate.add(&cdp_protocol::computed::Fact {
            kind: &self.r#type,
            name: self.name.as_deref(),
            timestamp: self.timestamp,
            body,
            source: self.source.as_deref(),
        });
    }
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct Pair {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct UnmergeRow {
    at: i64,
    identifier: String,
    kept_apart_from: String,
    profile: String,
    identifiers: String,
}

#[derive(Deserialize, Serialize)]
struct MergeRow {
    at: i64,
    absorbed: String,
    message_id: String,
    identifiers: String,
}
