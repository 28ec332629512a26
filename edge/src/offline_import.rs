//! Offline import (`POST /v1/import` with CSV or NDJSON): customers and orders from a POS or
//! CRM. The file's rows become events (the pure `cdp_protocol::import`), which then take
//! the collector's way ([`collect`](crate::collect)'s stages: limits, key, origin,
//! validation, enrichment, the queue) under an import job whose progress
//! `GET /v1/import/{job}` reports.

use cdp_protocol::decode::Envelope;
use cdp_protocol::import::{self, RowError};
use serde_json::json;
use worker::{Env, Request, Response, Result};

use crate::collect::{admit, read_body, refuse, report};
use crate::config::Config;
use crate::stats::Counts;
use crate::{http, import_job};

/// How a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row.
    Csv,
    /// One JSON object a line.
    Ndjson,
}

impl Format {
    /// The format a `Content-Type` names, if it is a file one.
    pub fn of(content_type: &str) -> Option<Self> {
        if content_type.contains("csv") {
            Some(Self::Csv)
        } else if content_type.contains("ndjson") {
            Some(Self::Ndjson)
        } else {
            None
        }
    }
}

/// How much larger than a batch an import file may be.
const FILE_LIMIT_BATCHES: usize = 20;

/// Takes a file in: its good rows queued as one job (in chunks), its bad rows reported by
/// line.
pub async fn handle(
    req: &mut Request,
    env: &Env,
    config: &Config,
    counts: &mut Counts,
    format: Format,
) -> Result<Response> {
    let limit = config
        .limits
        .max_batch_bytes
        .saturating_mul(FILE_LIMIT_BATCHES);
    let body = match read_body(req, config, limit, counts).await? {
        Ok(body) => body,
        Err(refusal) => return Ok(refusal),
    };
    let Ok(text) = std::str::from_utf8(&body.bytes) else {
        return refuse(400, "invalid_utf8", "an import file must be UTF-8", counts);
    };
    let imported = import::read(text, format == Format::Csv);
    let row_errors = imported.errors;
    if imported.events.is_empty() {
        let body = json!({"success": false, "error": {"reason": "no_valid_rows", "message": "no row of the file is valid"},
            "rowErrors": rows_report(&row_errors)});
        return http::json(400, &body);
    }
    let envelope = Envelope {
        write_key: None,
        sent_at: None,
        events: imported.events,
        client_dropped: 0,
        lossy: false,
    };
    let admitted = match admit(req, config, &body, envelope, counts)? {
        Ok(admitted) => admitted,
        Err(refusal) => return Ok(refusal),
    };
    if admitted.keep.is_empty() && !admitted.rejected.is_empty() {
        let body = json!({"success": false, "error": {"reason": "no_valid_events",
            "message": "no event in the file is valid"}, "rejected": report(&admitted.rejected),
            "rowErrors": rows_report(&row_errors)});
        return http::json(400, &body);
    }
    let kept = admitted.keep.len();
    let job = if kept > 0 {
        Some(import_job::new_id()?)
    } else {
        None
    };
    let chunks = match admitted.enqueue(env, &body, job.as_deref(), counts).await? {
        Ok(chunks) => chunks,
        Err(refusal) => return Ok(refusal),
    };
    if let Some(job) = &job {
        let totals = [
            ("startedAt", body.received_at),
            ("source", import_job::owner_mark(&admitted.source.write_key)),
            (
                "rowErrors",
                (row_errors.len() + admitted.rejected.len()) as i64,
            ),
            ("events", kept as i64),
            ("chunks", i64::from(chunks)),
        ];
        let totals = totals.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        import_job::register(env, job, totals).await?;
    }
    let clean = admitted.rejected.is_empty() && row_errors.is_empty();
    let progress = job.as_ref().map(|j| ["/v1/import/", j].concat());
    let answer = json!({"success": clean, "imported": kept, "rowErrors": rows_report(&row_errors),
        "rejected": report(&admitted.rejected), "job": job, "progress": progress});
    let response = http::json(if clean { 200 } else { 207 }, &answer)?;
    admitted.with_cookie(response, req)
}

fn rows_report(errors: &[RowError]) -> Vec<serde_json::Value> {
    errors
        .iter()
        .map(|e| json!({"line": e.line, "reason": e.reason}))
        .collect()
}
