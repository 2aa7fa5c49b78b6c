//! The Lambda authorizer against DynamoDB Local, fed from `events/authorizer.json`: each header
//! form, each rejection, revocation under concurrency, the `last used` throttle, JWT sessions
//! against a JWKS served on loopback, and its context accepted by the token routes.

use crate::support::*;
use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use harness::oidc::{b64, JwksServer, SigningKey};
use serde_json::{json, Value};
use shared::authorizer::{
    authorize, authorize_at, Decision, DenyReason, JwtRejection, JwtVerifier, OidcSettings,
    OIDC_AUDIENCE, OIDC_ISSUER, OIDC_JWKS_URL,
};
use shared::quay::{get_app_token, list_app_tokens, revoke_app_token};
use shared::tokens::Secret;
use shared::App;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};
use tokio::task::JoinSet;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Requests and tokens

/// The shipped event with this `Authorization` (or none), as API Gateway sends it.
pub(crate) fn authorizer_request(
    authorization: Option<&str>,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut event = event("authorizer.json");
    match authorization {
        Some(value) => {
            event["headers"]["authorization"] = value.into();
            event["identitySource"] = json!([value]);
        }
        None => {
            event["headers"]
                .as_object_mut()
                .unwrap()
                .remove("authorization");
            event.as_object_mut().unwrap().remove("identitySource");
        }
    }
    serde_json::from_value(event).expect("an HTTP API authorizer request")
}

fn pat_authorizer(env: &TestEnv) -> App {
    App::new(env.app.store.clone(), env.app.config.clone(), None)
}

async fn issue(env: &TestEnv, user: &str, expires: Option<DateTime<Utc>>) -> (Uuid, Secret) {
    let issued = env
        .app
        .issue(
            user,
            "ci".into(),
            expires,
            vec!["user:admin".into()],
            shared::store::TitleRule::Shared,
            &shared::store::Audit::system(Utc::now()),
        )
        .await
        .expect("token issued");
    (issued.token.uuid, issued.secret)
}

async fn check(
    authorizer: &App,
    authorization: &str,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    authorize(authorizer, authorizer_request(Some(authorization)))
        .await
        .expect("a decision")
}

async fn reason(authorizer: &App, authorization: &str) -> &'static str {
    let request = authorizer_request(Some(authorization));
    match authorizer.decide(&request.headers, Utc::now()).await {
        Decision::Allow(p) => panic!("allowed {p:?}"),
        Decision::Deny(d) | Decision::Fail(d) => d.reason.code(),
    }
}

fn assert_denied(response: &ApiGatewayV2CustomAuthorizerSimpleResponse, what: &str) {
    assert!(!response.is_authorized, "{what} was allowed");
    assert_eq!(
        serde_json::to_value(response).unwrap(),
        json!({"isAuthorized": false, "context": {}}),
        "{what}"
    );
}

/// `expires`: epoch seconds, or empty for a token that never expires.
fn pat_context(user: &str, uuid: Uuid, expires: &str) -> Value {
    json!({"user_id": user, "auth": "pat", "token_uuid": uuid.to_string(), "scopes": "user:admin", "expires": expires})
}

fn basic(userpass: &str) -> String {
    format!("Basic {}", STANDARD.encode(userpass))
}

/// A route event whose `requestContext.authorizer.lambda` is what the authorizer answered.
fn route_event(
    name: &str,
    response: &ApiGatewayV2CustomAuthorizerSimpleResponse,
    token_uuid: Option<&Uuid>,
) -> Value {
    let mut event = event(name);
    event["requestContext"]["authorizer"] = json!({ "lambda": response.context });
    event["rawQueryString"] = "".into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    if let Some(uuid) = token_uuid {
        event["rawPath"] = format!("/api/v1/user/apptoken/{uuid}").into();
        event["pathParameters"] = json!({ "token_uuid": uuid.to_string() });
    }
    event
}

