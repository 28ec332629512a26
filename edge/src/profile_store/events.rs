//! How a profile keeps its events: in blocks, one row per write (a delivery's events for
//! the profile, a merge's, an audience change), keys of the profile's one table (see
//! [`table`](super::table)), read as `events`, a row per event with the columns the rest
//! of the store queries (a common table expression, [`with`], put before each query: a
//! view would be two rows written in every new profile).
//!
//! A row written costs a thousand rows read, and a delivery brings a profile a few events
//! at a time: one block row instead of a row per event is most of what an event costs in
//! the profile. What it gives up is a key per event: whether a `messageId` is already
//! stored is answered by reading the profile's blocks, and the rare deletes
//! (retention, unmerge) rewrite the blocks that hold what they delete.

use std::collections::HashSet;

use worker::{Result, SqlStorageValue};

use super::object::ProfileStore;
use super::table::{self, BLOCKS};
use super::{EventRow, Text};

/// The events as rows: what timelines, audiences, retention and merges read. A block is
/// a JSON array of events, each event an array of these columns, in order (`body` as
/// text, `name` and `source` null when absent).
fn events() -> String {
    format!(
        "events AS (SELECT
  json_extract(e.value, '$[0]') AS message_id,
  json_extract(e.value, '$[1]') AS type,
  json_extract(e.value, '$[2]') AS name,
  json_extract(e.value, '$[3]') AS timestamp,
  json_extract(e.value, '$[4]') AS received_at,
  json_extract(e.value, '$[5]') AS body,
  json_extract(e.value, '$[6]') AS source,
  json_extract(e.value, '$[7]') AS seq,
  b.key AS block,
  e.key AS position
FROM meta AS b, json_each(b.value) AS e WHERE {})",
        BLOCKS.picks("b")
    )
}

/// `query`, which reads `events`, with the events' definition before it.
pub(super) fn with(query: &str) -> String {
    table::with(&[events()], query)
}

impl ProfileStore {
    /// The key of the last block stored, if any.
    pub(super) fn last_block(&self) -> Result<Option<String>> {
        Ok(self
            .sql()
            .exec(
                &[
                    "SELECT MAX(key) AS value FROM meta WHERE ",
                    &BLOCKS.picks(""),
                ]
                .concat(),
                None,
            )?
            .to_array::<MaybeText>()?
            .into_iter()
            .next()
            .and_then(|t| t.value))
    }
}

#[derive(serde::Deserialize)]
struct MaybeText {
    value: Option<String>,
}

/// Inserts a block holding `events` (JSON), numbered after the last, and after the one
/// the saved aggregate summarises events through (so no block stored later is numbered
/// as if it were summarised, whatever was deleted).
fn insert_block() -> String {
    format!(
        "INSERT INTO meta (key, value) VALUES (printf('{prefix}%012d', 1 + COALESCE((SELECT MAX(CAST(substr(k, {from}) AS INTEGER)) FROM (
           SELECT MAX(key) AS k FROM meta WHERE {blocks}
           UNION ALL SELECT json_extract(value, '$.through') FROM meta WHERE key = 'aggregate')), 0)), ?)",
        prefix = BLOCKS.prefix(),
        from = BLOCKS.prefix().len() + 1,
        blocks = BLOCKS.picks("")
    )
}

/// Which events a delete takes.
pub(super) enum Taken<'a> {
    /// Those that happened before this time (ms).
    Before(i64),
    /// Those with these `messageId`s.
    Ids(&'a [String]),
}

impl ProfileStore {
    /// Which of `ids` are stored already.
    pub(super) fn stored_ids<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashSet<String>> {
        let ids: Vec<&str> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let mut stored: HashSet<String> = self
            .unwritten
            .borrow()
            .iter()
            .flatten()
            .filter(|r| ids.contains(&r.message_id.as_str()))
            .map(|r| r.message_id.clone())
            .collect();
        stored.extend(
            self.sql()
            .exec(
                &with("SELECT message_id AS value FROM events WHERE message_id IN (SELECT value FROM json_each(?))"),
                vec![serde_json::to_string(&ids)?.into()],
            )?
                .to_array::<Text>()?
                .into_iter()
                .map(|t| t.value),
        );
        Ok(stored)
    }

