//! Unleash's personal access token dialect: `/api/admin/user/tokens[/{id}]`.
//! Views, request parsing and handlers; errors become Unleash's body in `crate::error`.

use crate::app::App;
use crate::error::{self, empty_response, json_response, ApiError};
use crate::http;
use crate::identity::Caller;
use crate::store::Revoked;
use crate::tokens::{
    resolve_expiry, validate_title, ExpiryError, RequestedExpiry, Secret, TitleError, Token,
};
use chrono::{DateTime, Utc};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

pub const COLLECTION_PATH: &str = "/api/admin/user/tokens";

/// `POST /api/admin/user/tokens` → 201, `Location`, `{id, secret, description, expiresAt, createdAt, seenAt}`.
pub async fn create_pat(app: &App, request: Request) -> Response<Body> {
    create(app, &request, Utc::now())
        .await
        .unwrap_or_else(|e| error::unleash_response(&e))
}

/// `GET /api/admin/user/tokens` → 200 `{"pats": [...]}` without secrets.
pub async fn list_pats(app: &App, request: Request) -> Response<Body> {
    list(app, &request, Utc::now())
        .await
        .unwrap_or_else(|e| error::unleash_response(&e))
}

/// `DELETE /api/admin/user/tokens/{id}` → 200 with an empty body.
pub async fn delete_pat(app: &App, request: Request) -> Response<Body> {
    delete(app, &request, Utc::now())
        .await
        .unwrap_or_else(|e| error::unleash_response(&e))
}

async fn create(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let caller = Caller::from_request(request)?;
    // Server-set fields (id, secret, createdAt, seenAt) in the body are ignored, as Unleash does.
    let body = http::json_object_body(request)?;
    let description = match body.get("description") {
        None | Some(Value::Null) => return Err(empty_description()),
        Some(Value::String(raw)) => validate_title(raw).map_err(|e| match e {
            TitleError::Empty => empty_description(),
            TitleError::TooLong => ApiError::bad_field(
                "description",
                "PAT description must be at most 255 characters.",
            ),
        })?,
        Some(_) => {
            return Err(ApiError::bad_field(
                "description",
                "PAT description must be a string.",
            ))
        }
    };
    let expires_at = match body.get("expiresAt") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_field("expiresAt", "expiresAt is required."))
        }
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text.trim())
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_field(
                    "expiresAt",
                    "expiresAt must be a date-time such as 2030-04-19T08:15:14.000Z.",
                )
            })?,
        Some(_) => {
            return Err(ApiError::bad_field(
                "expiresAt",
                "expiresAt must be a date-time string.",
            ))
        }
    };
    let expires =
        resolve_expiry(RequestedExpiry::At(expires_at), now, &app.config).map_err(|e| match e {
            ExpiryError::InPast => {
                ApiError::bad_field("expiresAt", "The expiry date should be in future.")
            }
            ExpiryError::BeyondMaximum { max } => ApiError::bad_field(
                "expiresAt",
                format!("The expiry date must be at most {max} from now."),
            ),
        })?;
    let taken = app
        .store
        .list_tokens(&caller.user_id)
        .await?
        .iter()
        .any(|t| !t.is_expired(now) && t.title == description);
    if taken {
        return Err(ApiError::NameExists(
            "PAT description already exists.".into(),
        ));
    }
    let issued = app
        .issue(&caller.user_id, description, expires, now)
        .await?;
    let mut response = json_response(
        StatusCode::CREATED,
        &view(&issued.token, Some(&issued.secret)),
    );
    if let Ok(location) =
        HeaderValue::from_str(&format!("{COLLECTION_PATH}/{}", issued.token.number))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn empty_description() -> ApiError {
    ApiError::bad_field("description", "PAT description cannot be empty.")
}

async fn list(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::GET)?;
    let caller = Caller::from_request(request)?;
    let mut tokens: Vec<Token> = app
        .store
        .list_tokens(&caller.user_id)
        .await?
        .into_iter()
        .filter(|t| !t.is_expired(now))
        .collect();
    tokens.sort_by_key(|t| t.number);
    let pats: Vec<Value> = tokens.iter().map(|t| view(t, None)).collect();
    Ok(json_response(StatusCode::OK, &json!({ "pats": pats })))
}

async fn delete(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::DELETE)?;
    let caller = Caller::from_request(request)?;
    let number = pat_id(request)?;
    let not_found = || ApiError::NotFound("No PAT found.".into());
    let uuid = app
        .store
        .find_by_number(&caller.user_id, number)
        .await?
        .ok_or_else(not_found)?;
    match app.store.revoke(&caller.user_id, &uuid, now).await? {
        Revoked::Yes => {
            tracing::info!(user_id = caller.user_id, token_uuid = %uuid, number, "token revoked");
            Ok(empty_response(StatusCode::OK))
        }
        Revoked::NotFound => Err(not_found()),
    }
}

/// The `{id}` path segment: a whole number of at least 1.
fn pat_id(request: &Request) -> Result<u64, ApiError> {
    let text = http::path_parameter(request, "id").unwrap_or_default();
    text.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_field(
                "id",
                format!("The PAT id must be a whole number of at least 1, not {text:?}."),
            )
        })
}

/// Unleash's PAT view; `secret` only in the create response.
pub fn view(token: &Token, secret: Option<&Secret>) -> Value {
    let mut view = json!({ "id": token.number });
    if let Some(secret) = secret {
        view["secret"] = Value::String(secret.expose().to_owned());
    }
    view["description"] = Value::String(token.title.clone());
    view["expiresAt"] = token.expires.map(iso8601).into();
    view["createdAt"] = Value::String(iso8601(token.created));
    view["seenAt"] = token.last_used.map(iso8601).into();
    view
}

/// Unleash's date format: ISO 8601 in UTC with milliseconds, as JavaScript's `Date.toJSON`.
pub fn iso8601(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_have_milliseconds_and_z() {
        let at = DateTime::parse_from_rfc3339("2023-04-19T08:15:14Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(iso8601(at), "2023-04-19T08:15:14.000Z");
    }
}
