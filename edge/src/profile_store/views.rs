//! What a profile shows: the view, the timeline, the export, the explanation, and the
//! computed traits.

use cdp_protocol::computed;
use cdp_protocol::timeline::TimelineQuery;
use serde_json::{json, Map, Value};
use worker::Result;

use super::events;
use super::object::ProfileStore;
use super::table;
use super::{BodyRow, Count, IdentityRow, MergeRow, PageRow, TraitRow, UnmergeRow};
use crate::config;

/// How many events a profile view returns, newest first.
const VIEW_EVENTS: i64 = 100;

impl ProfileStore {
    /// The traits, and where each value came from: `(traits, sources)`.
    pub(super) fn traits(&self) -> Result<(Map<String, Value>, Map<String, Value>)> {
        if !self.has("traits")? {
            return Ok((Map::new(), Map::new()));
        }
        let rows = self
            .sql()
            .exec(
                "SELECT key, value, timestamp, source, message_id FROM traits ORDER BY key",
                None,
            )?
            .to_array::<TraitRow>()?;
        let mut traits = Map::new();
        let mut sources = Map::new();
        for r in rows {
            sources.insert(
                r.key.clone(),
                json!({"updatedAt": cdp_protocol::time::format_rfc3339(r.timestamp),
                       "source": r.source, "messageId": r.message_id}),
            );
            let value = serde_json::from_str(&r.value).unwrap_or(Value::String(r.value));
            traits.insert(r.key, value);
        }
        Ok((traits, sources))
    }

