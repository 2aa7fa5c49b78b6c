//! Typed errors of the API, and their mapping to each dialect's body: the one place that
//! decides status codes and error bodies.

use crate::identity::IdentityError;
use crate::response::json_response;
use crate::store::StoreError;
use crate::tokens::scopes::{self, AnyOf};
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde_json::{json, Value};

/// Seconds a client is asked to wait when DynamoDB throttles or is unreachable.
pub const RETRY_AFTER_SECONDS: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Bad input; `field` names the offending field where there is one.
    #[error("{message}")]
    BadRequest {
        field: Option<Field>,
        message: String,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Requires authentication")]
    Unauthenticated,
    /// Credentials were sent, and they do not authenticate.
    #[error("{0}")]
    InvalidCredentials(String),
    /// Authenticated, but holding none of the scopes the route needs.
    #[error("{}", insufficient_scope_message(.0))]
    InsufficientScope(AnyOf),
    /// A create asked for a scope its caller cannot grant (names it).
    #[error("Cannot grant the {0} scope: the caller does not hold it")]
    CannotGrant(String),
    /// Authenticated, but not as a user.
    #[error("{0}")]
    NotAUser(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NameExists(String),
    /// A concurrent change won (e.g. two rotations of one token): read again and retry.
    #[error("{0}")]
    Conflict(String),
    #[error("Too many tokens ({cap}) already exist for this user.")]
    CapReached { cap: u32 },
    /// `allow`: the methods the path has, for the `Allow` header.
    #[error("Method {method} is not allowed on this route")]
    MethodNotAllowed { method: String, allow: String },
    #[error("The token store is temporarily unavailable; retry shortly")]
    Unavailable,
    #[error("Internal error")]
    Internal,
}

/// Where a bad value was: a field of the JSON body or a path parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Body(&'static str),
    Path(&'static str),
}

impl Field {
    /// The `path` of Unleash's error detail: `/body/<field>` or `/params/<name>`.
    fn pointer(self) -> String {
        match self {
            Field::Body(name) => format!("/body/{name}"),
            Field::Path(name) => format!("/params/{name}"),
        }
    }
}

impl ApiError {
    /// A bad field of the request's JSON body.
    pub fn bad_field(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: Some(Field::Body(field)),
            message: message.into(),
        }
    }

    /// A bad path parameter (`{id}` and the like).
    pub fn bad_path_parameter(name: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: Some(Field::Path(name)),
            message: message.into(),
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: None,
            message: message.into(),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> ApiError {
        match e {
            IdentityError::Missing => ApiError::Unauthenticated,
            IdentityError::Rejected | IdentityError::Superseded => {
                ApiError::InvalidCredentials(e.to_string())
            }
            IdentityError::NotAUser => ApiError::NotAUser(e.to_string()),
            IdentityError::Unavailable => ApiError::Unavailable,
            IdentityError::InsufficientScope { needed } => ApiError::InsufficientScope(needed),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::CapReached { cap } => ApiError::CapReached { cap },
            // Only Unleash creates ask for unique titles.
            StoreError::TitleInUse => {
                ApiError::NameExists("PAT description already exists.".into())
            }
            StoreError::Unavailable(reason) => {
                tracing::warn!(reason, "token store unavailable");
                ApiError::Unavailable
            }
            StoreError::Corrupt(reason) | StoreError::Failed(reason) => {
                tracing::error!(reason, "token store failure");
                ApiError::Internal
            }
        }
    }
}

fn insufficient_scope_message(needed: &AnyOf) -> String {
    match needed {
        [one] => format!("Requires the {one} scope"),
        many => format!("Requires one of the scopes {}", many.join(", ")),
    }
}

/// Quay's ApiError body: `{status, error_message, title, error_type, detail, type}`.
/// `host` is the API's domain name, for the `type` URL as Quay builds it.
pub fn quay_response(error: &ApiError, host: Option<&str>) -> Response<Body> {
    let (status, kind, detail) = match error {
        ApiError::BadRequest { .. } | ApiError::UnsupportedMediaType(_) => {
            (StatusCode::BAD_REQUEST, "invalid_request", error.to_string())
        }
        ApiError::CapReached { cap } => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Too many app-specific tokens ({cap}) already exist for this user; revoke one first."),
        ),
        ApiError::Unauthenticated | ApiError::InvalidCredentials(_) => (StatusCode::UNAUTHORIZED, "invalid_token", error.to_string()),
        ApiError::InsufficientScope(_) | ApiError::CannotGrant(_) | ApiError::NotAUser(_) => {
            (StatusCode::FORBIDDEN, "insufficient_scope", error.to_string())
        }
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", error.to_string()),
        ApiError::NameExists(_) | ApiError::Conflict(_) => (StatusCode::CONFLICT, "invalid_request", error.to_string()),
        ApiError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", error.to_string()),
        ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", error.to_string()),
        ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", error.to_string()),
    };
    let type_url = match host {
        Some(host) if !host.is_empty() => format!("https://{host}/api/v1/error/{kind}"),
        _ => format!("/api/v1/error/{kind}"),
    };
    let body = json!({
        "status": status.as_u16(),
        "error_message": detail,
        "title": kind,
        "error_type": kind,
        "detail": detail,
        "type": type_url,
    });
    with_auth_headers(json_response(status, &body), error)
}

