//! The `$default` route: every request that no other route of `template.yaml` takes. A known
//! path asked with another method is a 405 with `Allow` (in the dialect's body under its prefix,
//! else `{"message": "Method Not Allowed"}`); an unknown path under a dialect's prefix is that
//! dialect's 404; anything else is API Gateway's own 404 body. It reads no
//! credentials and no table: it only says what exists.

use crate::error::{self, ApiError};
use crate::http::host;
use crate::response::json_response;
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// Every route of the bundle, as `template.yaml` declares them (a test holds the two equal).
pub const ROUTES: [(&str, &str); 17] = [
    ("POST", "/api/v1/user/apptoken"),
    ("GET", "/api/v1/user/apptoken"),
    ("GET", "/api/v1/user/apptoken/{token_uuid}"),
    ("DELETE", "/api/v1/user/apptoken/{token_uuid}"),
    ("POST", "/api/v1/user/apptoken/{token_uuid}/rotate"),
    ("POST", "/api/v1/user/apptoken/self/rotate"),
    ("GET", "/api/v1/user/logs"),
    ("POST", "/api/v1/secret-scanning/github"),
    ("POST", "/api/v1/credentials/revoke"),
    ("POST", "/api/admin/user/tokens"),
    ("GET", "/api/admin/user/tokens"),
    ("DELETE", "/api/admin/user/tokens/{id}"),
    ("POST", "/api/admin/user/tokens/{id}/rotate"),
    ("GET", "/example/whoami"),
    ("GET", "/api/openapi.json"),
    ("GET", "/tokens"),
    ("GET", "/tokens/{asset}"),
];

const QUAY_PREFIX: &str = "/api/v1/";
const UNLEASH_PREFIX: &str = "/api/admin/";

/// Handler of the `$default` route.
pub async fn fallback(request: Request) -> Response<Body> {
    let path = request.uri().path();
    let method = request.method().as_str();
    let mut allowed: Vec<&str> = Vec::new();
    for (method, _) in ROUTES.iter().filter(|(_, pattern)| matches(pattern, path)) {
        if !allowed.contains(method) {
            allowed.push(method);
        }
    }
    let error = if allowed.is_empty() {
        ApiError::NotFound(format!("No route for {method} {}", shown(path)))
    } else {
        ApiError::MethodNotAllowed {
            method: method.to_owned(),
            allow: allowed.join(", "),
        }
    };
    let mut response = if path.starts_with(QUAY_PREFIX) {
        error::quay_response(&error, host(&request).as_deref())
    } else if path.starts_with(UNLEASH_PREFIX) {
        error::unleash_response(&error)
    } else if allowed.is_empty() {
        json_response(StatusCode::NOT_FOUND, &json!({"message": "Not Found"}))
    } else {
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": "Method Not Allowed"}),
        )
    };
    if let (false, Ok(value)) = (
        allowed.is_empty(),
        HeaderValue::from_str(&allowed.join(", ")),
    ) {
        // The dialects' bodies carry it already; API Gateway's own body gets it here.
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A route path (`{name}` is one non-empty segment) against a request path.
fn matches(pattern: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let mut wanted = pattern.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// The path as a message may show it: bounded, printable.
fn shown(path: &str) -> String {
    path.chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_match_whole_segments() {
        assert!(matches("/api/v1/user/apptoken", "/api/v1/user/apptoken"));
        assert!(matches("/api/v1/user/apptoken", "/api/v1/user/apptoken/"));
        assert!(matches(
            "/api/admin/user/tokens/{id}",
            "/api/admin/user/tokens/7"
        ));
        assert!(!matches(
            "/api/admin/user/tokens/{id}",
            "/api/admin/user/tokens"
        ));
        assert!(!matches(
            "/api/admin/user/tokens/{id}",
            "/api/admin/user/tokens/7/x"
        ));
        assert!(!matches("/api/v1/user/apptoken", "/api/v1/user/apptokens"));
    }
}