    pub(super) fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.sql()
            .exec(
                &table::with(
                    &[table::identity()],
                    "SELECT kind, value, first_seen, message_id, via FROM identity ORDER BY first_seen, kind",
                ),
                None,
            )?
            .to_array()
    }

    pub(super) fn profile(&self) -> Result<Option<Value>> {
        let sql = self.sql();
        let total = sql
            .exec(&events::with("SELECT COUNT(*) AS n FROM events"), None)?
            .one::<Count>()?
            .n;
        let identities = self.identities()?;
        if total == 0 && identities.is_empty() {
            return Ok(None);
        }
        let identifiers: Vec<Value> = identities
            .iter()
            .map(|r| json!({"type": r.kind, "value": r.value}))
            .collect();
        let (traits, trait_sources) = self.traits()?;
        let events: Vec<Value> = sql
            .exec(
                &events::with("SELECT body FROM events ORDER BY timestamp DESC, received_at DESC, seq DESC, message_id DESC LIMIT ?"),
                vec![VIEW_EVENTS.into()],
            )?
            .to_array::<BodyRow>()?
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": identifiers,
            "traits": traits,
            "traitSources": trait_sources,
            "computedTraits": self.computed()?,
            "eventCount": total,
            // What the profile's own database holds (its tables, indexes and free pages).
            "storageBytes": self.sql().database_size(),
            "events": events,
            "audiences": self
                .memberships()?
                .iter()
                .map(|(key, since)| super::membership::shown(key, *since))
                .collect::<Vec<_>>(),
        })))
    }

    /// A page of the timeline, newest first, as `query` asks (see [`TimelineQuery`]).
    pub(super) fn timeline(&self, query: &TimelineQuery) -> Result<Option<Value>> {
        let limit = query.limit;
        // The cursor's row is `seq.messageId` of the previous page's last event.
        let (cursor_time, cursor_row) = query.cursor.clone().unwrap_or((i64::MAX, String::new()));
        let (cursor_seq, cursor_id) = cursor_row
            .split_once('.')
            .and_then(|(seq, id)| Some((seq.parse::<i64>().ok()?, id.to_owned())))
            .unwrap_or((i64::MAX, String::new()));
        let rows: Vec<PageRow> = self
            .sql()
            .exec(
                &events::with("SELECT seq || '.' || message_id AS row, timestamp, body FROM events
                 WHERE (? IS NULL OR type = ?) AND (? IS NULL OR name = ?)
                   AND timestamp >= ? AND timestamp <= ?
                   AND (timestamp < ? OR (timestamp = ? AND (seq < ? OR (seq = ? AND message_id < ?))))
                 ORDER BY timestamp DESC, seq DESC, message_id DESC LIMIT ?"),
                vec![
                    query.kind.as_deref().into(),
                    query.kind.as_deref().into(),
                    query.name.as_deref().into(),
                    query.name.as_deref().into(),
                    query.from.unwrap_or(i64::MIN).into(),
                    query.to.unwrap_or(i64::MAX).into(),
                    cursor_time.into(),
                    cursor_time.into(),
                    cursor_seq.into(),
                    cursor_seq.into(),
                    cursor_id.into(),
                    (limit + 1).into(),
                ],
            )?
            .to_array()?;
        let more = rows.len() as i64 > limit;
        let page = &rows[..rows.len().min(limit as usize)];
        let next = page
            .last()
            .filter(|_| more)
            .map(|r| format!("{}.{}", r.timestamp, r.row));
        let events: Vec<Value> = page
            .iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        Ok(Some(json!({"events": events, "nextCursor": next})))
    }

    /// Everything held about the person (a data subject access request).
    pub(super) fn export(&self) -> Result<Option<Value>> {
        let Some(mut profile) = self.profile()? else {
            return Ok(None);
        };
        let events: Vec<Value> = self
            .sql()
            .exec(
                &events::with(
                    "SELECT body FROM events ORDER BY timestamp, received_at, seq, message_id",
                ),
                None,
            )?
            .to_array::<BodyRow>()?
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        profile["events"] = Value::Array(events);
        profile["explain"] = self.explain()?.unwrap_or(Value::Null);
        Ok(Some(profile))
    }

    /// The computed traits, from the aggregate kept as events are stored.
    pub(super) fn computed(&self) -> Result<computed::Computed> {
        let now = worker::Date::now().as_millis() as i64;
        Ok(self
            .aggregate()?
            .traits(now, &config::computed_settings(&self.env)))
    }

    /// Why each identifier belongs here, and which profiles were merged in.
    pub(super) fn explain(&self) -> Result<Option<Value>> {
        let identities = self.identities()?;
        if identities.is_empty() {
            return Ok(None);
        }
        let merges: Vec<MergeRow> = if self.has("merge_log")? {
            self.sql()
                .exec(
                    "SELECT at, absorbed, message_id, identifiers FROM merge_log ORDER BY at",
                    None,
                )?
                .to_array()?
        } else {
            Vec::new()
        };
        let why: Vec<Value> = identities
            .iter()
            .map(|r| {
                let because = match &r.via {
                    Some(via) => format!("event {} carried it together with {via}", r.message_id),
                    None => format!("event {} carried it", r.message_id),
                };
                json!({"type": r.kind, "value": r.value, "since": cdp_protocol::time::format_rfc3339(r.first_seen),
                       "messageId": r.message_id, "via": r.via, "because": because})
            })
            .collect();
        let merges: Vec<Value> = merges
            .iter()
            .map(|m| json!({"at": cdp_protocol::time::format_rfc3339(m.at), "absorbed": m.absorbed, "messageId": m.message_id,
                            "identifiers": m.identifiers.split(' ').collect::<Vec<_>>()}))
            .collect();
        let logged: Vec<UnmergeRow> = if self.has("unmerge_log")? {
            self.sql()
                .exec(
                    "SELECT at, identifier, kept_apart_from, profile, identifiers FROM unmerge_log ORDER BY at",
                    None,
                )?
                .to_array()?
        } else {
            Vec::new()
        };
        let unmerges: Vec<Value> = logged
            .into_iter()
            .map(|u| {
                json!({"at": cdp_protocol::time::format_rfc3339(u.at), "identifier": u.identifier,
                            "keptApartFrom": u.kept_apart_from, "movedTo": u.profile,
                            "identifiers": u.identifiers.split(' ').collect::<Vec<_>>()})
            })
            .collect();
        Ok(Some(json!({
            "id": self.meta("id")?.unwrap_or_default(),
            "identifiers": why,
            "merges": merges,
            "unmerges": unmerges,
            "splitFrom": self.meta("split_from")?,
        })))
    }
}
