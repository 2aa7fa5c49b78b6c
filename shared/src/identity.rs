//! Who is calling. The bundle's routes authenticate the `Authorization` header themselves
//! (`authenticate`: the authorizer's own decision, in process, so one invocation per request).
//! An identity a gateway authorizer already put in API Gateway's request context is used as
//! is, never anything else the client sends: this project's Lambda authorizer context
//! (`requestContext.authorizer.lambda` = `{user_id, auth, token_uuid, scopes, expires}`) or API
//! Gateway's own JWT authorizer (`requestContext.authorizer.jwt.claims`).

use crate::app::App;
use crate::authorizer::credentials::CredentialError;
use crate::authorizer::{AuthKind, Decision, DenyReason, Principal};
use crate::store::{Actor, Audit};
use crate::tokens::scopes::{self, AnyOf, ScopeSettings};
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::Value;
use uuid::Uuid;

const MAX_USER_ID_BYTES: usize = 512;

/// Both kinds of caller are limited to their scopes: a token to the token's, a session to
/// the session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A personal access token: always one token, so its changes are audited as that token's.
    Pat { token_uuid: Uuid },
    /// A session (JWT).
    Jwt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub method: AuthMethod,
    pub scopes: Vec<String>,
    /// When the PAT expires (`None`: never, or a session); answered as `Token-Expiration`.
    pub expires: Option<DateTime<Utc>>,
    /// Set when the PAT's secret was superseded by a rotation and is in its grace: when the
    /// grace ends. Such a secret may call other routes, never manage tokens.
    pub grace_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No credentials at all.
    #[error("Requires authentication")]
    Missing,
    /// Credentials that do not authenticate: malformed, unknown, revoked or expired tokens,
    /// sessions that fail verification, unsupported schemes. Which one is logged, not told.
    #[error("Invalid credentials: the token is malformed, unknown, revoked or expired")]
    Rejected,
    /// Authenticated, but not as a user (e.g. an IAM principal): no tokens of its own.
    #[error("Personal tokens require an authenticated user")]
    NotAUser,
    /// The token store, or the OIDC issuer's key set, could not be read: no decision (the
    /// client may retry).
    #[error("The token store is temporarily unavailable; retry shortly")]
    Unavailable,
    /// A secret replaced by a rotation, still in its grace: it authenticates other routes
    /// until then, but never manages tokens (it could otherwise undo the rotation).
    #[error("This secret was superseded by a rotation: it keeps working on other routes until its grace ends, but cannot manage tokens; use the new secret")]
    Superseded,
    /// Authenticated, but holding none of the scopes the route needs.
    #[error("Requires one of the scopes {needed:?}")]
    InsufficientScope { needed: AnyOf },
}

/// [`authenticate`], then the route's scope rule ([`requiring`]): `scopes::READ_TOKENS`,
/// `MANAGE_TOKENS` or `ROTATE_SELF` on the token routes, in both dialects.
pub async fn authenticate_for(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
    needed: AnyOf,
) -> Result<Caller, IdentityError> {
    requiring(authenticate(app, request, now).await?, needed)
}

/// The caller, if it holds one of `needed`: the one place the routes' scopes are enforced.
pub fn requiring(caller: Caller, needed: AnyOf) -> Result<Caller, IdentityError> {
    if scopes::holds_any(&caller.scopes, needed) {
        Ok(caller)
    } else {
        Err(IdentityError::InsufficientScope { needed })
    }
}

/// The caller of one of this bundle's routes at `now`: the gateway's identity when a gateway
/// authorizer put one in the request context, else the `Authorization` header, decided in
/// process exactly as the authorizer function decides (one GetItem for a PAT, plus its
/// throttled `last used` write; none for a malformed one; a cached key set for a JWT). The
/// decision is logged as the authorizer logs it.
pub async fn authenticate(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Caller, IdentityError> {
    let context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(context),
        _ => None,
    };
    let from_gateway = context
        .and_then(|c| c.authorizer.as_ref())
        .is_some_and(|a| !a.fields.is_empty() || a.jwt.is_some() || a.iam.is_some());
    let caller = if from_gateway {
        Caller::from_request(request)
    } else {
        from_decision(decide(app, request, now).await)
    }?;
    if matches!(caller.method, AuthMethod::Pat { .. }) {
        crate::response::note_token_expiry(caller.expires);
    }
    refuse_superseded(caller)
}

/// Every route of this bundle manages tokens: a secret in its rotation grace is refused.
pub fn refuse_superseded(caller: Caller) -> Result<Caller, IdentityError> {
    match caller.grace_until {
        Some(_) => Err(IdentityError::Superseded),
        None => Ok(caller),
    }
}

/// The authorizer's decision on the request's `Authorization` at `now`, made in process and
/// logged as the authorizer logs it.
pub async fn decide(app: &App, request: &Request, now: DateTime<Utc>) -> Decision {
    let decision = app.decide(request.headers(), now).await;
    let request_id = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.request_id.as_deref(),
        _ => None,
    };
    decision.log(request_id);
    decision
}

