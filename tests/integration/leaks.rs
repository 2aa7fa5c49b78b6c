//! Leaked tokens against DynamoDB Local and moto: GitHub's signed reports (a test key pair
//! stands in for GitHub's, its key document served on loopback) and public revocation by value
//! revoke exactly the live tokens reported, log them, tell their owners, and reveal nothing.

use crate::support::*;
use chrono::{Duration, Utc};
use harness::events::{event, with_body};
use harness::github::GithubSigner;
use harness::moto::{EventQueue, Moto};
use harness::oidc::JwksServer;
use serde_json::{json, Value};
use shared::events::EventBus;
use shared::leaks::github::{GithubKeys, KEY_ID_HEADER, SIGNATURE_HEADER};
use shared::leaks::{revoke_credentials, DETAIL_TYPE};
use shared::store::{Audit, NewToken};
use shared::tokens::{Secret, SecretDigest, Token};
use std::sync::atomic::{AtomicU32, Ordering};
use uuid::Uuid;

static BUSES: AtomicU32 = AtomicU32::new(0);

/// A bus of this test's own, delivering to a queue the test reads.
async fn bus() -> (EventBus, EventQueue) {
    let n = BUSES.fetch_add(1, Ordering::SeqCst);
    let name = format!("leaks-{}-{n}", std::process::id());
    let moto = Moto::shared();
    let queue = moto
        .bus_to_queue(&name, &format!("{name}-queue"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (EventBus::new(moto.eventbridge(), name), queue)
}

/// GitHub's keys as the function fetches them: from a loopback server publishing `signer`.
async fn github(signer: &GithubSigner) -> (JwksServer, GithubKeys) {
    let server = JwksServer::serving(&GithubSigner::document(&[signer])).await;
    let keys = GithubKeys::new(&server.url, std::time::Duration::ZERO).expect("loopback URL");
    (server, keys)
}

/// A token of `user` with this secret, expiring at `expires_in` from now.
async fn seed(env: &TestEnv, user: &str, secret: &Secret, expires_in: Duration) -> Token {
    let now = Utc::now();
    let new = NewToken {
        user_id: user.into(),
        uuid: Uuid::new_v4(),
        title: format!("token of {user}"),
        created: shared::tokens::truncate_to_millis(now - Duration::days(2)),
        expires: Some(shared::tokens::truncate_to_millis(now + expires_in)),
        scopes: None,
    };
    env.app
        .store
        .create_token(new, &secret.digest(), 1_000, Duration::days(1))
        .await
        .expect("seeded token")
}

fn report_body(tokens: &[&str]) -> String {
    let matches: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(at, token)| {
            json!({"token": token, "type": "token_service_pat",
                   "url": format!("https://github.com/octo/repo/blob/main/file{at}.env"), "source": "content"})
        })
        .collect();
    Value::Array(matches).to_string()
}

fn report(body: &str, key_id: Option<&str>, signature: Option<&str>) -> lambda_http::Request {
    let mut event = with_body(event("secret-scanning-github.json"), body);
    let headers = event["headers"].as_object_mut().expect("headers");
    headers.remove(KEY_ID_HEADER);
    headers.remove(SIGNATURE_HEADER);
    if let Some(id) = key_id {
        headers.insert(KEY_ID_HEADER.into(), id.into());
    }
    if let Some(signature) = signature {
        headers.insert(SIGNATURE_HEADER.into(), signature.into());
    }
    request(&event)
}

async fn send(
    env: &TestEnv,
    bus: &EventBus,
    keys: &GithubKeys,
    request: lambda_http::Request,
) -> Answer {
    answer(shared::leaks::github::report(&env.app, bus, keys, request).await)
}

/// A secret with a valid shape whose CRC does not match.
fn crc_invalid(secret: &Secret) -> String {
    let mut text = secret.expose().to_owned();
    let last = text.pop().expect("non-empty");
    text.push(if last == 'A' { 'B' } else { 'A' });
    assert!(Secret::parse(&text).is_err());
    text
}

#[tokio::test]
async fn a_signed_report_revokes_the_live_token_and_labels_every_match() {
    let env = TestEnv::new().await;
    let (bus, queue) = bus().await;
    let signer = GithubSigner::generate("key-1");
    let (_server, keys) = github(&signer).await;

    let live = Secret::generate().unwrap();
    let live_token = seed(&env, "alice", &live, Duration::days(30)).await;
    let expired = Secret::generate().unwrap();
    seed(&env, "alice", &expired, -Duration::hours(1)).await;
    let revoked = Secret::generate().unwrap();
    let revoked_token = seed(&env, "alice", &revoked, Duration::days(30)).await;
    let audit = Audit::system(Utc::now());
    env.app
        .store
        .revoke("alice", &revoked_token.uuid, &audit)
        .await
        .unwrap();
    let other = Secret::generate().unwrap();
    seed(&env, "bob", &other, Duration::days(30)).await;
    let random = Secret::generate().unwrap();
    let mangled = crc_invalid(&other);
    let before = env.scan_all().await;

    let tokens = [
        live.expose(),
        expired.expose(),
        revoked.expose(),
        random.expose(),
        mangled.as_str(),
        "not a token at all",
        live.expose(),
    ];
    let body = report_body(&tokens);
    let signature = signer.sign(body.as_bytes());
    let answer = send(
        &env,
        &bus,
        &keys,
        report(&body, Some("key-1"), Some(&signature)),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    for token in &tokens {
        assert!(!answer.text.contains(token), "the answer shows a token");
    }
    let labels: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(at, token)| {
            let live = at == 0 || at == 6;
            json!({"token_hash": SecretDigest::of_text(token).to_hex(), "token_type": "token_service_pat",
                   "label": if live { "true_positive" } else { "false_positive" }})
        })
        .collect();
    assert_eq!(answer.json(), Value::Array(labels));

    // The live token no longer authenticates; everything else is as it was.
    let presented = |secret: &Secret| {
        let mut headers = lambda_http::http::HeaderMap::new();
        let value = format!("Bearer {}", secret.expose()).parse().unwrap();
        headers.insert("authorization", value);
        headers
    };
    let decision = env.app.decide(&presented(&live), Utc::now()).await;
    assert!(
        matches!(decision, shared::authorizer::Decision::Deny(_)),
        "{decision:?}"
    );
    let decision = env.app.decide(&presented(&other), Utc::now()).await;
    assert!(
        matches!(decision, shared::authorizer::Decision::Allow(_)),
        "{decision:?}"
    );
    assert!(env
        .app
        .store
        .find_secret(&live.digest())
        .await
        .unwrap()
        .is_none());
    assert!(env
        .app
        .store
        .get_token("alice", &live_token.uuid)
        .await
        .unwrap()
        .is_none());
    let after = env.scan_all().await;
    assert_eq!(
        before.len() - after.len(),
        2,
        "exactly the token and its lookup record are gone"
    );

    // Logged with where it was found; its owner told once, without the secret.
    let page = env
        .app
        .store
        .log_page(
            "alice",
            Utc::now() - Duration::hours(1),
            Utc::now() + Duration::minutes(1),
            None,
            50,
        )
        .await
        .unwrap();
    let leaks: Vec<_> = page
        .entries
        .iter()
        .filter(|e| e.kind == "leak_revoke_app_specific_token")
        .collect();
    assert_eq!(leaks.len(), 1, "{:?}", page.entries);
    assert_eq!(leaks[0].token_uuid, live_token.uuid.to_string());
    assert_eq!(
        leaks[0].url.as_deref(),
        Some("https://github.com/octo/repo/blob/main/file0.env")
    );
    assert_eq!(leaks[0].source.as_deref(), Some("content"));
    assert_eq!(leaks[0].actor, "system");
    let delivered = queue.drain().await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["detail-type"], DETAIL_TYPE);
    let detail = &delivered[0]["detail"];
    assert_eq!(detail["user_id"], "alice");
    assert_eq!(detail["uuid"], live_token.uuid.to_string());
    assert_eq!(detail["title"], "token of alice");
    assert_eq!(
        detail["url"],
        "https://github.com/octo/repo/blob/main/file0.env"
    );
    assert_eq!(detail["source"], "content");
    assert_eq!(detail["reported_by"], "github_secret_scanning");
    assert!(!delivered[0].to_string().contains(live.expose()));

    // The same report again: nothing is live any more.
    let again = send(
        &env,
        &bus,
        &keys,
        report(&body, Some("key-1"), Some(&signature)),
    )
    .await;
    assert!(again
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["label"] == "false_positive"));
    assert!(queue.drain().await.is_empty());
}