    /// Runs `write` with the events it stores (see [`append_events`](Self::append_events))
    /// kept back and written as one block when it ends: an ingest's events and the
    /// audience changes they cause are one row written, not two.
    pub(super) fn in_one_block<T>(&self, write: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        *self.unwritten.borrow_mut() = Some(Vec::new());
        let outcome = write(self);
        // Taken whatever the outcome: nothing kept back outlives the change.
        let rows = self.unwritten.borrow_mut().take().unwrap_or_default();
        let value = outcome?;
        self.append_events(&rows)?;
        Ok(value)
    }

    /// The events kept back so far (see [`in_one_block`](Self::in_one_block)).
    pub(super) fn unwritten_events(&self) -> Vec<EventRow> {
        self.unwritten.borrow().clone().unwrap_or_default()
    }

    /// Stores `rows` as one block (nothing when there are none). The caller has left out
    /// those already stored (see [`stored_ids`](Self::stored_ids)).
    pub(super) fn append_events(&self, rows: &[EventRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(kept) = self.unwritten.borrow_mut().as_mut() {
            kept.extend_from_slice(rows);
            return Ok(());
        }
        let block: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!([
                    r.message_id,
                    r.r#type,
                    r.name,
                    r.timestamp,
                    r.received_at,
                    r.body,
                    r.source,
                    r.seq
                ])
            })
            .collect();
        self.sql()
            .exec(&insert_block(), vec![serde_json::to_string(&block)?.into()])?;
        Ok(())
    }

    /// Deletes the events `taken` picks: each block holding one is rewritten without them
    /// (or deleted when nothing is left in it).
    pub(super) fn delete_events(&self, taken: Taken<'_>) -> Result<()> {
        let (picked, value): (&str, SqlStorageValue) = match taken {
            Taken::Before(at) => ("json_extract(e.value, '$[3]') < ?1", at.into()),
            Taken::Ids(ids) => (
                "json_extract(e.value, '$[0]') IN (SELECT value FROM json_each(?1))",
                serde_json::to_string(ids)?.into(),
            ),
        };
        let sql = self.sql();
        let blocks = BLOCKS.picks("");
        sql.exec(
            &[
                "UPDATE meta SET value = (SELECT json_group_array(json(e.value)) FROM json_each(meta.value) AS e WHERE NOT (",
                picked,
                ")) WHERE ",
                &blocks,
                " AND EXISTS (SELECT 1 FROM json_each(meta.value) AS e WHERE ",
                picked,
                ")",
            ]
            .concat(),
            vec![value],
        )?;
        sql.exec(
            &[
                "DELETE FROM meta WHERE ",
                &blocks,
                " AND json_array_length(value) = 0",
            ]
            .concat(),
            None,
        )?;
        Ok(())
    }

    /// Moves the events of an object from before version 10 into blocks of `meta`: a
    /// table of blocks (`event_blocks`, versions 6 to 9), and before those a table of
    /// events (`events`, one row each), which becomes one block after them.
    pub(super) fn events_into_blocks(&self) -> Result<()> {
        let sql = self.sql();
        // Blocks were read through a view for a while.
        sql.exec("DROP VIEW IF EXISTS events", None)?;
        if crate::schema::table_exists(&sql, "event_blocks")? {
            sql.exec(
                &format!(
                    "INSERT OR REPLACE INTO meta (key, value) SELECT printf('{}%012d', block), events FROM event_blocks WHERE json_array_length(events) > 0",
                    BLOCKS.prefix()
                ),
                None,
            )?;
            sql.exec("DROP TABLE event_blocks", None)?;
        }
        if !crate::schema::table_exists(&sql, "events")? {
            return Ok(());
        }
        // Before version 4 the order stored was the rowid; `seq` came then.
        let seq = if sql.exec("SELECT seq FROM events LIMIT 0", None).is_ok() {
            "seq"
        } else {
            "rowid"
        };
        let block: Vec<Text> = sql
            .exec(
                &[
                    "SELECT json_group_array(json_array(message_id, type, name, timestamp, received_at, body, source, s)) AS value
                     FROM (SELECT *, ",
                    seq,
                    " AS s FROM events ORDER BY ",
                    seq,
                    ")",
                ]
                .concat(),
                None,
            )?
            .to_array()?;
        if let Some(block) = block.into_iter().next().filter(|b| b.value != "[]") {
            sql.exec(&insert_block(), vec![block.value.into()])?;
        }
        sql.exec("DROP TABLE events", None)?;
        Ok(())
    }
}
