//! Red Hat Quay's `appspecifictokens` dialect: `/api/v1/user/apptoken[/{token_uuid}]`.
//! Views, request parsing and handlers; errors become Quay's ApiError body in `crate::error`.

use crate::app::App;
use crate::dates;
use crate::error::{self, ApiError};
use crate::http::{self, host};
use crate::identity::authenticate_for;
use crate::response::{self, empty_response, json_response};
use crate::store::{Revoked, TitleRule};
use crate::tokens::scopes::{ScopeSettings, MANAGE_TOKENS, READ_TOKENS};
use crate::tokens::{resolve_expiry, validate_title, ExpiryError, RequestedExpiry, Secret, Token};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use uuid::Uuid;

/// `POST /api/v1/user/apptoken` → 201 `{"token": {..., "token_code"}}`.
pub async fn create_app_token(app: &App, request: Request) -> Response<Body> {
    respond(&request, create(app, &request, Utc::now())).await
}

/// `GET /api/v1/user/apptoken[?expiring=true|false]` → 200 `{"tokens": [...], "only_expiring": ...}`.
pub async fn list_app_tokens(app: &App, request: Request) -> Response<Body> {
    respond(&request, list(app, &request, Utc::now())).await
}

/// `GET /api/v1/user/apptoken/{token_uuid}` → 200 `{"token": {...}}` (no secret).
pub async fn get_app_token(app: &App, request: Request) -> Response<Body> {
    respond(&request, get(app, &request, Utc::now())).await
}

/// `DELETE /api/v1/user/apptoken/{token_uuid}` → 204.
pub async fn revoke_app_token(app: &App, request: Request) -> Response<Body> {
    respond(&request, revoke(app, &request, Utc::now())).await
}

/// A route's answer, an error as Quay's body (`response::answer`).
pub(crate) async fn respond(
    request: &Request,
    work: impl std::future::Future<Output = Result<Response<Body>, ApiError>>,
) -> Response<Body> {
    response::answer(request, work, |e| {
        error::quay_response(e, host(request).as_deref())
    })
    .await
}

async fn create(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
    let body = http::json_object_body(request)?;
    let title = match body.get("title") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_field("title", "'title' is required"))
        }
        Some(Value::String(raw)) => {
            validate_title(raw).map_err(|e| ApiError::bad_field("title", format!("'title' {e}")))?
        }
        Some(_) => return Err(ApiError::bad_field("title", "'title' must be a string")),
    };
    let expires = expiration(body.get("expiration"), now, &app.config)?;
    let scopes = app.new_token_scopes(&caller, body.get("scopes"))?;
    let issued = app
        .issue(
            &caller.user_id,
            title,
            expires,
            scopes,
            TitleRule::Shared,
            &caller.audit(request, now),
        )
        .await?;
    let view = view(&issued.token, Some(&issued.secret), &app.config.scopes);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "token": view }),
    ))
}

/// The expiry a create or rotation asks for in `expiration`, checked against the lifetime rules.
pub(crate) fn expiration(
    value: Option<&Value>,
    now: DateTime<Utc>,
    config: &crate::config::Config,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let requested = requested_expiration(value, now)?;
    resolve_expiry(requested, now, config).map_err(|e| match e {
        ExpiryError::InPast => {
            ApiError::bad_field("expiration", "'expiration' must be in the future")
        }
        ExpiryError::BeyondMaximum { max } => ApiError::bad_field(
            "expiration",
            format!("'expiration' must be at most {max} from now"),
        ),
        ExpiryError::TooFar => {
            ApiError::bad_field("expiration", "'expiration' must be before the year 10000")
        }
    })
}

/// `expiration`: an RFC 3339 date-time, or whole seconds from now; absent or null for the default.
fn requested_expiration(
    value: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<RequestedExpiry, ApiError> {
    const HINT: &str =
        "'expiration' must be an RFC 3339 date-time or a whole number of seconds from now";
    match value {
        None | Some(Value::Null) => Ok(RequestedExpiry::Default),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text.trim())
            .map(|at| RequestedExpiry::At(at.with_timezone(&Utc)))
            .map_err(|_| ApiError::bad_field("expiration", HINT)),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
            .map(RequestedExpiry::At)
            .ok_or_else(|| ApiError::bad_field("expiration", HINT)),
        Some(_) => Err(ApiError::bad_field("expiration", HINT)),
    }
}

