//! The bundle's routes authenticate the `Authorization` header themselves, with the
//! authorizer's own decision (one invocation per request): PATs in their three forms and
//! sessions, failures in the route's dialect with RFC 6750 challenges, and the DynamoDB cost
//! (one GetItem, plus the throttled `last used` write, then the route's own work).

use crate::authorizer::{claims, closed_jwks_url, jwt_authorizer, with};
use crate::support::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use harness::events::with_path_parameter;
use harness::oidc::{JwksServer, SigningKey};
use serde_json::Value;
use shared::quay::{get_app_token, list_app_tokens, revoke_app_token};
use shared::tokens::Secret;
use shared::unleash::{delete_pat, list_pats};

/// A shipped event as API Gateway sends it to a route without a gateway authorizer.
pub(crate) fn with_authorization(event: Value, authorization: Option<&str>) -> Value {
    let mut event = without_caller(event);
    let headers = event["headers"].as_object_mut().expect("headers");
    headers.remove("authorization");
    if let Some(value) = authorization {
        headers.insert("authorization".into(), value.into());
    }
    event
}

fn get_event(uuid: &uuid::Uuid, authorization: Option<&str>) -> Value {
    with_authorization(
        with_path_parameter(event("get-app-token.json"), "token_uuid", &uuid.to_string()),
        authorization,
    )
}

fn list_event(authorization: Option<&str>) -> Value {
    with_authorization(event("list-pats.json"), authorization)
}

/// Both challenges of a 401, in one header: bearer (with `error="invalid_token"` once
/// credentials failed) and Basic, as every route takes `Basic base64("$app:<secret>")` too.
fn assert_challenges(answer: &Answer, invalid_token: bool) {
    let challenges: Vec<&str> = answer
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let [challenge] = challenges[..] else {
        panic!("one WWW-Authenticate header: {challenges:?}");
    };
    let bearer = challenge.find("Bearer realm=").expect(challenge);
    let basic = challenge.find(", Basic realm=").expect(challenge);
    assert!(bearer < basic, "{challenge}");
    assert_eq!(
        challenge[..basic].contains("error=\"invalid_token\""),
        invalid_token,
        "{challenge}"
    );
}

#[tokio::test]
async fn a_pat_in_each_form_authenticates_every_route_in_process() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    let token = seed_pat(&env, "alice", &secret).await;
    seed_pat(&env, "bob", &Secret::generate().unwrap()).await;
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("$app:{}", secret.expose()))
    );
    for authorization in [
        format!("Bearer {}", secret.expose()),
        secret.expose().to_owned(),
        basic,
    ] {
        let got = answer(
            get_app_token(
                &env.app,
                request(&get_event(&token.uuid, Some(&authorization))),
            )
            .await,
        );
        assert_eq!(got.status, 200, "{authorization:.8}: {}", got.text);
        assert_eq!(got.json()["token"]["uuid"], token.uuid.to_string());
        let listed = answer(list_pats(&env.app, request(&list_event(Some(&authorization)))).await);
        assert_eq!(listed.status, 200, "{}", listed.text);
        // Alice's token only: the user is the token's, never anything the client sent.
        assert_eq!(listed.json()["pats"].as_array().map(Vec::len), Some(1));
    }
    assert!(
        env.app
            .store
            .get_token("alice", &token.uuid)
            .await
            .unwrap()
            .unwrap()
            .last_used
            .is_some(),
        "the route records the token's use, as the authorizer does"
    );
}

#[tokio::test]
async fn authenticating_costs_one_get_item_and_the_throttled_last_used_write() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    seed_pat(&env, "alice", &secret).await;
    let bearer = format!("Bearer {}", secret.expose());
    env.requests.reset();
    let first = answer(list_pats(&env.app, request(&list_event(Some(&bearer)))).await);
    assert_eq!(first.status, 200, "{}", first.text);
    let counts = env.requests.snapshot();
    assert_eq!(
        (
            env.requests.get("GetItem"),
            env.requests.get("TransactWriteItems"),
            env.requests.get("Query")
        ),
        (1, 1, 1),
        "first use: the lookup, its last-used write, the list: {counts:?}"
    );
    env.requests.reset();
    let second = answer(list_pats(&env.app, request(&list_event(Some(&bearer)))).await);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(
        env.requests.total(),
        2,
        "within the throttle window: the lookup and the list: {:?}",
        env.requests.snapshot()
    );
}

