//! The Lambda authorizer: an API Gateway HTTP API authorizer, payload format 2.0,
//! simple responses. It accepts a personal access token as `Bearer <secret>`, as a bare
//! `<secret>` or as `Basic base64("$app:<secret>")`, and a session as `Bearer <JWT>` from the
//! configured OIDC issuer. An allowed caller gets the context the route handlers read
//! (`crate::identity`): `{user_id, auth: "pat"|"jwt", token_uuid (PATs only), scopes}`, strings only,
//! `scopes` space-separated: the token's, or the session's. A deployment may require scopes
//! per route key (`AUTHORIZER_ROUTE_SCOPES`): a caller holding none of them is denied.
//!
//! A token that fails its prefix or checksum is denied without a database read. Every other token
//! costs one strongly consistent GetItem, so a token revoked before the call never authenticates,
//! plus, at most once per `LAST_USED_THROTTLE` window, one write of its `last used`.

pub mod credentials;

pub use crate::oidc::{
    JwtRejection, JwtVerifier, OidcSettings, OIDC_AUDIENCE, OIDC_ISSUER, OIDC_JWKS_URL,
};

use crate::app::App;
use crate::store::{SecretEnded, SecretRecord};
use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use chrono::{DateTime, Utc};
use credentials::{Credential, CredentialError};
use http::HeaderMap;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The one decision from an `Authorization` header to a caller, made the same way by the
/// authorizer function (for other APIs' routes) and by every route of this bundle (in process,
/// `crate::identity::authenticate`). PAT results are never cached: each request reads the
/// lookup record, so a revoke takes effect on the next request.
impl App {
    /// Decides on the request's `Authorization` header at `now` (PAT expiry and `last used`; JWT
    /// time claims are checked against the system clock).
    pub async fn decide(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Decision {
        match credentials::from_headers(headers) {
            Err(e) => Decision::deny(DenyReason::Credentials(e)),
            Ok(Credential::Secret(text)) => self.decide_secret(&text, now).await,
            Ok(Credential::Jwt(token)) => self.decide_jwt(&token).await,
        }
    }

    async fn decide_secret(&self, text: &str, now: DateTime<Utc>) -> Decision {
        let Ok(secret) = self.config.secret_format.parse(text) else {
            return Decision::deny(DenyReason::Malformed);
        };
        let record = match self.store.find_secret(&secret.digest()).await {
            Ok(Some(record)) => record,
            Ok(None) => return Decision::deny(DenyReason::UnknownOrRevoked),
            Err(error) => {
                tracing::warn!(%error, "token lookup failed");
                return Decision::Fail(Denial {
                    auth: Some(AuthKind::Pat),
                    ..Denial::new(DenyReason::StoreUnavailable)
                });
            }
        };
        let ended = |reason| {
            Decision::Deny(Denial {
                reason,
                auth: Some(AuthKind::Pat),
                user_id: Some(record.user_id.clone()),
                token_uuid: Some(record.token_uuid),
            })
        };
        match record.ended(now) {
            Some(SecretEnded::Superseded) => return ended(DenyReason::Superseded),
            Some(SecretEnded::Expired) => return ended(DenyReason::Expired),
            None => {}
        }
        self.note_use(&record, now).await;
        Decision::Allow(Principal {
            scopes: self.config.scopes.held(record.scopes.as_deref()),
            user_id: record.user_id,
            auth: AuthKind::Pat,
            token_uuid: Some(record.token_uuid),
            expires: record.expires,
            grace_until: record.superseded_until,
        })
    }

    /// A failed `last used` write never costs the caller its request: the field is bookkeeping.
    async fn note_use(&self, record: &SecretRecord, now: DateTime<Utc>) {
        if let Err(error) = self
            .store
            .record_use(record, now, self.config.last_used_throttle)
            .await
        {
            tracing::warn!(
                %error,
                user_id = %record.user_id,
                token_uuid = %record.token_uuid,
                "cannot record the token's last use; the request is still allowed"
            );
        }
    }

    async fn decide_jwt(&self, token: &str) -> Decision {
        let Some(verifier) = &self.jwt else {
            return Decision::deny(DenyReason::JwtNotAccepted);
        };
        match verifier.verify(token).await {
            Ok(session) => Decision::Allow(Principal {
                user_id: session.subject,
                auth: AuthKind::Jwt,
                token_uuid: None,
                scopes: session.scopes,
                expires: None,
                grace_until: None,
            }),
            // The issuer's keys could not be fetched: nothing is known about the session, so
            // no decision (the client may retry), as when DynamoDB fails; never a deny, which
            // would tell a signed-in user their session is bad.
            Err(JwtRejection::KeysUnavailable) => Decision::Fail(Denial {
                auth: Some(AuthKind::Jwt),
                ..Denial::new(DenyReason::Jwt(JwtRejection::KeysUnavailable))
            }),
            Err(rejection) => Decision::Deny(Denial {
                auth: Some(AuthKind::Jwt),
                ..Denial::new(DenyReason::Jwt(rejection))
            }),
        }
    }
}

/// The authorizer could not decide (DynamoDB or the OIDC issuer's key set unavailable): the
/// invocation fails, so API Gateway answers 500, which clients retry, where a deny (403) would
/// read as "bad credentials" and make them give up.
#[derive(Debug, thiserror::Error)]
#[error("cannot decide: {0} (the token store or the issuer's key set is unavailable; the client may retry)")]
pub struct Undecided(pub &'static str);

/// The handler: decides, applies the deployment's scope rule for the route key
/// (`AUTHORIZER_ROUTE_SCOPES`), logs one line, answers in the simple response format, or
/// fails the invocation when DynamoDB or the issuer's key set cannot be read (never allows).
pub async fn authorize(
    app: &App,
    request: ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, Undecided> {
    authorize_at(app, request, Utc::now()).await
}

/// `authorize` at a given instant (tests move the clock for expiry and the `last used` window).
pub async fn authorize_at(
    app: &App,
    request: ApiGatewayV2CustomAuthorizerV2Request,
    now: DateTime<Utc>,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, Undecided> {
    let decision = app.decide(&request.headers, now).await;
    let route_key = request.route_key.as_deref().unwrap_or_default();
    let decision = match app.config.scopes.required_for(route_key) {
        Some(needed) => decision.requiring(needed),
        None => decision,
    };
    decision.log(request.request_context.request_id.as_deref());
    match &decision {
        Decision::Fail(denial) => Err(Undecided(denial.reason.code())),
        _ => Ok(decision.response()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Pat,
    Jwt,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Pat => "pat",
            AuthKind::Jwt => "jwt",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub auth: AuthKind,
    /// The token's uuid, for PATs.
    pub token_uuid: Option<Uuid>,
    /// The token's scopes for PATs; the session's scopes for JWTs.
    pub scopes: Vec<String>,
    /// When the PAT expires (`None`: never, or a session).
    pub expires: Option<DateTime<Utc>>,
    /// A superseded secret still in its rotation grace: when the grace ends. It authenticates
    /// other routes until then; the token routes refuse it (`crate::identity`).
    pub grace_until: Option<DateTime<Utc>>,
}

impl Principal {
    /// The context API Gateway passes to the route as `requestContext.authorizer.lambda`.
    pub fn context(&self) -> Value {
        let mut context = Map::new();
        context.insert("user_id".into(), self.user_id.clone().into());
        context.insert("auth".into(), self.auth.as_str().into());
        if let Some(uuid) = self.token_uuid {
            context.insert("token_uuid".into(), uuid.to_string().into());
        }
        context.insert(
            "scopes".into(),
            crate::tokens::scopes::join(&self.scopes).into(),
        );
        if self.auth == AuthKind::Pat {
            // Epoch seconds, or empty for a token that never expires.
            let expires = self.expires.map(|at| at.timestamp().to_string());
            context.insert("expires".into(), expires.unwrap_or_default().into());
            if let Some(until) = self.grace_until {
                // Epoch seconds; present only for a superseded secret in its grace.
                context.insert("grace_until".into(), until.timestamp().to_string().into());
            }
        }
        Value::Object(context)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No, repeated, or unparseable `Authorization` (including a Basic username other than `$app`).
    Credentials(CredentialError),
    /// Fails the secret's prefix, length, alphabet or checksum: no database read was made.
    Malformed,
    /// Well-formed, but no lookup record: never issued, or revoked.
    UnknownOrRevoked,
    Expired,
    /// An earlier secret of a rotated token, past its grace.
    Superseded,
    /// Authenticated, but holding none of the scopes the route key requires.
    InsufficientScope,
    /// DynamoDB failed; the caller may retry.
    StoreUnavailable,
    /// A JWT, but no OIDC issuer is configured.
    JwtNotAccepted,
    Jwt(JwtRejection),
}

impl DenyReason {
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::Credentials(CredentialError::Missing) => "no_credentials",
            DenyReason::Credentials(CredentialError::Repeated) => "repeated_authorization",
            DenyReason::Credentials(CredentialError::UnsupportedScheme) => "unsupported_scheme",
            DenyReason::Credentials(CredentialError::MalformedBasic) => "malformed_basic",
            DenyReason::Credentials(CredentialError::BasicUsername) => "basic_username_not_app",
            DenyReason::Malformed => "malformed_token",
            DenyReason::UnknownOrRevoked => "unknown_or_revoked",
            DenyReason::Expired => "expired",
            DenyReason::Superseded => "superseded",
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::StoreUnavailable => "store_unavailable",
            DenyReason::JwtNotAccepted => "jwt_not_configured",
            DenyReason::Jwt(rejection) => rejection.code(),
        }
    }
}

/// A refusal, with whatever is known of whose token it was (for the log only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub auth: Option<AuthKind>,
    pub user_id: Option<String>,
    pub token_uuid: Option<Uuid>,
}

impl Denial {
    fn new(reason: DenyReason) -> Denial {
        Denial {
            reason,
            auth: None,
            user_id: None,
            token_uuid: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Principal),
    Deny(Denial),
    /// No decision could be made (DynamoDB failed, or the issuer's key set could not be
    /// fetched): never an allow, and not a deny either.
    Fail(Denial),
}

impl Decision {
    fn deny(reason: DenyReason) -> Decision {
        let auth = match reason {
            DenyReason::Malformed | DenyReason::UnknownOrRevoked => Some(AuthKind::Pat),
            DenyReason::JwtNotAccepted | DenyReason::Jwt(_) => Some(AuthKind::Jwt),
            _ => None,
        };
        Decision::Deny(Denial {
            auth,
            ..Denial::new(reason)
        })
    }

    /// An allow becomes a deny (`insufficient_scope`) unless the caller holds one of `needed`.
    pub fn requiring(self, needed: &[String]) -> Decision {
        match self {
            Decision::Allow(p) if !crate::tokens::scopes::holds_any(&p.scopes, needed) => {
                Decision::Deny(Denial {
                    reason: DenyReason::InsufficientScope,
                    auth: Some(p.auth),
                    user_id: Some(p.user_id),
                    token_uuid: p.token_uuid,
                })
            }
            other => other,
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// Denials carry an empty context; API Gateway answers them with 403.
    pub fn response(&self) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
        match self {
            Decision::Allow(principal) => {
                response.is_authorized = true;
                response.context = principal.context();
            }
            Decision::Deny(_) | Decision::Fail(_) => {
                response.is_authorized = false;
                response.context = Value::Object(Map::new());
            }
        }
        response
    }

    /// The one line each decision logs: never the header, never the secret.
    pub fn log(&self, request_id: Option<&str>) {
        match self {
            Decision::Allow(p) => tracing::info!(
                decision = "allow",
                reason = "authenticated",
                auth = p.auth.as_str(),
                user_id = %p.user_id,
                token_uuid = p.token_uuid.map(|u| u.to_string()),
                request_id,
                "authorization decision"
            ),
            Decision::Fail(d) => tracing::warn!(
                decision = "error",
                reason = d.reason.code(),
                auth = d.auth.map(AuthKind::as_str),
                request_id,
                "authorization decision"
            ),
            Decision::Deny(d) => tracing::info!(
                decision = "deny",
                reason = d.reason.code(),
                auth = d.auth.map(AuthKind::as_str),
                user_id = d.user_id.as_deref(),
                token_uuid = d.token_uuid.map(|u| u.to_string()),
                request_id,
                "authorization decision"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