async fn revoke_through_the_route(env: &TestEnv, user: &str, uuid: &Uuid) {
    let mut event = as_user(event("revoke-app-token.json"), user);
    event["rawPath"] = format!("/api/v1/user/apptoken/{uuid}").into();
    event["pathParameters"] = json!({ "token_uuid": uuid.to_string() });
    let revoked = answer(revoke_app_token(&env.app, request(&event)).await);
    assert_eq!(revoked.status, 204, "{}", revoked.text);
}

// ---------------------------------------------------------------------------------------------
// Personal access tokens

#[tokio::test]
async fn each_header_form_allows_with_the_pat_context() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let (uuid, secret) = issue(&env, "alice", None).await;
    let text = secret.expose();
    env.requests.reset();

    for form in [
        format!("Bearer {text}"),
        format!("bearer {text}"),
        text.to_owned(),
        basic(&format!("$app:{text}")),
    ] {
        let response = check(&authorizer, &form).await;
        assert!(response.is_authorized, "{form:?} was denied");
        assert_eq!(response.context, pat_context("alice", uuid, ""));
    }
    assert_eq!(
        env.requests.get("GetItem"),
        4,
        "one consistent read per authorization"
    );
    let expires = shared::tokens::truncate_to_millis(Utc::now() + chrono::Duration::days(3));
    let (uuid, secret) = issue(&env, "alice", Some(expires)).await;
    let response = check(&authorizer, secret.expose()).await;
    let seconds = expires.timestamp().to_string();
    assert_eq!(response.context, pat_context("alice", uuid, &seconds));
}

#[tokio::test]
async fn the_shipped_event_reaches_the_store_and_is_denied_as_unknown() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let shipped = event("authorizer.json");
    let token = shipped["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ");
    assert!(
        Secret::parse(token).is_ok(),
        "the event's token is malformed"
    );

    let request: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(shipped).unwrap();
    assert_eq!(request.version.as_deref(), Some("2.0"));
    let response = authorize(&authorizer, request).await.expect("a decision");
    assert_denied(&response, "the shipped event's unknown token");
    assert_eq!(env.requests.get("GetItem"), 1);
    assert_eq!(env.requests.total(), 1);
}

#[tokio::test]
async fn malformed_credentials_are_denied_without_a_dynamodb_request() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let (_, secret) = issue(&env, "alice", None).await;
    let text = secret.expose();
    let flipped_last = {
        let mut t = text.to_owned();
        let last = if t.ends_with('z') { "y" } else { "z" };
        t.replace_range(t.len() - 1.., last);
        t
    };
    env.requests.reset();

    let cases = [
        (format!("Bearer {flipped_last}"), "malformed_token"),
        (flipped_last.clone(), "malformed_token"),
        (basic(&format!("$app:{flipped_last}")), "malformed_token"),
        (
            format!("Bearer {}", text.replacen("pat_", "ghp_", 1)),
            "malformed_token",
        ),
        (format!("Bearer {}", &text[..39]), "malformed_token"),
        (format!("Bearer {text}x"), "malformed_token"),
        ("Bearer".to_owned(), "malformed_token"),
        (basic(&format!("alice:{text}")), "basic_username_not_app"),
        (basic(&format!("token:{text}")), "basic_username_not_app"),
        (basic(text), "malformed_basic"),
        ("Basic !!!".to_owned(), "malformed_basic"),
        (format!("Token {text}"), "unsupported_scheme"),
        (format!("Bearer {text}.x.y"), "jwt_not_configured"),
    ];
    for (header, expected) in &cases {
        assert_denied(&check(&authorizer, header).await, header);
        assert_eq!(reason(&authorizer, header).await, *expected, "{header}");
    }
    assert_denied(
        &authorize(&authorizer, authorizer_request(None))
            .await
            .expect("a decision"),
        "no Authorization header",
    );
    assert_eq!(
        env.requests.total(),
        0,
        "malformed credentials reached DynamoDB: {:?}",
        env.requests.snapshot()
    );
}

