//! Unleash's personal access token dialect: `/api/admin/user/tokens[/{id}]`.
//! Views, request parsing and handlers; errors become Unleash's body in `crate::error`.

use crate::app::App;
use crate::dates;
use crate::error::{self, ApiError};
use crate::http;
use crate::identity::authenticate_for;
use crate::response::{self, empty_response, json_response};
use crate::store::{Revoked, StoredToken, TitleRule};
use crate::tokens::scopes::{MANAGE_TOKENS, READ_TOKENS};
use crate::tokens::{
    resolve_expiry, validate_title, ExpiryError, RequestedExpiry, Secret, TitleError, Token,
};
use chrono::{DateTime, Utc};
use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;

pub const COLLECTION_PATH: &str = "/api/admin/user/tokens";

/// `POST /api/admin/user/tokens` → 201, `Location`, `{id, secret, description, expiresAt, createdAt, seenAt}`.
pub async fn create_pat(app: &App, request: Request) -> Response<Body> {
    respond(&request, create(app, &request, Utc::now())).await
}

/// `GET /api/admin/user/tokens` → 200 `{"pats": [...]}` without secrets.
pub async fn list_pats(app: &App, request: Request) -> Response<Body> {
    respond(&request, list(app, &request, Utc::now())).await
}

/// `DELETE /api/admin/user/tokens/{id}` → 200 with an empty body.
pub async fn delete_pat(app: &App, request: Request) -> Response<Body> {
    respond(&request, delete(app, &request, Utc::now())).await
}

/// A route's answer, an error as Unleash's body (`response::answer`).
pub(crate) async fn respond(
    request: &Request,
    work: impl std::future::Future<Output = Result<Response<Body>, ApiError>>,
) -> Response<Body> {
    response::answer(request, work, error::unleash_response).await
}

async fn create(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
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
        value => value,
    };
    let expires = expires_at_field(expires_at, now, &app.config)?;
    // Ours: an optional `scopes` array, never shown in Unleash's responses.
    let scopes = app.new_token_scopes(&caller, body.get("scopes"))?;
    // The store refuses a description a live token of the caller has, atomically.
    let issued = app
        .issue(
            &caller.user_id,
            description,
            expires,
            scopes,
            TitleRule::Unique,
            &caller.audit(request, now),
        )
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

/// The expiry a create or rotation asks for in `expiresAt` (absent or null: the default
/// lifetime, for rotations), checked against the lifetime rules, in Unleash's words.
pub(crate) fn expires_at_field(
    value: Option<&Value>,
    now: DateTime<Utc>,
    config: &crate::config::Config,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let requested = match value {
        None | Some(Value::Null) => RequestedExpiry::Default,
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text.trim())
            .map(|at| RequestedExpiry::At(at.with_timezone(&Utc)))
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
    resolve_expiry(requested, now, config).map_err(|e| match e {
        ExpiryError::InPast => {
            ApiError::bad_field("expiresAt", "The expiry date should be in future.")
        }
        ExpiryError::BeyondMaximum { max } => ApiError::bad_field(
            "expiresAt",
            format!("The expiry date must be at most {max} from now."),
        ),
        ExpiryError::TooFar => ApiError::bad_field(
            "expiresAt",
            "The expiry date must be before the year 10000.",
        ),
    })
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
    let caller = authenticate_for(app, request, now, READ_TOKENS).await?;
    let mut tokens: Vec<Token> = app.store.live_tokens(&caller.user_id, now).await?;
    tokens.sort_by_key(|t| t.number);
    #[derive(Serialize)]
    struct Listed<'a> {
        pats: Vec<PatView<'a>>,
    }
    let listed = Listed {
        pats: tokens.iter().map(|t| view(t, None)).collect(),
    };
    Ok(json_response(StatusCode::OK, &listed))
}

async fn delete(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::DELETE)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
    let number = pat_id(request)?;
    let found = find_pat(app, &caller.user_id, number).await?;
    match app
        .store
        .revoke_stored(&found, &caller.audit(request, now))
        .await?
    {
        Revoked::Yes => {
            tracing::info!(user_id = caller.user_id, token_uuid = %found.uuid, number, "token revoked");
            Ok(empty_response(StatusCode::OK))
        }
        Revoked::NotFound => Err(pat_not_found()),
    }
}

/// The caller's PAT with Unleash id `number` (one Query of `by_number`), or Unleash's 404.
pub(crate) async fn find_pat(
    app: &App,
    user_id: &str,
    number: u64,
) -> Result<StoredToken, ApiError> {
    app.store
        .find_by_number(user_id, number)
        .await?
        .ok_or_else(pat_not_found)
}

pub(crate) fn pat_not_found() -> ApiError {
    ApiError::NotFound("No PAT found.".into())
}

/// The `{id}` path segment: a whole number of at least 1.
pub(crate) fn pat_id(request: &Request) -> Result<u64, ApiError> {
    let text = http::path_parameter(request, "id").unwrap_or_default();
    text.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1 && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_path_parameter(
                "id",
                format!("The PAT id must be a whole number of at least 1, not {text:?}."),
            )
        })
}

/// Unleash's PAT view; `secret` only in the create response. Serialized straight from the
/// token, without an intermediate JSON tree.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatView<'a> {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    description: &'a str,
    #[serde(serialize_with = "dates::serialize_optional_iso8601")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "dates::serialize_iso8601")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "dates::serialize_optional_iso8601")]
    seen_at: Option<DateTime<Utc>>,
}

pub fn view<'a>(token: &'a Token, secret: Option<&'a Secret>) -> PatView<'a> {
    PatView {
        id: token.number,
        secret: secret.map(Secret::expose),
        description: &token.title,
        expires_at: token.expires,
        created_at: token.created,
        seen_at: token.last_used,
    }
}
