//! Tables created once per Durable Object instance, not on every request: an instance
//! remembers that its schema is in place (a new instance, after eviction or a deploy,
//! runs the `CREATE … IF NOT EXISTS` once more, which is how new tables reach old objects).

use std::cell::Cell;

use worker::Result;

use crate::meter::Sql;

/// Whether this instance has created its tables yet.
#[derive(Default)]
pub struct Schema(Cell<bool>);

impl Schema {
    /// Runs `ddl` the first time it is called on this instance.
    pub fn ensure(&self, sql: &Sql, ddl: &str) -> Result<()> {
        self.ensure_with(sql, |sql| sql.exec(ddl, None).map(drop))
    }

    /// Runs `create` the first time it is called on this instance (for schemas that bring
    /// older tables up to date, see [`without_rowid`]).
    pub fn ensure_with(&self, sql: &Sql, create: impl FnOnce(&Sql) -> Result<()>) -> Result<()> {
        if !self.0.get() {
            create(sql)?;
            self.0.set(true);
        }
        Ok(())
    }
}

/// Whether the object's database has a table named `name`.
pub fn table_exists(sql: &Sql, name: &str) -> Result<bool> {
    #[derive(serde::Deserialize)]
    struct Count {
        n: i64,
    }
    let found = sql
        .exec(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![name.into()],
        )?
        .one::<Count>()?;
    Ok(found.n > 0)
}

#[derive(serde::Deserialize)]
struct Definition {
    sql: String,
}

/// Brings `table` to the definition `create` (a `CREATE TABLE IF NOT EXISTS …` whose text
/// says `WITHOUT ROWID`) when an older object created it with a rowid: the old table is
/// renamed, the new one created, `columns` copied over, and the old one (with its
/// indexes) dropped. A table keyed by what it is looked up by, without a rowid, writes
/// one row per insert instead of two (the table and its key's index).
pub fn without_rowid(sql: &Sql, table: &str, create: &str, columns: &str) -> Result<()> {
    let held: Vec<Definition> = sql
        .exec(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![table.into()],
        )?
        .to_array()?;
    let Some(old) = held.first() else {
        sql.exec(create, None)?;
        return Ok(());
    };
    if old.sql.to_ascii_uppercase().contains("WITHOUT ROWID") {
        return Ok(());
    }
    let old_name = [table, "_with_rowid"].concat();
    sql.exec(&format!("ALTER TABLE {table} RENAME TO {old_name}"), None)?;
    sql.exec(create, None)?;
    sql.exec(
        &format!("INSERT OR IGNORE INTO {table} ({columns}) SELECT {columns} FROM {old_name}"),
        None,
    )?;
    sql.exec(&format!("DROP TABLE {old_name}"), None)?;
    Ok(())
}