#[tokio::test]
async fn unknown_expired_and_revoked_tokens_are_denied() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let now = Utc::now();
    let (_, expired) = issue(&env, "alice", Some(now - Duration::seconds(1))).await;
    let (revoked_uuid, revoked) = issue(&env, "alice", None).await;
    assert!(
        check(&authorizer, &format!("Bearer {}", revoked.expose()))
            .await
            .is_authorized
    );
    revoke_through_the_route(&env, "alice", &revoked_uuid).await;
    env.requests.reset();

    let unknown = Secret::generate().unwrap();
    for (secret, expected) in [
        (&unknown, "unknown_or_revoked"),
        (&expired, "expired"),
        (&revoked, "unknown_or_revoked"),
    ] {
        let header = format!("Bearer {}", secret.expose());
        assert_denied(&check(&authorizer, &header).await, expected);
        assert_eq!(reason(&authorizer, &header).await, expected);
    }
    assert_eq!(
        env.requests.get("TransactWriteItems"),
        0,
        "a denied token's last use was recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_authorization_succeeds_once_revoke_has_returned() {
    let env = TestEnv::new().await;
    let authorizer = Arc::new(pat_authorizer(&env));
    let (uuid, secret) = issue(&env, "alice", None).await;
    let header = format!("Bearer {}", secret.expose());

    // Authorizations race the revoke; each records when it started and what it got.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let mut racers = JoinSet::new();
    for _ in 0..4 {
        let (authorizer, header, stop, outcomes) = (
            authorizer.clone(),
            header.clone(),
            stop.clone(),
            outcomes.clone(),
        );
        racers.spawn(async move {
            for _ in 0..500 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let started = Instant::now();
                let allowed = check(&authorizer, &header).await.is_authorized;
                outcomes.lock().unwrap().push((started, allowed));
            }
        });
    }
    tokio::time::sleep(StdDuration::from_millis(150)).await;
    revoke_through_the_route(&env, "alice", &uuid).await;
    let revoked_at = Instant::now();

    let mut after = JoinSet::new();
    for _ in 0..100 {
        let (authorizer, header) = (authorizer.clone(), header.clone());
        after.spawn(async move { check(&authorizer, &header).await.is_authorized });
    }
    let mut denied_after = 0;
    while let Some(allowed) = after.join_next().await {
        assert!(!allowed.unwrap(), "a revoked token authenticated");
        denied_after += 1;
    }
    assert_eq!(denied_after, 100);

    stop.store(true, Ordering::SeqCst);
    while racers.join_next().await.is_some() {}
    let outcomes = outcomes.lock().unwrap();
    assert!(
        outcomes.iter().any(|(_, allowed)| *allowed),
        "the race never saw the token live"
    );
    let late_allowed = outcomes
        .iter()
        .filter(|(started, allowed)| *started > revoked_at && *allowed)
        .count();
    assert_eq!(late_allowed, 0, "allowed after the revoke returned");
}

