//! JSON answers, errors and CORS, the same shape on every route.

use serde::Serialize;
use worker::{Headers, Request, Response, Result};

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    Ok(Response::from_json(body)?.with_status(status))
}

/// An error answer: `{"success":false,"error":{"reason":…,"message":…}}`.
pub fn error(status: u16, reason: &str, message: &str) -> Result<Response> {
    json(
        status,
        &serde_json::json!({"success": false, "error": {"reason": reason, "message": message}}),
    )
}

/// Adds the CORS headers that let a page on `origin` read the answer.
pub fn allow_origin(response: Response, req: &Request) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let headers = response.headers().clone();
    if let Some(origin) = origin {
        headers.set("Access-Control-Allow-Origin", &origin)?;
        headers.set("Access-Control-Allow-Credentials", "true")?;
        // The tracker honours Retry-After, which a cross-origin page can only read if exposed.
        headers.set("Access-Control-Expose-Headers", "Retry-After")?;
        headers.append("Vary", "Origin")?;
    }
    Ok(response.with_headers(headers))
}

/// Answers a CORS preflight, for clients that send `application/json` from a browser.
pub fn preflight(req: &Request) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Content-Encoding",
    )?;
    headers.set("Access-Control-Max-Age", "86400")?;
    allow_origin(
        Response::empty()?.with_status(204).with_headers(headers),
        req,
    )
}

/// The bearer token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(req: &Request) -> Option<String> {
    let header = req.headers().get("Authorization").ok()??;
    header.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}