#[tokio::test]
async fn a_report_not_signed_by_github_is_refused_and_revokes_nothing() {
    let env = TestEnv::new().await;
    let (bus, queue) = bus().await;
    let signer = GithubSigner::generate("key-1");
    let impostor = GithubSigner::generate("key-1");
    let (server, keys) = github(&signer).await;
    let live = Secret::generate().unwrap();
    seed(&env, "alice", &live, Duration::days(30)).await;
    let before = env.scan_everything().await;

    let body = report_body(&[live.expose()]);
    let signature = signer.sign(body.as_bytes());
    let tampered = body.replace("file0", "file1");
    let cases: Vec<(&str, lambda_http::Request)> = vec![
        (
            "tampered body",
            report(&tampered, Some("key-1"), Some(&signature)),
        ),
        (
            "unknown key id",
            report(&body, Some("key-2"), Some(&signature)),
        ),
        (
            "another key's signature",
            report(&body, Some("key-1"), Some(&impostor.sign(body.as_bytes()))),
        ),
        ("no signature", report(&body, Some("key-1"), None)),
        ("no key id", report(&body, None, Some(&signature))),
        (
            "signature not base64",
            report(&body, Some("key-1"), Some("not base64!")),
        ),
        ("empty signature", report(&body, Some("key-1"), Some(""))),
        (
            "oversized signature",
            report(&body, Some("key-1"), Some(&"A".repeat(4096))),
        ),
    ];
    for (case, request) in cases {
        let answer = send(&env, &bus, &keys, request).await;
        assert_quay_error(&answer, 401, "invalid_token");
        assert!(!answer.text.contains(live.expose()), "{case}");
    }
    assert_eq!(env.scan_everything().await, before, "nothing changed");
    assert!(queue.drain().await.is_empty());
    // Unknown key ids refetch the document (the interval is zero here), and only that.
    assert!(server.hits() >= 2, "{}", server.hits());

    // Signed, but not GitHub's format: 400. Another method: 405.
    for bad in ["{}", "[1, 2]", "[{\"type\": \"x\"}]", "not json", ""] {
        let signature = signer.sign(bad.as_bytes());
        let answer = send(
            &env,
            &bus,
            &keys,
            report(bad, Some("key-1"), Some(&signature)),
        )
        .await;
        assert_quay_error(&answer, 400, "invalid_request");
    }
    let mut get = event("secret-scanning-github.json");
    get["requestContext"]["http"]["method"] = "GET".into();
    let answer = send(&env, &bus, &keys, request(&get)).await;
    assert_eq!(answer.status, 405);
    assert_eq!(env.scan_everything().await, before, "nothing changed");
}