#[tokio::test]
async fn fifty_uses_within_the_window_make_one_last_used_write() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let (uuid, secret) = issue(&env, "alice", None).await;
    let header = format!("Bearer {}", secret.expose());
    env.requests.reset();

    let now = Utc::now();
    for _ in 0..50 {
        let response = authorize_at(&authorizer, authorizer_request(Some(&header)), now)
            .await
            .expect("a decision");
        assert!(response.is_authorized);
    }
    assert_eq!(env.requests.get("TransactWriteItems"), 1);
    assert_eq!(env.requests.get("GetItem"), 50);
    let last_used = |env: &TestEnv| {
        let (store, uuid) = (env.app.store.clone(), uuid);
        async move {
            store
                .get_token("alice", &uuid)
                .await
                .unwrap()
                .unwrap()
                .last_used
        }
    };
    assert_eq!(
        last_used(&env).await.map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );

    // The next window writes again, once.
    let next = now + Duration::seconds(61);
    for _ in 0..5 {
        authorize_at(&authorizer, authorizer_request(Some(&header)), next)
            .await
            .expect("a decision");
    }
    assert_eq!(env.requests.get("TransactWriteItems"), 2);

    // A clock that ran ahead wrote a future time; a correct clock must still move it.
    let ahead = now + Duration::days(1);
    authorize_at(&authorizer, authorizer_request(Some(&header)), ahead)
        .await
        .expect("a decision");
    assert_eq!(env.requests.get("TransactWriteItems"), 3);
    let back = now + Duration::minutes(3);
    authorize_at(&authorizer, authorizer_request(Some(&header)), back)
        .await
        .expect("a decision");
    authorize_at(&authorizer, authorizer_request(Some(&header)), back)
        .await
        .expect("a decision");
    assert_eq!(env.requests.get("TransactWriteItems"), 4);
    assert_eq!(
        last_used(&env).await.map(|t| t.timestamp_millis()),
        Some(back.timestamp_millis()),
        "a future last-used froze the field"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_all_allow_when_the_last_used_condition_fails() {
    let env = TestEnv::new().await;
    let authorizer = Arc::new(pat_authorizer(&env));
    let (uuid, secret) = issue(&env, "alice", None).await;
    let header = format!("Bearer {}", secret.expose());
    let mut uses = JoinSet::new();
    for _ in 0..20 {
        let (authorizer, header) = (authorizer.clone(), header.clone());
        uses.spawn(async move { check(&authorizer, &header).await.is_authorized });
    }
    while let Some(allowed) = uses.join_next().await {
        assert!(allowed.unwrap(), "a lost last-used race denied the request");
    }
    let token = env
        .app
        .store
        .get_token("alice", &uuid)
        .await
        .unwrap()
        .unwrap();
    assert!(token.last_used.is_some());
}

#[tokio::test]
async fn the_authorizer_context_is_accepted_by_the_token_routes() {
    let env = TestEnv::new().await;
    let authorizer = pat_authorizer(&env);
    let (uuid, secret) = issue(&env, "alice", None).await;
    let (bobs_uuid, _) = issue(&env, "bob", None).await;

    let response = check(&authorizer, &format!("Bearer {}", secret.expose())).await;
    assert!(response.is_authorized);

    let listed = answer(
        list_app_tokens(
            &env.app,
            request(&route_event("list-app-tokens.json", &response, None)),
        )
        .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    let tokens = listed.json()["tokens"].clone();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert_eq!(tokens[0]["uuid"], uuid.to_string());

    let got = answer(
        get_app_token(
            &env.app,
            request(&route_event("get-app-token.json", &response, Some(&uuid))),
        )
        .await,
    );
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["token"]["uuid"], uuid.to_string());
    assert!(
        got.json()["token"]["last_accessed"].is_string(),
        "the use was not recorded"
    );

    let others = answer(
        get_app_token(
            &env.app,
            request(&route_event(
                "get-app-token.json",
                &response,
                Some(&bobs_uuid),
            )),
        )
        .await,
    );
    assert_eq!(others.status, 404, "{}", others.text);
}

// ---------------------------------------------------------------------------------------------
// JWT sessions: keys generated here, tokens signed here with aws-lc-rs directly (not with the
// library under test), the key set served on loopback.

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "token-service";

pub(crate) fn claims(sub: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now - 5, "exp": now + 300,
           "scope": "openid user:admin"})
}

pub(crate) fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// Settings read the way the function reads them at cold start.
fn oidc_settings(jwks_url: &str) -> OidcSettings {
    let vars = HashMap::from([
        (OIDC_ISSUER.to_owned(), ISSUER.to_owned()),
        (OIDC_AUDIENCE.to_owned(), AUDIENCE.to_owned()),
        (OIDC_JWKS_URL.to_owned(), jwks_url.to_owned()),
    ]);
    OidcSettings::from_map(&vars)
        .expect("valid OIDC settings")
        .expect("OIDC configured")
}

pub(crate) fn jwt_authorizer(env: &TestEnv, jwks_url: &str, refetch: Option<StdDuration>) -> App {
    let settings = oidc_settings(jwks_url);
    let verifier = match refetch {
        Some(interval) => JwtVerifier::with_refetch_interval(settings, interval),
        None => JwtVerifier::new(settings),
    }
    .expect("verifier");
    App::new(
        env.app.store.clone(),
        env.app.config.clone(),
        Some(verifier),
    )
}

async fn jwt_reason(authorizer: &App, token: &str) -> &'static str {
    let header = format!("Bearer {token}");
    assert_denied(&check(authorizer, &header).await, token);
    reason(authorizer, &header).await
}

