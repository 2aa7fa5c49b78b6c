//! `POST /api/v1/user/apptoken` through `shared::quay::create_app_token`, from
//! `events/create-app-token.json`, against DynamoDB Local.

use crate::support::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::quay::create_app_token;
use shared::tokens::Secret;

#[tokio::test]
async fn creates_a_token_and_shows_its_secret_once() {
    let env = TestEnv::new().await;
    let before = Utc::now();
    let answer = answer(create_app_token(&env.app, request(&event("create-app-token.json"))).await);

    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    let token = body["token"].as_object().expect("a token object");
    let mut keys: Vec<&str> = token.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created",
            "expiration",
            "last_accessed",
            "title",
            "token_code",
            "uuid"
        ]
    );

    let uuid = uuid::Uuid::parse_str(token["uuid"].as_str().unwrap()).expect("uuid");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(token["title"], "ci-pipeline");
    assert_eq!(token["last_accessed"], Value::Null);

    let created = parse_rfc2822(&token["created"]);
    assert!(
        created >= before - chrono::Duration::seconds(1) && created <= Utc::now(),
        "{created}"
    );
    // The default lifetime (90 days) applies when the request names none.
    let expiration = parse_rfc2822(&token["expiration"]);
    assert_eq!((expiration - created).num_days(), 90);

    let code = token["token_code"].as_str().unwrap();
    let secret = Secret::parse(code).expect("token_code is a well-formed secret");

    // Stored: a token item, its lookup record, the user's counter and the count of the title;
    // never the secret's text.
    let items = env.scan_all().await;
    assert_eq!(items.len(), 4, "{items:?}");
    let dump = format!("{items:?}");
    assert!(!dump.contains(code), "the secret is stored somewhere");
    assert!(
        !dump.contains(&code[4..]),
        "the secret's body is stored somewhere"
    );
    assert!(
        dump.contains(&secret.digest().to_hex()),
        "the digest is stored"
    );

    // And the store finds it by the secret's digest, as the authorizer will.
    let record = env
        .app
        .store
        .find_secret(&secret.digest())
        .await
        .unwrap()
        .expect("lookup record");
    assert_eq!(record.user_id, "alice");
    assert_eq!(record.token_uuid, uuid);
}

fn parse_rfc2822(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a date string: {value}"));
    assert!(text.ends_with(" -0000"), "{text}");
    DateTime::parse_from_rfc2822(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

#[tokio::test]
async fn bad_input_gets_quay_400s_that_name_the_problem() {
    let env = TestEnv::new().await;
    let long_title = format!("{{\"title\": \"{}\"}}", "x".repeat(256));
    let huge = format!(
        "{{\"title\": \"ok\", \"pad\": \"{}\"}}",
        "x".repeat(16 * 1024)
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "Missing JSON body"),
        ("   ".into(), "Missing JSON body"),
        ("null".into(), "Missing JSON body"),
        ("{\"title\": ".into(), "Malformed JSON"),
        ("[\"title\"]".into(), "must be an object"),
        ("{}".into(), "'title' is required"),
        ("{\"title\": null}".into(), "'title' is required"),
        ("{\"title\": 42}".into(), "'title' must be a string"),
        ("{\"title\": [\"a\"]}".into(), "'title' must be a string"),
        ("{\"title\": \"   \"}".into(), "'title' must not be empty"),
        (long_title, "at most 255 characters"),
        (huge, "larger than 16 KiB"),
    ];
    for (body, expected) in cases {
        let event = with_body(event("create-app-token.json"), &body);
        let answer = answer(create_app_token(&env.app, request(&event)).await);
        let detail = assert_quay_error(&answer, 400, "invalid_request");
        assert!(
            detail.contains(expected),
            "body {body:.40?}: {detail:?} lacks {expected:?}"
        );
    }
    assert!(
        env.scan_all().await.is_empty(),
        "a refused create wrote something"
    );
}

#[tokio::test]
async fn a_title_of_255_characters_after_trimming_is_accepted() {
    let env = TestEnv::new().await;
    let title = "é".repeat(255);
    let body = serde_json::json!({ "title": format!("  {title}  ") }).to_string();
    let answer = answer(
        create_app_token(
            &env.app,
            request(&with_body(event("create-app-token.json"), &body)),
        )
        .await,
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json()["token"]["title"], title);
}

#[tokio::test]
async fn wrong_content_type_is_refused() {
    let env = TestEnv::new().await;
    let mut event = event("create-app-token.json");
    event["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    let answer = answer(create_app_token(&env.app, request(&event)).await);
    let detail = assert_quay_error(&answer, 400, "invalid_request");
    assert!(
        detail.contains("Content-Type must be application/json"),
        "{detail}"
    );
}

#[tokio::test]
async fn no_caller_is_401_and_a_session_without_user_admin_is_403() {
    let env = TestEnv::new().await;
    let mut anonymous = event("create-app-token.json");
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let answer1 = answer(create_app_token(&env.app, request(&anonymous)).await);
    assert_eq!(
        assert_quay_error(&answer1, 401, "invalid_token"),
        "Requires authentication"
    );
    assert!(answer1
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));

    let mut narrow = event("create-app-token.json");
    narrow["requestContext"]["authorizer"] =
        serde_json::json!({"jwt": {"claims": {"sub": "alice", "scope": "openid repo:read"}}});
    let answer2 = answer(create_app_token(&env.app, request(&narrow)).await);
    assert_quay_error(&answer2, 403, "insufficient_scope");

    let mut jwt_admin = event("create-app-token.json");
    jwt_admin["requestContext"]["authorizer"] =
        serde_json::json!({"jwt": {"claims": {"sub": "alice", "scope": "user:admin"}}});
    assert_eq!(
        answer(create_app_token(&env.app, request(&jwt_admin)).await).status,
        201
    );
}

#[tokio::test]
async fn the_cap_refuses_with_a_quay_400() {
    let env = TestEnv::with_config(&[("MAX_TOKENS_PER_USER", "2")]).await;
    for _ in 0..2 {
        assert_eq!(
            answer(create_app_token(&env.app, request(&event("create-app-token.json"))).await)
                .status,
            201
        );
    }
    let answer = answer(create_app_token(&env.app, request(&event("create-app-token.json"))).await);
    let detail = assert_quay_error(&answer, 400, "invalid_request");
    assert!(
        detail.contains("Too many app-specific tokens (2)"),
        "{detail}"
    );
}
