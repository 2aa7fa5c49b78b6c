//! Rotation on DynamoDB Local: a new secret for the same token, the old one working for its
//! grace and then denied as `superseded`; revoke, delete and cleanup remove every secret;
//! concurrent rotations leave one current secret; reuse of a superseded secret revokes.

use crate::authorizer::{authorizer_request, claims, jwt_authorizer};
use crate::route_auth::with_authorization;
use crate::support::*;
use chrono::{Duration, Utc};
use harness::events::with_path_parameter;
use harness::oidc::{JwksServer, SigningKey};
use serde_json::{json, Value};
use shared::authorizer::{authorize, Decision};
use shared::quay::revoke_app_token;
use shared::rotation::{rotate_app_token, rotate_pat, rotate_self};
use shared::tokens::Secret;
use shared::unleash::delete_pat;
use uuid::Uuid;

struct Issued {
    uuid: Uuid,
    number: u64,
    secret: Secret,
}

async fn issue(env: &TestEnv, user: &str, scopes: &[&str]) -> Issued {
    let issued = issue_token(env, user, scopes, Duration::days(1)).await;
    Issued {
        uuid: issued.token.uuid,
        number: issued.token.number,
        secret: issued.secret,
    }
}

fn bearer(secret: &Secret) -> String {
    format!("Bearer {}", secret.expose())
}

/// What the in-process decision says of `secret` at `at`: `Ok(())` or the deny reason.
async fn decide(
    env: &TestEnv,
    secret: &Secret,
    at: chrono::DateTime<Utc>,
) -> Result<(), &'static str> {
    let request = authorizer_request(Some(&bearer(secret)));
    match env.app.decide(&request.headers, at).await {
        Decision::Allow(_) => Ok(()),
        Decision::Deny(d) | Decision::Fail(d) => Err(d.reason.code()),
    }
}

fn quay_rotate_event(uuid: &Uuid, body: Value) -> Value {
    let e = with_path_parameter(
        event("rotate-app-token.json"),
        "token_uuid",
        &uuid.to_string(),
    );
    with_body(as_user(e, "alice"), &body.to_string())
}

async fn rotate_quay(env: &TestEnv, uuid: &Uuid, body: Value) -> Answer {
    answer(rotate_app_token(&env.app, request(&quay_rotate_event(uuid, body))).await)
}

async fn rotate_itself(env: &TestEnv, secret: &Secret, body: &str) -> Answer {
    let e = with_body(
        with_authorization(event("rotate-self.json"), Some(&bearer(secret))),
        body,
    );
    answer(rotate_self(&env.app, request(&e)).await)
}

fn new_secret(answer: &Answer, pointer: &str) -> Secret {
    let text = answer
        .json()
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Secret::parse(&text).unwrap_or_else(|_| panic!("no secret at {pointer}: {}", answer.text))
}

fn lookup_records(
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> usize {
    items
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("SECRET#"))
        })
        .count()
}