#[tokio::test]
async fn jwts_from_the_issuer_allow_with_the_session_context() {
    let env = TestEnv::new().await;
    let (ec, rsa) = (SigningKey::es256("ec-1"), SigningKey::rs256("rsa-1"));
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let authorizer = jwt_authorizer(&env, &server.url, None);

    let response = check(
        &authorizer,
        &format!("Bearer {}", ec.sign(&claims("carol"))),
    )
    .await;
    assert!(response.is_authorized);
    assert_eq!(
        response.context,
        json!({"user_id": "carol", "auth": "jwt", "scopes": "openid user:admin"})
    );

    let okta_style = with(
        claims("dave"),
        json!({"scope": null, "scp": ["user:admin"], "aud": ["other", AUDIENCE]}),
    );
    let response = check(&authorizer, &format!("Bearer {}", rsa.sign(&okta_style))).await;
    assert!(response.is_authorized);
    assert_eq!(
        response.context,
        json!({"user_id": "dave", "auth": "jwt", "scopes": "user:admin"})
    );

    // An RFC 9068 access token's `typ`, in either spelling; or none at all.
    for typ in [json!("at+jwt"), json!("application/AT+JWT"), Value::Null] {
        let mut header = json!({"alg": "ES256", "kid": "ec-1"});
        if !typ.is_null() {
            header["typ"] = typ.clone();
        }
        let token = ec.sign_with_header(&header, &claims("carol"));
        let response = check(&authorizer, &format!("Bearer {token}")).await;
        assert!(response.is_authorized, "typ {typ}");
    }

    // Within the documented 30 s leeway.
    let just_expired = with(claims("erin"), json!({"exp": Utc::now().timestamp() - 10}));
    assert!(
        check(&authorizer, &format!("Bearer {}", ec.sign(&just_expired)))
            .await
            .is_authorized
    );

    assert_eq!(env.requests.total(), 0, "sessions need no DynamoDB read");
}

