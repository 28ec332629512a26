//! Metering: what the platform's work costs on Cloudflare, counted where it happens, in
//! the units Cloudflare bills: Worker requests, queue operations, Durable Object requests
//! and alarms, SQLite rows read and written (the cursors' own counts), R2 class A and B
//! operations.
//!
//! Every part of the Worker adds to one tally per isolate. A Durable Object hands what it
//! counted back to its caller in a response header ([`stamp`] and [`call`]), so whatever
//! isolate an object runs in, its rows reach the Worker that called it. With `METER=true`
//! the Worker adds the tally to the counters it writes anyway (as `meter.<unit>` in
//! `/v1/stats`), which is what `make bench-cost` reads; without it, every isolate reads
//! the setting as its first invocation or object starts, and counts nothing (no tally, no
//! header).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use worker::{Env, Request, Response, Result, SqlCursor, SqlStorage, SqlStorageValue, Stub};

/// A unit Cloudflare bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cost {
    /// A Worker invocation: an HTTP request, a queue batch, a Cron Trigger.
    WorkerRequest,
    /// A message (each 64 KB of it) written to a queue.
    QueueWrite,
    /// A message handed to a consumer (again on each retry).
    QueueRead,
    /// A message acknowledged.
    QueueDelete,
    /// A request to a Durable Object.
    ObjectRequest,
    /// An alarm that ran.
    ObjectAlarm,
    /// SQLite rows read.
    RowsRead,
    /// SQLite rows written (each index a row too).
    RowsWritten,
    /// An R2 write or list.
    R2ClassA,
    /// An R2 read.
    R2ClassB,
    /// Bytes written to R2 (the archive), for what keeping them costs.
    R2BytesStored,
}

impl Cost {
    const ALL: [Cost; 11] = [
        Cost::WorkerRequest,
        Cost::QueueWrite,
        Cost::QueueRead,
        Cost::QueueDelete,
        Cost::ObjectRequest,
        Cost::ObjectAlarm,
        Cost::RowsRead,
        Cost::RowsWritten,
        Cost::R2ClassA,
        Cost::R2ClassB,
        Cost::R2BytesStored,
    ];

    /// Its counter's name in `/v1/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Cost::WorkerRequest => "meter.worker_requests",
            Cost::QueueWrite => "meter.queue_writes",
            Cost::QueueRead => "meter.queue_reads",
            Cost::QueueDelete => "meter.queue_deletes",
            Cost::ObjectRequest => "meter.object_requests",
            Cost::ObjectAlarm => "meter.object_alarms",
            Cost::RowsRead => "meter.rows_read",
            Cost::RowsWritten => "meter.rows_written",
            Cost::R2ClassA => "meter.r2_class_a",
            Cost::R2ClassB => "meter.r2_class_b",
            Cost::R2BytesStored => "meter.r2_bytes_stored",
        }
    }

    fn of(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

thread_local! {
    static TALLY: RefCell<BTreeMap<Cost, i64>> = const { RefCell::new(BTreeMap::new()) };
    static ENABLED: RefCell<Option<bool>> = const { RefCell::new(None) };
    /// Rows written by object class, the breakdown of [`Cost::RowsWritten`].
    static LABELLED: RefCell<BTreeMap<String, i64>> = const { RefCell::new(BTreeMap::new()) };
}

/// The response header a Durable Object's tally travels in.
const HEADER: &str = "cdp-meter";

/// Whether this isolate counts: not once it has read `METER` and found it off (a
/// deployment without metering does no counting work); until then it counts, so nothing
/// is lost when it is on.
fn on() -> bool {
    ENABLED.with(|e| e.borrow().unwrap_or(true))
}

/// Adds `n` of `cost` to this isolate's tally.
pub fn add(cost: Cost, n: i64) {
    if n != 0 && on() {
        TALLY.with(|t| *t.borrow_mut().entry(cost).or_default() += n);
    }
}

/// Counts a message of `bytes` written to a queue: one operation per 64 KB.
pub fn queue_write(bytes: usize) {
    add(Cost::QueueWrite, (bytes / 65_536 + 1) as i64);
}

/// Empties the tally: its counts by counter name.
pub fn take() -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = TALLY
        .with(|t| std::mem::take(&mut *t.borrow_mut()))
        .into_iter()
        .map(|(cost, n)| (cost.name().to_owned(), n))
        .collect();
    for (label, n) in LABELLED.with(|l| std::mem::take(&mut *l.borrow_mut())) {
        out.insert([Cost::RowsWritten.name(), ".", &label].concat(), n);
    }
    out
}