#[tokio::test]
async fn no_or_bad_credentials_are_a_401_in_the_routes_dialect() {
    let env = TestEnv::new().await;
    let uuid = uuid::Uuid::new_v4();
    let forged = format!("Bearer {}", Secret::generate().unwrap().expose());
    let mut malformed = forged.clone();
    malformed.pop(); // breaks the checksum: refused without a read
    env.requests.reset();

    let missing = answer(get_app_token(&env.app, request(&get_event(&uuid, None))).await);
    assert_quay_error(&missing, 401, "invalid_token");
    assert_challenges(&missing, false);
    let missing = answer(list_pats(&env.app, request(&list_event(None))).await);
    assert_unleash_error(&missing, 401, "AuthenticationRequired");
    assert_challenges(&missing, false);

    for (bad, reads) in [
        (malformed.as_str(), 0),
        ("Basic ZG9ja2VyOnNlY3JldA==", 0), // docker:secret: only `$app` may log in
        ("Token abc", 0),
        (forged.as_str(), 1), // well-formed, never issued: one GetItem
    ] {
        env.requests.reset();
        let quay = answer(get_app_token(&env.app, request(&get_event(&uuid, Some(bad)))).await);
        let message = assert_quay_error(&quay, 401, "invalid_token");
        assert!(!message.contains(bad), "the credentials are never echoed");
        assert_challenges(&quay, true);
        let unleash = answer(list_pats(&env.app, request(&list_event(Some(bad)))).await);
        assert_unleash_error(&unleash, 401, "AuthenticationRequired");
        assert_challenges(&unleash, true);
        assert_eq!(env.requests.get("GetItem"), 2 * reads, "{bad:.12}");
        assert_eq!(env.requests.get("Query"), 0, "no route work for {bad:.12}");
    }
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_at_once() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    let token = seed_pat(&env, "alice", &secret).await;
    let bearer = format!("Bearer {}", secret.expose());
    // The token revokes itself through the Quay route, then is refused by both dialects.
    let revoke = with_authorization(
        with_path_parameter(
            event("revoke-app-token.json"),
            "token_uuid",
            &token.uuid.to_string(),
        ),
        Some(&bearer),
    );
    assert_eq!(
        answer(revoke_app_token(&env.app, request(&revoke)).await).status,
        204
    );
    let after = answer(list_pats(&env.app, request(&list_event(Some(&bearer)))).await);
    assert_unleash_error(&after, 401, "AuthenticationRequired");
    let again =
        answer(get_app_token(&env.app, request(&get_event(&token.uuid, Some(&bearer)))).await);
    assert_quay_error(&again, 401, "invalid_token");

    // An expired token (not yet swept) authenticates nothing, not even its own delete.
    let secret = Secret::generate().unwrap();
    let now = chrono::Utc::now();
    let expired = env
        .app
        .store
        .create_token(
            shared::store::NewToken {
                user_id: "alice".into(),
                uuid: uuid::Uuid::new_v4(),
                title: "old".into(),
                created: now - chrono::Duration::days(2),
                expires: Some(now - chrono::Duration::minutes(1)),
                scopes: None,
            },
            &secret.digest(),
            100,
            chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let delete = with_authorization(
        with_path_parameter(event("delete-pat.json"), "id", &expired.number.to_string()),
        Some(&format!("Bearer {}", secret.expose())),
    );
    assert_unleash_error(
        &answer(delete_pat(&env.app, request(&delete)).await),
        401,
        "AuthenticationRequired",
    );
}

#[tokio::test]
async fn sessions_authenticate_in_process_and_need_the_routes_scopes() {
    let env = TestEnv::new().await;
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let app = jwt_authorizer(&env, &server.url, None);
    let admin = format!("Bearer {}", key.sign(&claims("carol")));
    let reader = format!(
        "Bearer {}",
        key.sign(&with(
            claims("carol"),
            serde_json::json!({"scope": "openid"})
        ))
    );
    let list_quay = |authorization: &str| {
        request(&with_authorization(
            event("list-app-tokens.json"),
            Some(authorization),
        ))
    };

    let ok = answer(list_app_tokens(&app, list_quay(&admin)).await);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let scoped = answer(list_app_tokens(&app, list_quay(&reader)).await);
    assert_quay_error(&scoped, 403, "insufficient_scope");
    // Unleash's routes need the same scopes of sessions (and of tokens): user:read to list.
    let unleash = answer(list_pats(&app, request(&list_event(Some(&reader)))).await);
    assert_unleash_error(&unleash, 403, "NoAccessError");
    let user_read = format!(
        "Bearer {}",
        key.sign(&with(
            claims("carol"),
            serde_json::json!({"scope": "openid user:read"})
        ))
    );
    let unleash = answer(list_pats(&app, request(&list_event(Some(&user_read)))).await);
    assert_eq!(unleash.status, 200, "{}", unleash.text);

    let wrong_issuer = format!(
        "Bearer {}",
        key.sign(&with(
            claims("carol"),
            serde_json::json!({"iss": "https://elsewhere.test"})
        ))
    );
    assert_quay_error(
        &answer(list_app_tokens(&app, list_quay(&wrong_issuer)).await),
        401,
        "invalid_token",
    );
    // Without a configured issuer, sessions are refused, in the dialect.
    assert_unleash_error(
        &answer(list_pats(&env.app, request(&list_event(Some(&admin)))).await),
        401,
        "AuthenticationRequired",
    );
    assert_eq!(server.hits(), 1, "the key set is fetched once and cached");
}

/// An issuer whose key set cannot be fetched says nothing about a session: the routes answer
/// 503 with `Retry-After` in their dialect, as when DynamoDB is down, never a 401 (which signs
/// the settings page's user out). A JWT that is simply invalid is still a 401.
#[tokio::test]
async fn an_unreachable_key_set_is_a_503_with_retry_after_in_both_dialects() {
    let env = TestEnv::new().await;
    let key = SigningKey::es256("ec-1");
    let session = format!("Bearer {}", key.sign(&claims("carol")));
    let server = JwksServer::start(&[&key]).await;
    server.answer_status(500);
    let failing = jwt_authorizer(&env, &server.url, None);
    let closed = jwt_authorizer(&env, &closed_jwks_url(), None);
    let list_quay = |authorization: &str| {
        request(&with_authorization(
            event("list-app-tokens.json"),
            Some(authorization),
        ))
    };
    for (app, what) in [(&closed, "connection refused"), (&failing, "HTTP 500")] {
        let quay = answer(list_app_tokens(app, list_quay(&session)).await);
        assert_quay_error(&quay, 503, "service_unavailable");
        assert!(
            quay.header("retry-after").is_some(),
            "{what}: {:?}",
            quay.headers
        );
        assert!(quay.header("www-authenticate").is_none(), "{what}");
        let unleash = answer(list_pats(app, request(&list_event(Some(&session)))).await);
        assert_unleash_error(&unleash, 503, "ServiceUnavailableError");
        assert!(
            unleash.header("retry-after").is_some(),
            "{what}: {:?}",
            unleash.headers
        );
    }

    // The keys back: a session whose kid the issuer does not publish is a 401.
    server.answer_status(200);
    let working = jwt_authorizer(&env, &server.url, None);
    let unknown = format!(
        "Bearer {}",
        SigningKey::es256("nobody").sign(&claims("carol"))
    );
    let refused = answer(list_app_tokens(&working, list_quay(&unknown)).await);
    assert_quay_error(&refused, 401, "invalid_token");
    let refused = answer(list_pats(&working, request(&list_event(Some(&unknown)))).await);
    assert_unleash_error(&refused, 401, "AuthenticationRequired");
    let ok = answer(list_pats(&working, request(&list_event(Some(&session)))).await);
    assert_eq!(ok.status, 200, "{}", ok.text);
}

/// As GitHub's `GitHub-Authentication-Token-Expiration`: every answer to a PAT caller whose
/// token expires says when (RFC 2822), errors after authentication included; sessions, tokens
/// that never expire and unauthenticated callers get none.
#[tokio::test]
async fn answers_to_a_pat_carry_its_expiry() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    let token = seed_pat(&env, "dana", &secret).await;
    let expires = token.expires.expect("the seeded token expires");
    let bearer = format!("Bearer {}", secret.expose());
    let expiry_of = |answer: &Answer| {
        answer.header("token-expiration").map(|text| {
            chrono::DateTime::parse_from_rfc2822(text)
                .unwrap_or_else(|e| panic!("{text}: {e}"))
                .with_timezone(&chrono::Utc)
        })
    };
    let whole_seconds = chrono::DateTime::from_timestamp(expires.timestamp(), 0);

    let quay =
        answer(get_app_token(&env.app, request(&get_event(&token.uuid, Some(&bearer)))).await);
    assert_eq!(quay.status, 200, "{}", quay.text);
    assert_eq!(expiry_of(&quay), whole_seconds);
    let unleash = answer(list_pats(&env.app, request(&list_event(Some(&bearer)))).await);
    assert_eq!(unleash.status, 200, "{}", unleash.text);
    assert_eq!(expiry_of(&unleash), whole_seconds);
    // A 404 to an authenticated caller still says it.
    let missing = answer(
        get_app_token(
            &env.app,
            request(&get_event(&uuid::Uuid::new_v4(), Some(&bearer))),
        )
        .await,
    );
    assert_quay_error(&missing, 404, "not_found");
    assert_eq!(expiry_of(&missing), whole_seconds);

    // None without credentials, for a bad token, or for a token that never expires.
    let none = answer(list_pats(&env.app, request(&list_event(None))).await);
    assert_eq!((none.status, expiry_of(&none)), (401, None));
    let other = Secret::generate().unwrap();
    let bad = answer(list_pats(&env.app, request(&list_event(Some(other.expose())))).await);
    assert_eq!((bad.status, expiry_of(&bad)), (401, None));
    let forever = Secret::generate().unwrap();
    env.app
        .store
        .create_token(
            shared::store::NewToken {
                user_id: "dana".into(),
                uuid: uuid::Uuid::new_v4(),
                title: "forever".into(),
                created: chrono::Utc::now(),
                expires: None,
                scopes: None,
            },
            &forever.digest(),
            100,
            chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let never = answer(
        list_pats(
            &env.app,
            request(&list_event(Some(&format!("Bearer {}", forever.expose())))),
        )
        .await,
    );
    assert_eq!((never.status, expiry_of(&never)), (200, None));

    // Nor for a session.
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let app = jwt_authorizer(&env, &server.url, None);
    let session = format!("Bearer {}", key.sign(&claims("dana")));
    let listed = answer(list_pats(&app, request(&list_event(Some(&session)))).await);
    assert_eq!((listed.status, expiry_of(&listed)), (200, None));
}