#[tokio::test]
async fn bad_jwts_are_denied() {
    let env = TestEnv::new().await;
    let (ec, rsa) = (SigningKey::es256("ec-1"), SigningKey::rs256("rsa-1"));
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let authorizer = jwt_authorizer(&env, &server.url, None);
    let now = Utc::now().timestamp();
    let good = claims("carol");

    let expired = ec.sign(&with(good.clone(), json!({"exp": now - 120})));
    let not_yet = ec.sign(&with(good.clone(), json!({"nbf": now + 300})));
    let wrong_issuer = ec.sign(&with(good.clone(), json!({"iss": "https://evil.test"})));
    let wrong_audience = ec.sign(&with(good.clone(), json!({"aud": "another-service"})));
    let no_exp = ec.sign(&with(good.clone(), json!({"exp": null})));
    let no_sub = ec.sign(&with(good.clone(), json!({"sub": null})));
    let empty_sub = ec.sign(&with(good.clone(), json!({"sub": ""})));
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "ec-1"}).to_string()),
        b64(good.to_string())
    );
    // HMAC keyed with the RSA key's public modulus: the classic algorithm-confusion forgery.
    let hs256 = {
        let message = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": "rsa-1"}).to_string()),
            b64(good.to_string())
        );
        let n = URL_SAFE_NO_PAD
            .decode(rsa.jwk()["n"].as_str().unwrap())
            .unwrap();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &n);
        format!(
            "{message}.{}",
            b64(aws_lc_rs::hmac::sign(&key, message.as_bytes()))
        )
    };
    let rs256_header_on_ec_key =
        rsa.sign_with_header(&json!({"alg": "RS256", "kid": "ec-1"}), &good);
    let tampered = {
        let token = ec.sign(&good);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(with(good.clone(), json!({"sub": "mallory"})).to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let impostor = SigningKey::es256("ec-1").sign(&good);
    let unknown_kid = SigningKey::es256("nobody").sign(&good);
    let no_kid = ec.sign_with_header(&json!({"alg": "ES256"}), &good);
    // Other kinds of JWT from the same issuer, validly signed: a DPoP proof, a logout token.
    let dpop = ec.sign_with_header(
        &json!({"alg": "ES256", "typ": "dpop+jwt", "kid": "ec-1"}),
        &good,
    );
    let logout = ec.sign_with_header(
        &json!({"alg": "ES256", "typ": "logout+jwt", "kid": "ec-1"}),
        &good,
    );

    let cases = [
        (expired, JwtRejection::Expired),
        (not_yet, JwtRejection::NotYetValid),
        (wrong_issuer, JwtRejection::WrongIssuer),
        (wrong_audience, JwtRejection::WrongAudience),
        (no_exp, JwtRejection::MissingClaim),
        (no_sub, JwtRejection::MissingClaim),
        (empty_sub, JwtRejection::BadSubject),
        (unsigned, JwtRejection::AlgorithmNotAllowed),
        (hs256, JwtRejection::AlgorithmNotAllowed),
        (rs256_header_on_ec_key, JwtRejection::AlgorithmNotAllowed),
        (tampered, JwtRejection::BadSignature),
        (impostor, JwtRejection::BadSignature),
        (unknown_kid, JwtRejection::UnknownKey),
        (no_kid, JwtRejection::MissingKeyId),
        (dpop, JwtRejection::TypeNotAllowed),
        (logout, JwtRejection::TypeNotAllowed),
        ("not.a.jwt".to_owned(), JwtRejection::Malformed),
    ];
    for (token, expected) in &cases {
        assert_eq!(
            jwt_reason(&authorizer, token).await,
            DenyReason::Jwt(*expected).code(),
            "{expected:?}"
        );
    }
    assert!(server.hits() <= 2, "fetched {} times", server.hits());
    assert_eq!(env.requests.total(), 0);
}

#[tokio::test]
async fn the_key_set_is_cached_and_refetched_once_for_a_new_kid() {
    let env = TestEnv::new().await;
    let (first, second) = (SigningKey::es256("2026-01"), SigningKey::rs256("2026-02"));
    let server = JwksServer::start(&[&first]).await;
    // No least interval between fetches, so only the cache keeps the count down.
    let authorizer = jwt_authorizer(&env, &server.url, Some(StdDuration::ZERO));
    let first_token = format!("Bearer {}", first.sign(&claims("carol")));
    let second_token = format!("Bearer {}", second.sign(&claims("carol")));

    assert_eq!(server.hits(), 0, "fetched before any session arrived");
    assert!(check(&authorizer, &first_token).await.is_authorized);
    assert_eq!(server.hits(), 1);
    for _ in 0..10 {
        assert!(check(&authorizer, &first_token).await.is_authorized);
    }
    assert_eq!(server.hits(), 1, "a cached key was fetched again");

    // The issuer rotates: the new kid triggers exactly one refetch.
    server.publish(&[&first, &second]);
    assert!(check(&authorizer, &second_token).await.is_authorized);
    assert_eq!(server.hits(), 2);
    for _ in 0..5 {
        assert!(check(&authorizer, &second_token).await.is_authorized);
        assert!(check(&authorizer, &first_token).await.is_authorized);
    }
    assert_eq!(server.hits(), 2);

    // Withdrawn keys stop working once a refetch has happened.
    server.publish(&[&second]);
    let third = SigningKey::es256("2026-03");
    let third_token = format!("Bearer {}", third.sign(&claims("carol")));
    assert_denied(
        &check(&authorizer, &third_token).await,
        "an unpublished kid",
    );
    assert_eq!(server.hits(), 3);
    assert!(!check(&authorizer, &first_token).await.is_authorized);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
    let env = TestEnv::new().await;
    let key = SigningKey::es256("real");
    let server = JwksServer::start(&[&key]).await;
    let authorizer = jwt_authorizer(&env, &server.url, None);

    for i in 0..20 {
        let bogus = SigningKey::es256(&format!("bogus-{i}"));
        assert_eq!(
            jwt_reason(&authorizer, &bogus.sign(&claims("mallory"))).await,
            "jwt_unknown_kid"
        );
    }
    assert_eq!(server.hits(), 1, "unknown kids hammered the issuer");
    // The one fetch also serves the real key.
    assert!(
        check(
            &authorizer,
            &format!("Bearer {}", key.sign(&claims("carol")))
        )
        .await
        .is_authorized
    );
    assert_eq!(server.hits(), 1);
}

/// A loopback URL nothing listens on: connection refused.
pub(crate) fn closed_jwks_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    url
}

