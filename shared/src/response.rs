//! Building responses, the same way for every route: JSON bodies, empty bodies, and the headers
//! every answer carries. Secrets appear in create responses, so nothing is cacheable
//! (`Cache-Control: no-store`) and nothing is content-sniffed (`X-Content-Type-Options: nosniff`).

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    // Serializing our own views and error bodies cannot fail (string keys, no custom
    // serializers that refuse); should it ever, the client gets a plain 500, not a panic.
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "response body did not serialize");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal error"}"#.to_owned(),
            )
        }
    };
    let mut response = empty_response(status);
    *response.body_mut() = Body::Text(text);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An answer without a body, with the headers every answer carries.
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
