//! Rotation: a token keeps its identity and gets a new secret, shown once; the old secret keeps
//! working for an optional `grace`, then is denied as `superseded`. Three routes:
//! `POST /api/v1/user/apptoken/{token_uuid}/rotate` and `POST /api/admin/user/tokens/{id}/rotate`
//! (`user:admin`, in their dialects; the caller must be able to grant every scope the target
//! holds, since it receives the target's new secret), and `POST /api/v1/user/apptoken/self/rotate`,
//! where a token rotates itself (`user:admin`, or `self_rotate` within the token's lifetime at
//! creation). A secret in its grace manages nothing (`identity::refuse_superseded`). A superseded
//! secret presented to `self/rotate` after its grace means someone else holds a copy: the whole
//! token is revoked.

use crate::app::{generate_secret, App};
use crate::authorizer::credentials::{self, Credential};
use crate::authorizer::{Decision, DenyReason};
use crate::error::ApiError;
use crate::http;
use crate::identity::{self, authenticate_for, AuthMethod, Caller};
use crate::response::json_response;
use crate::store::{Actor, Audit, Revoked, Rotated, Rotation, StoredToken};
use crate::tokens::scopes::{self, MANAGE_TOKENS, ROTATE_SELF};
use crate::tokens::{IssuedToken, Secret, SecretDigest};
use crate::{config, quay, unleash};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use uuid::Uuid;

/// `POST /api/v1/user/apptoken/{token_uuid}/rotate` → 200 `{"token": {..., "token_code"}}`.
pub async fn rotate_app_token(app: &App, request: Request) -> Response<Body> {
    quay::respond(&request, by_uuid(app, &request, Utc::now())).await
}

/// `POST /api/admin/user/tokens/{id}/rotate` → 200 patSchema with `secret`.
pub async fn rotate_pat(app: &App, request: Request) -> Response<Body> {
    unleash::respond(&request, by_number(app, &request, Utc::now())).await
}

/// `POST /api/v1/user/apptoken/self/rotate` → 200 `{"token": {..., "token_code"}}`.
pub async fn rotate_self(app: &App, request: Request) -> Response<Body> {
    quay::respond(&request, itself(app, &request, Utc::now())).await
}

async fn by_uuid(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
    let uuid = quay::token_uuid(request)?;
    let (secret, rotation) = rotation_of(app, request, &caller, now, QUAY_EXPIRY, None)?;
    let found = app
        .store
        .get_stored(&caller.user_id, &uuid)
        .await?
        .ok_or_else(quay::not_found)?;
    may_receive(app, &caller, &found)?;
    let rotated = app.store.rotate_stored(&found, &rotation).await?;
    quay_answer(app, finish(rotated, secret, quay::not_found)?)
}

async fn by_number(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let caller = authenticate_for(app, request, now, MANAGE_TOKENS).await?;
    let number = unleash::pat_id(request)?;
    let (secret, rotation) = rotation_of(app, request, &caller, now, UNLEASH_EXPIRY, None)?;
    let found = unleash::find_pat(app, &caller.user_id, number).await?;
    may_receive(app, &caller, &found)?;
    let rotated = app.store.rotate_stored(&found, &rotation).await?;
    let issued = finish(rotated, secret, unleash::pat_not_found)?;
    Ok(json_response(
        StatusCode::OK,
        &unleash::view(&issued.token, Some(&issued.secret)),
    ))
}

/// The caller must present a PAT, its current secret. A superseded one past its grace (reuse)
/// revokes the token; a session has no token of its own to rotate.
async fn itself(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let presented = match credentials::from_headers(request.headers()) {
        Ok(Credential::Secret(text)) => app
            .config
            .secret_format
            .parse(&text)
            .ok()
            .map(|s| s.digest()),
        _ => None,
    };
    let decision = identity::decide(app, request, now).await;
    if let Decision::Deny(denial) = &decision {
        if let (DenyReason::Superseded, Some(user_id), Some(uuid)) =
            (denial.reason, &denial.user_id, denial.token_uuid)
        {
            let audit = identity::request_audit(request, Actor::Token(uuid), now);
            return Err(reuse_detected(app, user_id, &uuid, &audit).await);
        }
    }
    let caller = identity::from_decision(decision)?;
    crate::response::note_token_expiry(caller.expires);
    let caller = identity::requiring(identity::refuse_superseded(caller)?, ROTATE_SELF)?;
    let (AuthMethod::Pat { token_uuid: uuid }, Some(presented)) = (&caller.method, presented)
    else {
        return Err(ApiError::bad(
            "self/rotate rotates the personal access token presented in Authorization; a session has none",
        ));
    };
    let (secret, mut rotation) =
        rotation_of(app, request, &caller, now, QUAY_EXPIRY, Some(presented))?;
    rotation.within_lifetime = !scopes::holds_any(&caller.scopes, MANAGE_TOKENS);
    let rotated = app.store.rotate(&caller.user_id, uuid, &rotation).await?;
    let issued = finish(rotated, secret, quay::not_found)?;
    // The caller's token now expires when the rotation says.
    crate::response::note_token_expiry(issued.token.expires);
    quay_answer(app, issued)
}