async fn list(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::GET)?;
    let caller = authenticate_for(app, request, now, READ_TOKENS).await?;
    let only_expiring = match http::query_parameter(request, "expiring") {
        None => None,
        Some(text) => Some(parse_flag(&text).ok_or_else(|| {
            ApiError::bad_field(
                "expiring",
                format!("Invalid value for 'expiring': {text:?}; use true or false"),
            )
        })?),
    };
    let soon = now + app.config.expiring_soon_window();
    let mut tokens: Vec<Token> = app
        .store
        .live_tokens(&caller.user_id, now)
        .await?
        .into_iter()
        .filter(|t| only_expiring != Some(true) || t.expires.is_some_and(|at| at <= soon))
        .collect();
    tokens.sort_by(|a, b| b.created.cmp(&a.created).then(b.number.cmp(&a.number)));
    #[derive(Serialize)]
    struct Listed<'a> {
        tokens: Vec<TokenView<'a>>,
        only_expiring: Option<bool>,
    }
    let listed = Listed {
        tokens: tokens
            .iter()
            .map(|t| view(t, None, &app.config.scopes))
            .collect(),
        only_expiring,
    };
    Ok(json_response(StatusCode::OK, &listed))
}

/// `true`/`false`/`1`/`0`, any case; anything else is refused rather than read as true.
fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

async fn get(app: &App, request: &Request, now: DateTime<Utc>) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::GET)?;
    let caller = authenticate_for(app, request, now, READ_TOKENS).await?;
    let uuid = token_uuid(request)?;
    match app.store.get_token(&caller.user_id, &uuid).await? {
        Some(token) if !token.is_expired(now) => Ok(json_response(
            StatusCode::OK,
            &json!({ "token": view(&token, None, &app.config.scopes) }),
        )),
        _ => Err(not_found()),
    }
}

async fn revoke(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::DELETE)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
    let uuid = token_uuid(request)?;
    match app
        .store
        .revoke(&caller.user_id, &uuid, &caller.audit(request, now))
        .await?
    {
        Revoked::Yes => {
            tracing::info!(user_id = caller.user_id, token_uuid = %uuid, "token revoked");
            Ok(empty_response(StatusCode::NO_CONTENT))
        }
        Revoked::NotFound => Err(not_found()),
    }
}

/// A malformed uuid is a 404 as in Quay (no token can live there), with a message that says
/// the uuid is malformed rather than unknown.
pub(crate) fn token_uuid(request: &Request) -> Result<Uuid, ApiError> {
    let text = http::path_parameter(request, "token_uuid").unwrap_or_default();
    Uuid::parse_str(&text).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        ApiError::NotFound(format!("Not Found: {shown:?} is not a token UUID"))
    })
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into())
}

/// Quay's token view, with the token's `scopes` (ours; those of a token stored before scopes
/// existed are `ScopeSettings::legacy`); `token_code` only in the create response. Serialized
/// straight from the token (no intermediate JSON tree): a list of 100 is one pass.
#[derive(Debug, Serialize)]
pub struct TokenView<'a> {
    uuid: Uuid,
    title: &'a str,
    #[serde(serialize_with = "dates::serialize_optional_rfc2822")]
    last_accessed: Option<DateTime<Utc>>,
    #[serde(serialize_with = "dates::serialize_rfc2822")]
    created: DateTime<Utc>,
    #[serde(serialize_with = "dates::serialize_optional_rfc2822")]
    expiration: Option<DateTime<Utc>>,
    scopes: Cow<'a, [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_code: Option<&'a str>,
}

pub fn view<'a>(
    token: &'a Token,
    secret: Option<&'a Secret>,
    settings: &ScopeSettings,
) -> TokenView<'a> {
    TokenView {
        scopes: match &token.scopes {
            Some(scopes) => Cow::Borrowed(scopes),
            None => Cow::Owned(settings.legacy()),
        },
        uuid: token.uuid,
        title: &token.title,
        last_accessed: token.last_used,
        created: token.created,
        expiration: token.expires,
        token_code: secret.map(Secret::expose),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_flag_is_strict() {
        for (text, want) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("False", Some(false)),
            ("0", Some(false)),
        ] {
            assert_eq!(parse_flag(text), want, "{text}");
        }
        for text in ["", "yes", "no", "null", "2", "tru"] {
            assert_eq!(parse_flag(text), None, "{text}");
        }
    }
}