/// The caller a decision allowed, or why there is none.
pub fn from_decision(decision: Decision) -> Result<Caller, IdentityError> {
    match decision {
        Decision::Allow(principal) => Caller::from_principal(principal),
        Decision::Deny(denial) => Err(match denial.reason {
            DenyReason::Credentials(CredentialError::Missing) => IdentityError::Missing,
            _ => IdentityError::Rejected,
        }),
        Decision::Fail(_) => Err(IdentityError::Unavailable),
    }
}

impl Caller {
    pub fn from_request(request: &Request) -> Result<Caller, IdentityError> {
        let authorizer = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref(),
            _ => None,
        }
        .ok_or(IdentityError::Missing)?;

        if !authorizer.fields.is_empty() {
            return from_lambda_context(&authorizer.fields);
        }
        if let Some(jwt) = &authorizer.jwt {
            let user_id = jwt
                .claims
                .get("sub")
                .map(String::as_str)
                .unwrap_or_default();
            let mut scopes: Vec<String> = ["scope", "scp"]
                .iter()
                .filter_map(|claim| jwt.claims.get(*claim))
                .flat_map(|s| split_scopes(s))
                .collect();
            scopes.extend(jwt.scopes.iter().flatten().cloned());
            return Ok(Caller {
                user_id: checked_user(user_id)?,
                method: AuthMethod::Jwt,
                scopes,
                expires: None,
                grace_until: None,
            });
        }
        if authorizer.iam.is_some() {
            return Err(IdentityError::NotAUser);
        }
        Err(IdentityError::Missing)
    }

    fn from_principal(principal: Principal) -> Result<Caller, IdentityError> {
        let user_id = checked_user(&principal.user_id).map_err(|_| IdentityError::Rejected)?;
        let method = match principal.auth {
            // The authorizer names every PAT's token; a principal without one is refused.
            AuthKind::Pat => AuthMethod::Pat {
                token_uuid: principal.token_uuid.ok_or(IdentityError::Rejected)?,
            },
            AuthKind::Jwt => AuthMethod::Jwt,
        };
        Ok(Caller {
            user_id,
            method,
            scopes: principal.scopes,
            expires: principal.expires,
            grace_until: principal.grace_until,
        })
    }

    /// The circumstances of a change this caller makes, for its audit entry: who (session, or
    /// which token), and the source IP and user agent API Gateway saw.
    pub fn audit(&self, request: &Request, now: DateTime<Utc>) -> Audit {
        let actor = match self.method {
            AuthMethod::Jwt => Actor::Session,
            AuthMethod::Pat { token_uuid } => Actor::Token(token_uuid),
        };
        request_audit(request, actor, now)
    }

    /// The scopes this caller may put on a token it creates (`ScopeSettings::grantable`).
    pub fn grantable(&self, settings: &ScopeSettings) -> Vec<String> {
        settings.grantable(&self.scopes, self.method == AuthMethod::Jwt)
    }
}

fn from_lambda_context(
    fields: &std::collections::HashMap<String, Value>,
) -> Result<Caller, IdentityError> {
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    let user_id = checked_user(text("user_id").unwrap_or_default())?;
    let scopes = split_scopes(text("scopes").unwrap_or_default());
    let method = match text("auth") {
        // Without its token's uuid a PAT's changes could not be audited as that token's.
        Some("pat") => AuthMethod::Pat {
            token_uuid: text("token_uuid")
                .and_then(|u| Uuid::parse_str(u).ok())
                .ok_or(IdentityError::Rejected)?,
        },
        Some("jwt") => AuthMethod::Jwt,
        _ => return Err(IdentityError::NotAUser),
    };
    let epoch = |name: &str| {
        text(name)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    // A `grace_until` that is present but unreadable still marks a superseded secret.
    let grace_until = match text("grace_until") {
        None | Some("") => None,
        Some(_) => Some(epoch("grace_until").unwrap_or(DateTime::<Utc>::MIN_UTC)),
    };
    Ok(Caller {
        user_id,
        method,
        scopes,
        expires: epoch("expires"),
        grace_until,
    })
}

/// `actor`'s change in `request`, with its source IP and user agent.
pub fn request_audit(request: &Request, actor: Actor, now: DateTime<Utc>) -> Audit {
    let http = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(&context.http),
        _ => None,
    };
    let bounded = |text: &str| -> String { text.chars().take(MAX_USER_AGENT_CHARS).collect() };
    Audit {
        actor,
        ip: http.and_then(|h| h.source_ip.clone()),
        user_agent: http.and_then(|h| h.user_agent.as_deref()).map(bounded),
        at: now,
        leak: None,
    }
}

/// A log entry keeps at most this much of a user agent.
const MAX_USER_AGENT_CHARS: usize = 256;

fn checked_user(user_id: &str) -> Result<String, IdentityError> {
    if user_id.is_empty()
        || user_id.len() > MAX_USER_ID_BYTES
        || user_id.chars().any(char::is_control)
    {
        return Err(IdentityError::Missing);
    }
    Ok(user_id.to_owned())
}