/// Unleash's error body: `{id, name, message, details}`; `details` names the field at fault.
pub fn unleash_response(error: &ApiError) -> Response<Body> {
    let (status, name, message) = match error {
        ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "BadDataError", error.to_string()),
        ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "ContentTypeError", error.to_string()),
        ApiError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "You must log in to use this API. Send a personal access token or session in the Authorization header."
                .to_owned(),
        ),
        ApiError::InvalidCredentials(_) => (StatusCode::UNAUTHORIZED, "AuthenticationRequired", error.to_string()),
        ApiError::InsufficientScope(_) | ApiError::CannotGrant(_) | ApiError::NotAUser(_) => (StatusCode::FORBIDDEN, "NoAccessError", error.to_string()),
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundError", error.to_string()),
        ApiError::NameExists(_) => (StatusCode::CONFLICT, "NameExistsError", error.to_string()),
        ApiError::Conflict(_) => (StatusCode::CONFLICT, "ConflictError", error.to_string()),
        ApiError::CapReached { cap } => (
            StatusCode::FORBIDDEN,
            "OperationDeniedError",
            format!("Too many PATs ({cap}) already exist for this user."),
        ),
        ApiError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedError", error.to_string()),
        ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableError", error.to_string()),
        ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError", error.to_string()),
    };
    let mut detail = json!({ "message": message });
    if let ApiError::BadRequest {
        field: Some(field), ..
    } = error
    {
        detail["path"] = Value::String(field.pointer());
    }
    let body = json!({
        "id": uuid::Uuid::new_v4(),
        "name": name,
        "message": message,
        "details": [detail],
    });
    with_auth_headers(json_response(status, &body), error)
}

/// The challenges of a 401, in one header (API Gateway's payload 2.0 joins repeated headers
/// into one anyway): every route accepts a bearer token (a PAT or a session) and Basic with
/// the username `$app` (docker login), so both are offered (RFC 9110 §11.6.1); RFC 6750 §3's
/// `error="invalid_token"` once credentials were sent and failed.
pub const MISSING_CREDENTIALS_CHALLENGE: &str =
    "Bearer realm=\"token-service\", Basic realm=\"token-service\", charset=\"UTF-8\"";
pub const INVALID_CREDENTIALS_CHALLENGE: &str = "Bearer realm=\"token-service\", error=\"invalid_token\", Basic realm=\"token-service\", charset=\"UTF-8\"";

/// RFC 6750 challenges, `Allow` for 405s and `Retry-After` for 503s.
fn with_auth_headers(mut response: Response<Body>, error: &ApiError) -> Response<Body> {
    let headers = response.headers_mut();
    match error {
        ApiError::Unauthenticated => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(MISSING_CREDENTIALS_CHALLENGE),
            );
        }
        ApiError::InvalidCredentials(_) => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(INVALID_CREDENTIALS_CHALLENGE),
            );
        }
        ApiError::InsufficientScope(needed) => {
            // RFC 6750 §3: `scope` lists the scopes (space-separated); any one of them suffices here.
            let challenge = format!(
                "Bearer realm=\"token-service\", error=\"insufficient_scope\", scope=\"{}\"",
                scopes::join(needed)
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        ApiError::Unavailable => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        ApiError::MethodNotAllowed { allow, .. } => {
            if let Ok(value) = HeaderValue::from_str(allow) {
                headers.insert(header::ALLOW, value);
            }
        }
        _ => {}
    }
    response
}
