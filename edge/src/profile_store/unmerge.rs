//! Unmerge inside one profile: how it splits (by the pure rule), and letting the moved part
//! go; with the pairs of identifiers the profile must keep apart from then on.

use std::collections::BTreeMap;

use cdp_protocol::event::{Event, EventType};
use cdp_protocol::identity::{identifiers_of, traits_naming, Cause, Identifier, Link};
use serde_json::{Map, Value};
use worker::Result;

use super::events::{self, Taken};
use super::object::ProfileStore;
use super::{Detach, EventRow, IdentityRow, Pair, Split, SplitAsk};

impl ProfileStore {
    pub(super) fn kept_apart(&self) -> Result<Vec<(String, String)>> {
        if !self.has("kept_apart")? {
            return Ok(Vec::new());
        }
        Ok(self
            .sql()
            .exec("SELECT a AS key, b AS value FROM kept_apart", None)?
            .to_array::<Pair>()?
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect())
    }

    pub(super) fn keep_apart(&self, a: &str, b: &str) -> Result<()> {
        self.create("kept_apart")?;
        self.sql().exec(
            "INSERT OR IGNORE INTO kept_apart (a, b) VALUES (?, ?)",
            vec![a.into(), b.into()],
        )?;
        Ok(())
    }

    /// The events as links of identifiers, for the pure unmerge.
    pub(super) fn split(&self, ask: &SplitAsk) -> Result<Option<Split>> {
        let sql = self.sql();
        let rows: Vec<EventRow> = sql
            .exec(
                &events::with("SELECT message_id, type, name, timestamp, received_at, body, source, seq FROM events"),
                None,
            )?
            .to_array()?;
        let links: Vec<Link> = rows
            .iter()
            .filter_map(|r| {
                let body: Map<String, Value> = serde_json::from_str(&r.body).ok()?;
                let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
                let event = Event {
                    kind: EventType::parse(&r.r#type)?,
                    message_id: r.message_id.clone(),
                    anonymous_id: text("anonymousId"),
                    user_id: text("userId"),
                    name: r.name.clone(),
                    timestamp: r.timestamp,
                    received_at: r.received_at,
                    body,
                };
                let ids = identifiers_of(&event, &ask.rules.identifiers)
                    .into_iter()
                    .filter(|id| ask.rules.admits(id))
                    .collect();
                Some(Link {
                    at: r.timestamp,
                    message_id: r.message_id.clone(),
                    ids,
                })
            })
            .collect();
        let Some(split) = cdp_protocol::identity::unmerge(&links, &ask.detach, &ask.rules) else {
            return Ok(None);
        };
        let rows_of = |ids: &BTreeMap<Identifier, Cause>| {
            ids.iter()
                .map(|(id, cause)| IdentityRow {
                    kind: id.kind.clone(),
                    value: id.value.clone(),
                    first_seen: cause.at,
                    message_id: cause.message_id.clone(),
                    via: cause.via.as_ref().map(Identifier::key),
                })
                .collect()
        };
        Ok(Some(Split {
            anchor: split.anchor.key(),
            moved: rows_of(&split.moved),
            kept: rows_of(&split.kept),
            events: rows
                .into_iter()
                .filter(|r| split.moved_events.contains(&r.message_id))
                .collect(),
        }))
    }

    /// Lets the moved part of an unmerge go: its events and identifiers leave, the kept
    /// identifiers get their new causes, traits and aggregate are rebuilt, and it is logged.
    pub(super) fn detach(&self, detach: &Detach) -> Result<()> {
        let sql = self.sql();
        self.delete_events(Taken::Ids(&detach.message_ids))?;
        sql.exec(&super::table::IDENTITY.delete(), None)?;
        for row in &detach.kept {
            self.link(row)?;
        }
        self.rebuild()?;
        self.forget_traits_of(&detach.moved)?;
        self.keep_apart(&detach.identifier, &detach.anchor)?;
        self.create("unmerge_log")?;
        sql.exec(
            "INSERT INTO unmerge_log (at, identifier, kept_apart_from, profile, identifiers) VALUES (?, ?, ?, ?, ?)",
            vec![
                (worker::Date::now().as_millis() as i64).into(),
                detach.identifier.as_str().into(),
                detach.anchor.as_str().into(),
                detach.into.as_str().into(),
                detach.moved.join(" ").into(),
            ],
        )?;
        Ok(())
    }

    /// Removes the traits that name identifiers which left (the detached email as
    /// `traits.email`), which the rebuild took from events that stayed.
    pub(super) fn forget_traits_of(&self, moved: &[String]) -> Result<()> {
        let gone: Vec<Identifier> = moved
            .iter()
            .filter_map(|k| Identifier::from_key(k))
            .collect();
        let (traits, _) = self.traits()?;
        let texts: Vec<(&str, &str)> = traits
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        for key in traits_naming(texts, &gone) {
            self.sql()
                .exec("DELETE FROM traits WHERE key = ?", vec![key.into()])?;
        }
        Ok(())
    }
}