#[tokio::test]
async fn unknown_key_ids_refetch_at_most_once_a_minute_and_rotated_keys_are_found() {
    let env = TestEnv::new().await;
    let (bus, _queue) = bus().await;
    let old = GithubSigner::generate("old");
    let server = JwksServer::serving(&GithubSigner::document(&[&old])).await;
    let keys = GithubKeys::new(&server.url, shared::keys::DEFAULT_REFETCH_INTERVAL).unwrap();
    let body = report_body(&["pat_x"]);
    for id in ["made-up-1", "made-up-2", "made-up-3"] {
        let signature = old.sign(body.as_bytes());
        let answer = send(&env, &bus, &keys, report(&body, Some(id), Some(&signature))).await;
        assert_eq!(answer.status, 401);
    }
    assert_eq!(
        server.hits(),
        1,
        "one fetch for three unknown ids within a minute"
    );
    let answer = send(
        &env,
        &bus,
        &keys,
        report(&body, Some("old"), Some(&old.sign(body.as_bytes()))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(server.hits(), 1, "a known key is served from the cache");

    // GitHub rotates: with the interval elapsed (zero here), the new key is fetched and used.
    let new = GithubSigner::generate("new");
    server.publish_json(&GithubSigner::document(&[&new, &old]));
    let keys = GithubKeys::new(&server.url, std::time::Duration::ZERO).unwrap();
    let answer = send(
        &env,
        &bus,
        &keys,
        report(&body, Some("new"), Some(&new.sign(body.as_bytes()))),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn revoking_1000_mixed_strings_by_value_revokes_exactly_the_live_ones() {
    let env = TestEnv::new().await;
    let (bus, queue) = bus().await;
    let mut live = Vec::new();
    for n in 0..20 {
        let secret = Secret::generate().unwrap();
        let token = seed(&env, &format!("user{}", n % 4), &secret, Duration::days(30)).await;
        live.push((secret, token));
    }
    let expired = Secret::generate().unwrap();
    seed(&env, "user0", &expired, -Duration::hours(1)).await;
    let kept = Secret::generate().unwrap();
    let kept_token = seed(&env, "user1", &kept, Duration::days(30)).await;

    let mut credentials: Vec<Value> = Vec::new();
    for (secret, _) in &live {
        credentials.push(secret.expose().into());
    }
    credentials.push(expired.expose().into());
    credentials.push(crc_invalid(&kept).into());
    credentials.push(json!(42));
    credentials.push(json!({"token": kept.expose()}));
    credentials.push(Value::Null);
    credentials.push("x".repeat(300).into());
    credentials.push(live[0].0.expose().into());
    while credentials.len() < 1000 {
        credentials.push(Secret::generate().unwrap().expose().into());
    }
    let body = json!({ "credentials": credentials }).to_string();
    let response = revoke_credentials(
        &env.app,
        &bus,
        request(&with_body(event("revoke-credentials.json"), &body)),
    )
    .await;
    let got = answer(response);
    assert_eq!((got.status, got.text.as_str()), (202, ""));

    for (secret, token) in &live {
        assert!(env
            .app
            .store
            .find_secret(&secret.digest())
            .await
            .unwrap()
            .is_none());
        assert!(env
            .app
            .store
            .get_token(&token.user_id, &token.uuid)
            .await
            .unwrap()
            .is_none());
    }
    assert!(env
        .app
        .store
        .find_secret(&kept.digest())
        .await
        .unwrap()
        .is_some());
    assert!(env
        .app
        .store
        .get_token("user1", &kept_token.uuid)
        .await
        .unwrap()
        .is_some());
    assert!(
        env.app
            .store
            .find_secret(&expired.digest())
            .await
            .unwrap()
            .is_some(),
        "an expired token is cleanup's"
    );
    let delivered = queue.drain().await;
    assert_eq!(delivered.len(), 20, "one event per revoked token");
    assert!(delivered
        .iter()
        .all(|e| e["detail"]["reported_by"] == "public_revocation"));

    // Nothing live named: still 202, nothing changed.
    let before = env.scan_everything().await;
    let body = json!({"credentials": [live[1].0.expose(), "pat_nope"]}).to_string();
    let got = answer(
        revoke_credentials(
            &env.app,
            &bus,
            request(&with_body(event("revoke-credentials.json"), &body)),
        )
        .await,
    );
    assert_eq!(got.status, 202);
    assert_eq!(env.scan_everything().await, before);
}

#[tokio::test]
async fn a_malformed_revocation_request_is_a_400_in_quays_body() {
    let env = TestEnv::new().await;
    let (bus, _queue) = bus().await;
    let too_many = json!({ "credentials": vec!["pat_x"; 1001] }).to_string();
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"credentials": "pat_x"}"#,
        r#"{"credentials": null}"#,
        too_many.as_str(),
    ] {
        let response = revoke_credentials(
            &env.app,
            &bus,
            request(&with_body(event("revoke-credentials.json"), body)),
        )
        .await;
        assert_quay_error(&answer(response), 400, "invalid_request");
    }
    let mut xml = with_body(event("revoke-credentials.json"), "<credentials/>");
    xml["headers"]["content-type"] = "application/xml".into();
    let got = answer(revoke_credentials(&env.app, &bus, request(&xml)).await);
    assert_quay_error(&got, 400, "invalid_request");
    let huge = json!({ "credentials": ["x".repeat(300 * 1024)] }).to_string();
    let response = revoke_credentials(
        &env.app,
        &bus,
        request(&with_body(event("revoke-credentials.json"), &huge)),
    )
    .await;
    assert_quay_error(&answer(response), 400, "invalid_request");
}