/// The authorizer cannot decide on this session: its invocation fails (API Gateway answers
/// 500, which clients retry) with the reason `jwt_keys_unavailable`; never a deny.
async fn assert_undecided(authorizer: &App, token: &str, what: &str) {
    let header = format!("Bearer {token}");
    let failed = authorize(authorizer, authorizer_request(Some(&header))).await;
    let error = failed.expect_err(what);
    assert!(
        error.to_string().contains("jwt_keys_unavailable"),
        "{what}: {error}"
    );
    let request = authorizer_request(Some(&header));
    match authorizer.decide(&request.headers, Utc::now()).await {
        Decision::Fail(d) => assert_eq!(d.reason.code(), "jwt_keys_unavailable", "{what}"),
        other => panic!("{what}: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_key_set_fails_the_invocation_but_not_tokens() {
    let env = TestEnv::new().await;
    let key = SigningKey::es256("k");
    let session = key.sign(&claims("carol"));
    let closed = jwt_authorizer(&env, &closed_jwks_url(), None);
    assert_undecided(&closed, &session, "connection refused").await;
    let (_, secret) = issue(&env, "alice", None).await;
    assert!(
        check(&closed, &format!("Bearer {}", secret.expose()))
            .await
            .is_authorized,
        "PATs do not need the key set"
    );

    // A key set that answers 500, then a document over the size limit, then the keys.
    let server = JwksServer::start(&[&key]).await;
    let authorizer = jwt_authorizer(&env, &server.url, Some(StdDuration::ZERO));
    server.answer_status(500);
    assert_undecided(&authorizer, &session, "HTTP 500").await;
    server.answer_status(200);
    let padding = "x".repeat(300 * 1024);
    server.publish_json(&json!({"keys": [key.jwk()], "padding": padding}));
    assert_undecided(&authorizer, &session, "an oversize document").await;
    server.publish_json(&json!("<html>maintenance</html>"));
    assert_undecided(&authorizer, &session, "not a key set").await;

    // Once the keys are fetched, a JWT that is simply invalid is denied, not undecided.
    server.publish(&[&key]);
    assert!(
        check(&authorizer, &format!("Bearer {session}"))
            .await
            .is_authorized
    );
    let unknown = SigningKey::es256("nobody").sign(&claims("carol"));
    assert_eq!(jwt_reason(&authorizer, &unknown).await, "jwt_unknown_kid");
    let expired = key.sign(&with(claims("carol"), json!({"exp": 1})));
    assert_eq!(jwt_reason(&authorizer, &expired).await, "jwt_expired");
    // Down again: cached keys still serve; a kid it cannot look up is undecided.
    server.answer_status(503);
    assert!(
        check(&authorizer, &format!("Bearer {session}"))
            .await
            .is_authorized
    );
    assert_undecided(&authorizer, &unknown, "a new kid while the issuer is down").await;
}

#[tokio::test]
async fn a_session_context_is_accepted_by_the_routes_with_its_scopes() {
    let env = TestEnv::new().await;
    let key = SigningKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    let authorizer = jwt_authorizer(&env, &server.url, None);
    let (uuid, _) = issue(&env, "carol", None).await;

    let admin = check(
        &authorizer,
        &format!("Bearer {}", key.sign(&claims("carol"))),
    )
    .await;
    let listed = answer(
        list_app_tokens(
            &env.app,
            request(&route_event("list-app-tokens.json", &admin, None)),
        )
        .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["tokens"][0]["uuid"], uuid.to_string());

    let reader = with(claims("carol"), json!({"scope": "openid"}));
    let reader = check(&authorizer, &format!("Bearer {}", key.sign(&reader))).await;
    assert!(reader.is_authorized);
    let refused = answer(
        list_app_tokens(
            &env.app,
            request(&route_event("list-app-tokens.json", &reader, None)),
        )
        .await,
    );
    assert_quay_error(&refused, 403, "insufficient_scope");
}
