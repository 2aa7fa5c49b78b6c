//! `GET /api/openapi.json` (public): the API document, `openapi.yaml` at the repository root,
//! as JSON. `build.rs` converts it when the crate is built, so serving it reads no file, parses
//! nothing and calls no AWS service.

use crate::response::empty_response;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};

/// The document, as built into the binary.
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// 200 with the document. The route is bound to GET; anything else reaches the `$default` route.
pub async fn openapi(_request: Request) -> Response<Body> {
    let mut response = empty_response(StatusCode::OK);
    *response.body_mut() = Body::Text(DOCUMENT.to_owned());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