/// Whether the Worker reports what it meters (`METER=true`).
pub fn enabled(env: &Env) -> bool {
    ENABLED.with(|e| {
        *e.borrow_mut().get_or_insert_with(|| {
            env.var("METER")
                .map(|v| v.to_string() == "true")
                .unwrap_or(false)
        })
    })
}

/// Adds the tally to `counts` when metering is on. What writing those counts costs is
/// counted as it happens, and reported with a later flush.
pub fn flush_into(env: &Env, counts: &mut BTreeMap<String, i64>) {
    if !enabled(env) {
        return;
    }
    for (name, n) in take() {
        *counts.entry(name).or_default() += n;
    }
}

/// A Durable Object's answer, with what it counted in a header for its caller.
pub fn stamp(answer: Result<Response>) -> Result<Response> {
    let response = answer?;
    if !on() {
        return Ok(response);
    }
    let tally = take();
    if tally.is_empty() {
        return Ok(response);
    }
    let text = serde_json::to_string(&tally).map_err(worker::Error::from)?;
    let headers = response.headers().clone();
    headers.set(HEADER, &text)?;
    Ok(response.with_headers(headers))
}

/// Adds a breakdown count that came back from an object (`meter.rows_written.<label>`).
fn add_labelled(name: &str, n: i64) {
    let prefix = [Cost::RowsWritten.name(), "."].concat();
    if let Some(label) = name.strip_prefix(prefix.as_str()) {
        LABELLED.with(|l| *l.borrow_mut().entry(label.to_owned()).or_default() += n);
    }
}

/// Sends `req` to a Durable Object: one object request, plus what the object counted.
pub async fn call(stub: &Stub, req: Request) -> Result<Response> {
    add(Cost::ObjectRequest, 1);
    let response = stub.fetch_with_request(req).await?;
    if let Ok(Some(text)) = response.headers().get(HEADER) {
        if let Ok(counted) = serde_json::from_str::<BTreeMap<String, i64>>(&text) {
            for (name, n) in counted {
                match Cost::of(&name) {
                    Some(cost) => add(cost, n),
                    None => add_labelled(&name, n),
                }
            }
        }
    }
    Ok(response)
}

/// A Durable Object's SQL storage whose statements count the rows they read and write,
/// in total and by the object's class (`label`), for the benchmark's breakdown.
pub struct Sql(SqlStorage, &'static str);

impl Sql {
    /// The object's storage, metered under `label`.
    pub fn of(state: &worker::State, label: &'static str) -> Self {
        Self(state.storage().sql(), label)
    }

    /// The object's storage, not metered: for writing the meter's own counts, which a
    /// deployment without metering does not write.
    pub fn unmetered(state: &worker::State) -> Self {
        Self(state.storage().sql(), "")
    }

    /// Runs a statement (see [`SqlStorage::exec`]).
    pub fn exec(
        &self,
        query: &str,
        bindings: impl Into<Option<Vec<SqlStorageValue>>>,
    ) -> Result<Cursor> {
        Ok(Cursor(self.0.exec(query, bindings)?, self.1))
    }

    /// The database's size in bytes.
    pub fn database_size(&self) -> usize {
        self.0.database_size()
    }
}

/// A statement's cursor; its rows are counted once it is dropped (read to its end, or not).
pub struct Cursor(SqlCursor, &'static str);

impl Cursor {
    /// Every row, deserialised.
    pub fn to_array<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.0.to_array()
    }

    /// The one row.
    pub fn one<T: DeserializeOwned>(&self) -> Result<T> {
        self.0.one()
    }

    /// Rows as arrays of values.
    pub fn raw(&self) -> worker::SqlCursorRawIterator {
        self.0.raw()
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> usize {
        self.0.rows_written()
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if self.1.is_empty() || !on() {
            return;
        }
        let (read, written) = (self.0.rows_read() as i64, self.0.rows_written() as i64);
        add(Cost::RowsRead, read);
        add(Cost::RowsWritten, written);
        if written > 0 {
            LABELLED.with(|l| *l.borrow_mut().entry(self.1.to_owned()).or_default() += written);
        }
    }
}
