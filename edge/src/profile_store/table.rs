//! A profile's one table, `meta`: every kind of state a profile always has is a range of
//! its keys, read through a common table expression that gives it the columns the rest
//! of the store queries (`identity`, `memberships`, `events`).
//!
//! Creating a table writes two rows, and most profiles are a visitor's few events: a
//! profile of four tables paid eight rows before its first event, about 0.8 per event. A
//! range of keys costs nothing to create. Tables most profiles never write (traits,
//! merges, unmerges) are still tables of their own, created on first use.

/// The table.
pub(super) const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID";

/// A kind of state kept as the keys of `meta` that start with its prefix.
#[derive(Clone, Copy)]
pub(super) struct Range {
    /// What every key of the range starts with; it ends in `:`, so the range ends before
    /// the same text followed by `;`.
    prefix: &'static str,
}

/// Identifiers: key `identity:["<kind>","<value>"]`, value
/// `[kind, value, first_seen, message_id, via]`.
pub(super) const IDENTITY: Range = Range {
    prefix: "identity:",
};

/// Audiences the profile is or was in: key `member:<audience key>`, value
/// `[name, group, since, seq, member]` (an exit keeps its row, with `member` 0).
pub(super) const MEMBERSHIPS: Range = Range { prefix: "member:" };

/// Events in blocks (see [`events`](super::events)): key `block:<number, 12 digits>`,
/// value a JSON array of events.
pub(super) const BLOCKS: Range = Range { prefix: "block:" };

/// The outbox (see [`change`](super::change)): key `outbox:<target>`, value the notice.
pub(super) const OUTBOX: Range = Range { prefix: "outbox:" };

impl Range {
    /// The prefix of the range's keys.
    pub(super) fn prefix(self) -> &'static str {
        self.prefix
    }

    /// The SQL condition picking the range's keys of `meta` (as `alias.key`, or `key`
    /// when `alias` is empty): a range of the primary key, so an index seek.
    pub(super) fn picks(self, alias: &str) -> String {
        let key = if alias.is_empty() {
            "key".to_owned()
        } else {
            [alias, ".key"].concat()
        };
        let end = [&self.prefix[..self.prefix.len() - 1], ";"].concat();
        format!("{key} >= '{}' AND {key} < '{end}'", self.prefix)
    }

    /// Deletes every key of the range.
    pub(super) fn delete(self) -> String {
        ["DELETE FROM meta WHERE ", &self.picks("")].concat()
    }
}

/// The identifiers as rows.
pub(super) fn identity() -> String {
    rows(
        "identity",
        IDENTITY,
        false,
        &["kind", "value", "first_seen", "message_id", "via"],
    )
}

/// The memberships as rows (`key` is the audience's).
pub(super) fn memberships() -> String {
    rows(
        "memberships",
        MEMBERSHIPS,
        true,
        &["name", "grp", "since", "seq", "member"],
    )
}

/// The range's keys as rows named `name`, a column for each item of their values (JSON
/// arrays), after the key less its prefix if `keyed`.
fn rows(name: &str, range: Range, keyed: bool, columns: &[&str]) -> String {
    let mut picked: Vec<String> = Vec::new();
    if keyed {
        picked.push(format!("substr(key, {}) AS key", range.prefix.len() + 1));
    }
    for (i, column) in columns.iter().enumerate() {
        picked.push(format!("json_extract(value, '$[{i}]') AS {column}"));
    }
    format!(
        "{name} AS (SELECT {} FROM meta WHERE {})",
        picked.join(", "),
        range.picks("")
    )
}

/// `query` with the common table expressions `tables` before it.
pub(super) fn with(tables: &[String], query: &str) -> String {
    ["WITH ", &tables.join(", "), " ", query].concat()
}
