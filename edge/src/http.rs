//! JSON answers, errors and CORS, the same shape on every route.

use cdp_protocol::source::Sources;
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

/// A 400 for one query parameter: `error.parameter` names it, so a client can point at it.
pub fn bad_parameter(reason: &str, parameter: &str, message: &str) -> Result<Response> {
    json(
        400,
        &serde_json::json!({"success": false,
            "error": {"reason": reason, "parameter": parameter, "message": message}}),
    )
}

/// A 400 for a definition (audience, destination, export, feed) that fails its check:
/// `error.at` names the place in its JSON.
pub fn definition_refused(
    reason: &str,
    e: &cdp_protocol::audience::DefinitionError,
) -> Result<Response> {
    json(
        400,
        &serde_json::json!({"success": false, "error": {"reason": reason, "at": e.at,
            "message": e.to_string()}}),
    )
}

/// The entry of `answer[list]` whose `field` is `value`: one definition out of a
/// Durable Object's listing.
pub fn listed(
    answer: &serde_json::Value,
    list: &str,
    field: &str,
    value: &str,
) -> Option<serde_json::Value> {
    answer
        .get(list)?
        .as_array()?
        .iter()
        .find(|e| e.get(field).and_then(serde_json::Value::as_str) == Some(value))
        .cloned()
}

/// Sends `ask` as JSON to the Durable Object `name` of namespace `binding`; its status and
/// answer (a 5xx is an error naming `callee`).
pub async fn ask_object<T: Serialize>(
    env: &worker::Env,
    binding: &str,
    name: &str,
    callee: &str,
    ask: &T,
) -> Result<(u16, serde_json::Value)> {
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_body(Some(serde_json::to_string(ask)?.into()));
    let req = Request::new_with_init(&format!("https://{name}/"), &init)?;
    let stub = env
        .durable_object(binding)?
        .id_from_name(name)?
        .get_stub()?;
    let mut res = crate::meter::call(&stub, req).await?;
    let status = res.status_code();
    if status >= 500 {
        let detail = res.text().await.unwrap_or_default();
        return Err(internal_answer(callee, status, &detail));
    }
    Ok((status, res.json().await?))
}

/// Adds the CORS headers that let a page on `origin` read the answer.
pub fn allow_origin(response: Response, origin: Option<&str>) -> Result<Response> {
    let headers = response.headers().clone();
    if let Some(origin) = origin {
        headers.set("Access-Control-Allow-Origin", origin)?;
        headers.set("Access-Control-Allow-Credentials", "true")?;
        // The tracker honours Retry-After, which a cross-origin page can only read if exposed.
        headers.set("Access-Control-Expose-Headers", "Retry-After")?;
        headers.append("Vary", "Origin")?;
    }
    Ok(response.with_headers(headers))
}

/// Answers a CORS preflight (clients that send `application/json` or `Authorization` from
/// a browser): on the collector's paths for origins some source allows, on the admin API
/// only for the configured dashboard origins (a source that allows `*` must not open the
/// admin API to every site).
pub fn preflight(
    req: &Request,
    sources: &Sources,
    dashboard_origins: &[String],
    collector: bool,
) -> Result<Response> {
    let origin = req.headers().get("Origin")?;
    let allowed = origin.as_deref().is_some_and(|o| {
        if collector {
            sources.any_allows(o)
        } else {
            dashboard_origins.iter().any(|d| d.eq_ignore_ascii_case(o))
        }
    });
    if !allowed {
        let message = if collector {
            "no source allows this origin"
        } else {
            "the admin API answers browsers only from DASHBOARD_ORIGINS"
        };
        return error(403, "origin_not_allowed", message);
    }
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "POST, GET, DELETE, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Content-Encoding",
    )?;
    headers.set("Access-Control-Max-Age", "86400")?;
    allow_origin(
        Response::empty()?.with_status(204).with_headers(headers),
        origin.as_deref(),
    )
}

/// The JSON body of a `POST` (create) or `PUT /…/{key}` (replace) of a definition: the
/// path's key filled in when the body has none and refused when it names another (keys
/// never change), and the read-only fields an answer carried (`read_only`) left out, so a
/// client may send back what it read. `Err` is the `400` to answer.
pub async fn definition_body(
    req: &mut Request,
    path_key: Option<&str>,
    read_only: &[&str],
) -> Result<std::result::Result<serde_json::Value, Response>> {
    let Ok(serde_json::Value::Object(mut body)) = req.json::<serde_json::Value>().await else {
        return error(400, "invalid_json", "send the definition as a JSON object").map(Err);
    };
    if let Some(key) = path_key {
        match body.get("key").and_then(serde_json::Value::as_str) {
            None => {
                body.insert("key".into(), key.into());
            }
            Some(k) if k == key => {}
            Some(k) => {
                let message = format!("the key is {key:?} and never changes; the body says {k:?}");
                return error(400, "key_is_immutable", &message).map(Err);
            }
        }
    }
    for field in read_only {
        body.remove(*field);
    }
    Ok(Ok(serde_json::Value::Object(body)))
}

/// The bearer token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(req: &Request) -> Option<String> {
    let header = req.headers().get("Authorization").ok()??;
    cdp_protocol::auth::bearer_token(&header).map(str::to_owned)
}

/// The error for an internal call (a Durable Object) that did not answer 2xx: a 5xx is
/// the callee failing and may pass; a 4xx means this code asked something wrong (a bug).
pub fn internal_answer(callee: &str, status: u16, detail: &str) -> worker::Error {
    let message = format!("{callee} answered {status}: {detail}");
    if status >= 500 {
        worker::Error::RustError(message)
    } else {
        worker::Error::Json((message, status))
    }
}

/// The one place an error becomes a status. Storage, queues and objects that fail or do
/// not answer are `503` (retry later); a request this code built wrong, or an answer it
/// cannot read, is a bug: `500`, which clients do not retry forever.
pub fn failure(e: &worker::Error) -> Result<Response> {
    use worker::Error as E;
    let bug = matches!(
        e,
        E::Json(_)
            | E::SerdeJsonError(_)
            | E::SerdeWasmBindgenError(_)
            | E::BadEncoding
            | E::BodyUsed
            | E::Utf8Error(_)
            | E::RouteNoDataError
    );
    if bug {
        return error(
            500,
            "internal",
            &format!("the platform failed on this request: {e}; a retry will fail the same way, please report it"),
        );
    }
    error(
        503,
        "unavailable",
        &format!("the platform could not answer: {e}; retry later"),
    )
}