#[tokio::test]
async fn a_rotation_keeps_the_token_and_the_old_secret_works_until_its_grace_ends() {
    let env = TestEnv::new().await;
    let old = issue(&env, "alice", &["repo:read", "user:admin"]).await;
    assert_eq!(
        decide(&env, &old.secret, Utc::now()).await,
        Ok(()),
        "first use records last used"
    );
    let before = env
        .app
        .store
        .get_token("alice", &old.uuid)
        .await
        .unwrap()
        .unwrap();
    let expiration = (Utc::now() + Duration::days(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();

    let rotated = rotate_quay(
        &env,
        &old.uuid,
        json!({"expiration": expiration, "grace": "1h"}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let token = rotated.json()["token"].clone();
    assert_eq!(token["uuid"], old.uuid.to_string());
    assert_eq!(token["title"], before.title);
    assert_eq!(token["scopes"], json!(["repo:read", "user:admin"]));
    assert_eq!(
        rfc2822(&token["created"]).timestamp(),
        before.created.timestamp()
    );
    assert_eq!(
        rfc2822(&token["expiration"])
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        expiration
    );
    assert!(
        token["last_accessed"].is_string(),
        "last used continues: {token}"
    );
    let new = new_secret(&rotated, "/token/token_code");
    assert_ne!(new.expose(), old.secret.expose());

    let now = Utc::now();
    assert_eq!(decide(&env, &new, now).await, Ok(()));
    assert_eq!(
        decide(&env, &old.secret, now).await,
        Ok(()),
        "the old secret works within its grace"
    );
    let after_grace = now + Duration::hours(1) + Duration::seconds(1);
    assert_eq!(
        decide(&env, &old.secret, after_grace).await,
        Err("superseded")
    );
    assert_eq!(decide(&env, &new, after_grace).await, Ok(()));
    let stored = env
        .app
        .store
        .get_token("alice", &old.uuid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.number, stored.last_used.is_some()),
        (before.number, true)
    );

    // Each secret still costs one GetItem to authorize.
    for secret in [&new, &old.secret] {
        env.requests.reset();
        assert!(
            authorize(&env.app, authorizer_request(Some(&bearer(secret))))
                .await
                .unwrap()
                .is_authorized
        );
        assert_eq!(
            env.requests.get("GetItem"),
            1,
            "{:?}",
            env.requests.snapshot()
        );
    }
}

#[tokio::test]
async fn with_no_grace_the_old_secret_is_denied_at_once_and_unleash_answers_its_schema() {
    let env = TestEnv::new().await;
    let old = issue(&env, "alice", &["user:admin"]).await;
    let e = with_path_parameter(event("rotate-pat.json"), "id", &old.number.to_string());
    let e = with_body(as_user(e, "alice"), "");
    let rotated = answer(rotate_pat(&env.app, request(&e)).await);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let mut fields: Vec<String> = rotated
        .json()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "createdAt",
            "description",
            "expiresAt",
            "id",
            "secret",
            "seenAt"
        ]
    );
    assert_eq!(rotated.json()["id"], old.number);
    let new = new_secret(&rotated, "/secret");
    assert_eq!(
        decide(&env, &old.secret, Utc::now()).await,
        Err("superseded")
    );
    assert_eq!(decide(&env, &new, Utc::now()).await, Ok(()));
    // No expiresAt: the default lifetime (90 days) from now.
    let expires =
        chrono::DateTime::parse_from_rfc3339(rotated.json()["expiresAt"].as_str().unwrap())
            .unwrap();
    let days = (expires.with_timezone(&Utc) - Utc::now()).num_hours();
    assert!((89 * 24..=90 * 24).contains(&days), "{days} hours");
}

#[tokio::test]
async fn revoke_delete_and_cleanup_remove_every_secret_of_a_rotated_token() {
    let env = TestEnv::new().await;
    // Revoke during the grace: both secrets die.
    let a = issue(&env, "alice", &["user:admin"]).await;
    let rotated = rotate_quay(&env, &a.uuid, json!({"grace": "7d"})).await;
    let a_new = new_secret(&rotated, "/token/token_code");
    let e = with_path_parameter(
        as_user(event("revoke-app-token.json"), "alice"),
        "token_uuid",
        &a.uuid.to_string(),
    );
    assert_eq!(
        answer(revoke_app_token(&env.app, request(&e)).await).status,
        204
    );
    for secret in [&a.secret, &a_new] {
        assert_eq!(
            decide(&env, secret, Utc::now()).await,
            Err("unknown_or_revoked")
        );
    }
    // Delete (Unleash) after several rotations.
    let b = issue(&env, "alice", &["user:admin"]).await;
    for _ in 0..3 {
        assert_eq!(
            rotate_quay(&env, &b.uuid, json!({"grace": "1d"}))
                .await
                .status,
            200
        );
    }
    let e = with_path_parameter(
        as_user(event("delete-pat.json"), "alice"),
        "id",
        &b.number.to_string(),
    );
    assert_eq!(answer(delete_pat(&env.app, request(&e)).await).status, 200);
    assert_eq!(
        lookup_records(&env.scan_all().await),
        0,
        "a lookup record outlived its token"
    );

    // Cleanup of an expired rotated token.
    let c = issue(&env, "alice", &["user:admin"]).await;
    assert_eq!(
        rotate_quay(&env, &c.uuid, json!({"grace": "1d", "expiration": 7200}))
            .await
            .status,
        200
    );
    assert_eq!(lookup_records(&env.scan_all().await), 2);
    crate::cleanup::wait_for_index(&env, 1).await;
    let limits = shared::store::SweepLimits {
        lookback_days: shared::cleanup::LOOKBACK_DAYS,
        stop: None,
    };
    let report = env
        .app
        .store
        .sweep_expired(Utc::now() + Duration::days(3), limits)
        .await
        .expect("sweep");
    assert_eq!(report.deleted, 1);
    assert_eq!(
        lookup_records(&env.scan_all().await),
        0,
        "cleanup left a superseded lookup record"
    );
}

#[tokio::test]
async fn concurrent_rotations_leave_exactly_one_current_secret() {
    let env = TestEnv::new().await;
    let token = issue(&env, "alice", &["user:admin"]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let app = env.app.clone();
        let event = quay_rotate_event(&token.uuid, json!({}));
        tasks.spawn(async move { answer(rotate_app_token(&app, request(&event)).await) });
    }
    let answers = tasks.join_all().await;
    let mut secrets = Vec::new();
    for got in &answers {
        match got.status {
            200 => secrets.push(new_secret(got, "/token/token_code")),
            409 => assert_eq!(got.json()["status"], 409),
            other => panic!("{other}: {}", got.text),
        }
    }
    assert!(!secrets.is_empty());
    let mut current = 0;
    for secret in secrets.iter().chain([&token.secret]) {
        if decide(&env, secret, Utc::now()).await.is_ok() {
            current += 1;
        }
    }
    assert_eq!(current, 1, "{} rotations answered 200", secrets.len());
    let records = lookup_records(&env.scan_all().await);
    assert_eq!(
        records,
        secrets.len() + 1,
        "each success leaves its record; each loser none"
    );
}

#[tokio::test]
async fn a_token_rotates_itself_and_reuse_of_a_superseded_secret_revokes_it() {
    let env = TestEnv::new().await;
    // A token without user:admin may rotate itself with self_rotate (it cannot widen its scopes).
    let ci = issue(&env, "alice", &["repo:read", "self_rotate"]).await;
    let rotated = rotate_itself(&env, &ci.secret, "").await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.json()["token"]["uuid"], ci.uuid.to_string());
    assert_eq!(
        rotated.json()["token"]["scopes"],
        json!(["repo:read", "self_rotate"])
    );
    let second = new_secret(&rotated, "/token/token_code");

    // With a grace, the previous secret still authenticates, but only the current one rotates
    // (a secret in its grace manages nothing: 401, and it is not reuse).
    let rotated = rotate_itself(&env, &second, r#"{"grace": "1h"}"#).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let third = new_secret(&rotated, "/token/token_code");
    let refused = rotate_itself(&env, &second, "").await;
    assert!(
        assert_quay_error(&refused, 401, "invalid_token").contains("superseded"),
        "{}",
        refused.text
    );
    assert_eq!(decide(&env, &second, Utc::now()).await, Ok(()));
    assert_eq!(decide(&env, &third, Utc::now()).await, Ok(()));

    // The first secret, superseded with no grace, comes back: someone holds a copy.
    let reused = rotate_itself(&env, &ci.secret, "").await;
    assert_eq!(reused.status, 401, "{}", reused.text);
    for secret in [&ci.secret, &second, &third] {
        assert_eq!(
            decide(&env, secret, Utc::now()).await,
            Err("unknown_or_revoked")
        );
    }
    assert!(env
        .app
        .store
        .get_token("alice", &ci.uuid)
        .await
        .unwrap()
        .is_none());
    assert_eq!(lookup_records(&env.scan_all().await), 0);
}

#[tokio::test]
async fn bad_rotations_are_4xx_in_the_dialect_and_change_nothing() {
    let env = TestEnv::new().await;
    let token = issue(&env, "alice", &["user:admin"]).await;
    let reader = issue(&env, "alice", &["repo:read"]).await;
    let before = env.scan_all().await.len();
    for (body, field) in [
        (json!({"grace": "soon"}), "grace"),
        (json!({"grace": "8d"}), "grace"),
        (json!({"grace": 3600}), "grace"),
        (json!({"grace": "5µ"}), "grace"),
        (json!({"expiration": "2001-01-01T00:00:00Z"}), "expiration"),
        (json!({"expiration": "tomorrow"}), "expiration"),
    ] {
        let got = rotate_quay(&env, &token.uuid, body.clone()).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text);
        assert!(got.text.contains(field), "{}", got.text);
    }
    let e = with_body(as_user(event("rotate-app-token.json"), "alice"), "[1]");
    assert_eq!(
        answer(rotate_app_token(&env.app, request(&e)).await).status,
        400
    );
    let e = with_path_parameter(
        as_user(event("rotate-app-token.json"), "alice"),
        "token_uuid",
        "not-a-uuid",
    );
    assert_eq!(
        answer(rotate_app_token(&env.app, request(&e)).await).status,
        404
    );
    assert_eq!(
        rotate_quay(&env, &Uuid::new_v4(), json!({})).await.status,
        404
    );
    let bob = with_path_parameter(
        as_user(event("rotate-app-token.json"), "bob"),
        "token_uuid",
        &token.uuid.to_string(),
    );
    assert_eq!(
        answer(rotate_app_token(&env.app, request(&bob)).await).status,
        404,
        "another user's token"
    );

    let pat = |id: &str, body: &str| {
        with_body(
            with_path_parameter(as_user(event("rotate-pat.json"), "alice"), "id", id),
            body,
        )
    };
    let got = answer(rotate_pat(&env.app, request(&pat("x", ""))).await);
    assert_eq!(
        (got.status, got.json()["name"].clone()),
        (400, json!("BadDataError"))
    );
    let got = answer(
        rotate_pat(
            &env.app,
            request(&pat(&token.number.to_string(), r#"{"grace": "-1h"}"#)),
        )
        .await,
    );
    assert_eq!(
        got.json()["details"][0]["path"],
        "/body/grace",
        "{}",
        got.text
    );
    let got = answer(rotate_pat(&env.app, request(&pat("999", ""))).await);
    assert_eq!(
        (got.status, got.json()["name"].clone()),
        (404, json!("NotFoundError"))
    );

    // Scopes: a repo:read token may not rotate others; a session has no self to rotate.
    let e = with_authorization(
        quay_rotate_event(&token.uuid, json!({})),
        Some(&bearer(&reader.secret)),
    );
    assert_eq!(
        answer(rotate_app_token(&env.app, request(&e)).await).status,
        403
    );
    let got = answer(
        rotate_self(
            &env.app,
            request(&with_authorization(event("rotate-self.json"), None)),
        )
        .await,
    );
    assert_eq!(got.status, 401, "no Authorization: {}", got.text);
    let key = SigningKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let with_sessions = jwt_authorizer(&env, &server.url, None);
    let session = format!("Bearer {}", key.sign(&claims("alice")));
    let e = with_authorization(event("rotate-self.json"), Some(&session));
    let got = answer(rotate_self(&with_sessions, request(&e)).await);
    assert_eq!(
        got.status, 400,
        "a session has no token to rotate: {}",
        got.text
    );
    assert_eq!(
        env.scan_all().await.len(),
        before,
        "a refused rotation changed the table"
    );
    assert_eq!(decide(&env, &token.secret, Utc::now()).await, Ok(()));
}
