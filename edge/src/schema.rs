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
        if !self.0.get() {
            sql.exec(ddl, None)?;
            self.0.set(true);
        }
        Ok(())
    }
}