/// A superseded secret came back after its grace: both secrets die with the token.
async fn reuse_detected(app: &App, user_id: &str, uuid: &Uuid, audit: &Audit) -> ApiError {
    match app.store.revoke(user_id, uuid, audit).await {
        Ok(Revoked::Yes) => tracing::warn!(
            user_id,
            token_uuid = %uuid,
            "a superseded secret was presented to self/rotate after its grace: token revoked (reuse)"
        ),
        Ok(Revoked::NotFound) => {}
        Err(error) => {
            tracing::error!(%error, user_id, token_uuid = %uuid, "reuse detected, but the token could not be revoked");
            return ApiError::Unavailable;
        }
    }
    ApiError::InvalidCredentials(identity::IdentityError::Rejected.to_string())
}

/// The dialect's expiry field and its reader.
type ExpiryField = (
    &'static str,
    fn(Option<&Value>, DateTime<Utc>, &config::Config) -> Result<Option<DateTime<Utc>>, ApiError>,
);
const QUAY_EXPIRY: ExpiryField = ("expiration", quay::expiration);
const UNLEASH_EXPIRY: ExpiryField = ("expiresAt", unleash::expires_at_field);

/// A new secret and the rotation `caller` asked for: the (optional) body's expiry, in the
/// dialect's field, and `grace`; `presented`, for `self/rotate`, the secret that must be current.
fn rotation_of(
    app: &App,
    request: &Request,
    caller: &Caller,
    now: DateTime<Utc>,
    (field, read_expiry): ExpiryField,
    presented: Option<SecretDigest>,
) -> Result<(Secret, Rotation), ApiError> {
    let body = http::optional_json_object_body(request)?;
    let expires = read_expiry(body.get(field), now, &app.config)?;
    let grace = grace(body.get("grace"), &app.config)?;
    let secret = generate_secret(&app.config.secret_format)?;
    let rotation = Rotation {
        digest: secret.digest(),
        expires: expires.map(crate::tokens::truncate_to_millis),
        grace,
        ttl_grace: app.config.ttl_grace,
        presented,
        within_lifetime: false,
        audit: caller.audit(request, now),
    };
    Ok((secret, rotation))
}

/// `grace`: a duration in the configuration's units (`12h`, `7d`, `0s`), at most
/// `MAX_ROTATION_GRACE`; absent or null is 0.
fn grace(value: Option<&Value>, config: &config::Config) -> Result<Duration, ApiError> {
    let max = config.max_rotation_grace;
    let grace = match value {
        None | Some(Value::Null) => return Ok(Duration::zero()),
        Some(Value::String(text)) => config::parse_duration(text.trim())
            .map_err(|problem| ApiError::bad_field("grace", format!("'grace': {problem}")))?,
        Some(_) => {
            return Err(ApiError::bad_field(
                "grace",
                "'grace' must be a duration string such as 12h or 7d",
            ))
        }
    };
    if grace > max {
        return Err(ApiError::bad_field(
            "grace",
            format!(
                "'grace' must be at most {}",
                crate::tokens::describe_duration(max)
            ),
        ));
    }
    Ok(grace)
}

/// Rotating hands the caller the target's new secret: the caller must be able to grant every
/// scope the target holds (as for a create), else 403 naming the first it cannot.
fn may_receive(app: &App, caller: &Caller, target: &StoredToken) -> Result<(), ApiError> {
    let settings = &app.config.scopes;
    let held = settings.held(target.token().scopes.as_deref());
    match scopes::first_missing(&held, &caller.grantable(settings)) {
        Some(scope) => Err(ApiError::CannotGrant(scope.to_owned())),
        None => Ok(()),
    }
}

fn finish(
    rotated: Rotated,
    secret: Secret,
    not_found: fn() -> ApiError,
) -> Result<IssuedToken, ApiError> {
    match rotated {
        Rotated::Yes(token) => {
            tracing::info!(user_id = token.user_id, token_uuid = %token.uuid, "token rotated");
            Ok(IssuedToken { token, secret })
        }
        Rotated::NotFound => Err(not_found()),
        Rotated::Conflict => Err(ApiError::Conflict(
            "The token was rotated or revoked meanwhile; read it again and retry.".into(),
        )),
        Rotated::NotCurrent => Err(ApiError::bad(
            "Only the token's current secret can rotate it; this one was replaced by a rotation.",
        )),
    }
}

fn quay_answer(app: &App, issued: IssuedToken) -> Result<Response<Body>, ApiError> {
    let view = quay::view(&issued.token, Some(&issued.secret), &app.config.scopes);
    Ok(json_response(StatusCode::OK, &json!({ "token": view })))
}
