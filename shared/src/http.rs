//! Reading API Gateway requests, the same way for both dialects.

use crate::error::ApiError;
use lambda_http::http::{header, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};

pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A handler gives up this long before the invocation's deadline, so it answers 503 itself
/// instead of being cut off by the Lambda timeout (which API Gateway turns into a 500).
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_millis(1_000);

/// Runs a handler's work within the invocation's deadline (less `DEADLINE_MARGIN`); past it,
/// `Unavailable` (503 + `Retry-After`). DynamoDB writes are transactions, so stopping between
/// two calls leaves nothing half-written. Without a deadline (a test's request) it just runs.
pub async fn within_deadline<T>(
    request: &Request,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let deadline_ms = request
        .lambda_context_ref()
        .map(|context| context.deadline)
        .unwrap_or(0);
    if deadline_ms == 0 {
        return work.await;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))
        .saturating_sub(DEADLINE_MARGIN);
    tokio::time::timeout(left, work).await.unwrap_or_else(|_| {
        tracing::warn!("the request ran out of time; answered 503");
        Err(ApiError::Unavailable)
    })
}

/// The raw body (what a signature is computed over).
pub fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// [`json_object_body`] for a route whose body is optional: none, or only white space, is an
/// empty object (whatever the `Content-Type`).
pub fn optional_json_object_body(request: &Request) -> Result<Map<String, Value>, ApiError> {
    if body_bytes(request).iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else {
        json_object_body(request)
    }
}

/// The body as a JSON object: JSON content type (or none), at most 16 KiB, well-formed, an object.
pub fn json_object_body(request: &Request) -> Result<Map<String, Value>, ApiError> {
    match json_body(request, MAX_BODY_BYTES)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad("JSON body must be an object")),
    }
}

/// The body as JSON: JSON content type (or none), at most `max_bytes`, well-formed, not null.
pub fn json_body(request: &Request, max_bytes: usize) -> Result<Value, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json"
            && !(essence.starts_with("application/") && essence.ends_with("+json"))
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type must be application/json, not {essence:?}"
            )));
        }
    }
    let bytes = body_bytes(request);
    if bytes.len() > max_bytes {
        return Err(ApiError::bad(format!(
            "Request body is larger than {} KiB",
            max_bytes / 1024
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("Missing JSON body"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Null) => Err(ApiError::bad("Missing JSON body")),
        Ok(value) => Ok(value),
        Err(e) => Err(ApiError::bad(format!("Malformed JSON body: {e}"))),
    }
}

/// Routes are bound to one method by API Gateway; a direct invoke with another is refused
/// with a 405 whose `Allow` names the route's method (the `$default` route names every method
/// a path has).
pub fn require_method(request: &Request, expected: Method) -> Result<(), ApiError> {
    if request.method() == expected {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow: expected.to_string(),
        })
    }
}

pub fn path_parameter(request: &Request, name: &str) -> Option<String> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

pub fn query_parameter(request: &Request, name: &str) -> Option<String> {
    request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// The API's domain name, from the request context.
pub fn host(request: &Request) -> Option<String> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.domain_name.clone(),
        _ => None,
    }
}