fn split_scopes(text: &str) -> Vec<String> {
    scopes::split(text).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request_with_authorizer(authorizer: Value) -> Request {
        let event = json!({
            "version": "2.0", "routeKey": "GET /x", "rawPath": "/x", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "h", "domainPrefix": "h",
                "http": {"method": "GET", "path": "/x", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "GET /x", "stage": "$default", "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 0,
                "authorizer": authorizer
            }
        });
        lambda_http::request::from_str(&event.to_string()).expect("valid event")
    }

    #[test]
    fn reads_this_projects_authorizer_context() {
        let uuid = Uuid::new_v4();
        let req = request_with_authorizer(json!({"lambda": {
            "user_id": "alice", "auth": "pat", "token_uuid": uuid.to_string(), "scopes": "repo:read"
        }}));
        let caller = Caller::from_request(&req).unwrap();
        assert_eq!(caller.user_id, "alice");
        assert_eq!(caller.method, AuthMethod::Pat { token_uuid: uuid });
        assert!(scopes::holds_any(&caller.scopes, &[scopes::REPO_READ]));
        assert!(!scopes::holds_any(&caller.scopes, &[scopes::USER_ADMIN]));
    }

    #[test]
    fn reads_jwt_claims_and_scopes() {
        let req = request_with_authorizer(
            json!({"jwt": {"claims": {"sub": "bob", "scope": "openid user:admin"}, "scopes": null}}),
        );
        let caller = Caller::from_request(&req).unwrap();
        assert_eq!(caller.user_id, "bob");
        assert_eq!(caller.method, AuthMethod::Jwt);
        assert!(scopes::holds_any(&caller.scopes, &[scopes::USER_ADMIN]));

        let req =
            request_with_authorizer(json!({"jwt": {"claims": {"sub": "bob", "scope": "openid"}}}));
        assert!(!scopes::holds_any(
            &Caller::from_request(&req).unwrap().scopes,
            &[scopes::USER_ADMIN]
        ));
    }

    #[test]
    fn a_comma_does_not_separate_scopes() {
        // RFC 6749: "profile,user:admin" is one scope token, so not user:admin.
        for authorizer in [
            json!({"lambda": {"user_id": "eve", "auth": "jwt", "scopes": "profile,user:admin"}}),
            json!({"jwt": {"claims": {"sub": "eve", "scope": "profile,user:admin"}}}),
        ] {
            let caller = Caller::from_request(&request_with_authorizer(authorizer)).unwrap();
            assert_eq!(caller.scopes, ["profile,user:admin"]);
            assert!(!scopes::holds_any(&caller.scopes, &[scopes::USER_ADMIN]));
        }
    }

    #[test]
    fn no_or_empty_identity_is_missing() {
        assert_eq!(
            Caller::from_request(&Request::default()),
            Err(IdentityError::Missing)
        );
        let req = request_with_authorizer(json!({"lambda": {"user_id": "", "auth": "pat"}}));
        assert_eq!(Caller::from_request(&req), Err(IdentityError::Missing));
        let req = request_with_authorizer(json!({"jwt": {"claims": {"iss": "x"}}}));
        assert_eq!(Caller::from_request(&req), Err(IdentityError::Missing));
    }

    #[test]
    fn a_pat_without_its_token_uuid_does_not_authenticate() {
        // Its changes would be audited as this service's own (`Actor::System`).
        for context in [
            json!({"user_id": "alice", "auth": "pat", "scopes": "user:admin"}),
            json!({"user_id": "alice", "auth": "pat", "token_uuid": "", "scopes": "user:admin"}),
            json!({"user_id": "alice", "auth": "pat", "token_uuid": "not-a-uuid", "scopes": "user:admin"}),
            json!({"user_id": "alice", "auth": "pat", "token_uuid": 7, "scopes": "user:admin"}),
        ] {
            let req = request_with_authorizer(json!({ "lambda": context }));
            let refused = Caller::from_request(&req);
            assert_eq!(refused, Err(IdentityError::Rejected), "{context}");
        }
        // Answered 401 in either dialect, as any credentials that do not authenticate.
        let error = crate::error::ApiError::from(IdentityError::Rejected);
        assert_eq!(crate::error::quay_response(&error, None).status(), 401);
        assert_eq!(crate::error::unleash_response(&error).status(), 401);
        // Nor a decision's principal without one (the authorizer never makes such a principal).
        let principal = Principal {
            user_id: "alice".into(),
            auth: AuthKind::Pat,
            token_uuid: None,
            scopes: vec!["user:admin".into()],
            expires: None,
            grace_until: None,
        };
        assert_eq!(
            from_decision(Decision::Allow(principal)),
            Err(IdentityError::Rejected)
        );
    }

    #[test]
    fn unknown_auth_kind_is_not_a_user() {
        let req = request_with_authorizer(json!({"lambda": {"user_id": "svc", "auth": "apikey"}}));
        assert_eq!(Caller::from_request(&req), Err(IdentityError::NotAUser));
    }
}
