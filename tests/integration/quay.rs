//! The four Quay routes through their handlers, from `events/*.json`, against DynamoDB Local:
//! create (with the shipped event as it is), list, get and revoke, and their bad inputs.

use crate::support::*;
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use shared::quay::{create_app_token, get_app_token, list_app_tokens, revoke_app_token};
use shared::store::NewToken;
use shared::tokens::Secret;
use uuid::Uuid;

async fn create(env: &TestEnv, user: &str, body: Value) -> Answer {
    let event = with_body(
        as_user(event("create-app-token.json"), user),
        &body.to_string(),
    );
    answer(create_app_token(&env.app, request(&event)).await)
}

async fn create_ok(env: &TestEnv, user: &str, body: Value) -> Value {
    let answer = create(env, user, body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()["token"].clone()
}

async fn list(env: &TestEnv, user: &str, query: Option<&str>) -> Answer {
    let mut event = as_user(event("list-app-tokens.json"), user);
    event["rawQueryString"] = query.unwrap_or_default().into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    answer(list_app_tokens(&env.app, request(&event)).await)
}

fn at_uuid(event: Value, user: &str, uuid: &str) -> Value {
    let mut event = as_user(event, user);
    event["rawPath"] = format!("/api/v1/user/apptoken/{uuid}").into();
    event["pathParameters"] = json!({ "token_uuid": uuid });
    event
}

async fn get(env: &TestEnv, user: &str, uuid: &str) -> Answer {
    answer(
        get_app_token(
            &env.app,
            request(&at_uuid(event("get-app-token.json"), user, uuid)),
        )
        .await,
    )
}

async fn revoke(env: &TestEnv, user: &str, uuid: &str) -> Answer {
    answer(
        revoke_app_token(
            &env.app,
            request(&at_uuid(event("revoke-app-token.json"), user, uuid)),
        )
        .await,
    )
}

fn uuids(list: &Answer) -> Vec<String> {
    assert_eq!(list.status, 200, "{}", list.text);
    list.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// The view every route shows: exactly these fields, with these types.
fn assert_view(token: &Value, with_code: bool) {
    let mut keys: Vec<&str> = token
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec![
        "created",
        "expiration",
        "last_accessed",
        "scopes",
        "title",
        "uuid",
    ];
    if with_code {
        expected.push("token_code");
        expected.sort_unstable();
    }
    assert_eq!(keys, expected, "{token}");
    assert!(Uuid::parse_str(token["uuid"].as_str().unwrap()).is_ok());
    assert!(token["title"].is_string());
    assert!(token["scopes"]
        .as_array()
        .is_some_and(|s| s.iter().all(Value::is_string)));
    rfc2822(&token["created"]);
    assert!(token["expiration"].is_null() || rfc2822(&token["expiration"]) > Utc::now());
    assert!(token["last_accessed"].is_null() || token["last_accessed"].is_string());
}

#[tokio::test]
async fn shapes_of_list_and_get_match_quay() {
    let env = TestEnv::with_config(&[
        ("DEFAULT_TOKEN_LIFETIME", "never"),
        ("MAX_TOKEN_LIFETIME", "none"),
    ])
    .await;
    let forever = create_ok(&env, "alice", json!({"title": "forever"})).await;
    assert_view(&forever, true);
    assert_eq!(
        forever["expiration"],
        Value::Null,
        "the default lifetime 'never' gives a null expiration"
    );
    assert_eq!(forever["last_accessed"], Value::Null);

    let in_an_hour = create_ok(
        &env,
        "alice",
        json!({"title": "hourly", "expiration": 3600}),
    )
    .await;
    let expires = rfc2822(&in_an_hour["expiration"]);
    assert!(
        (expires - Utc::now() - Duration::hours(1))
            .num_seconds()
            .abs()
            <= 2,
        "{expires}"
    );

    let listed = list(&env, "alice", None).await;
    let body = listed.json();
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(body["only_expiring"], Value::Null);
    let tokens = body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for token in tokens {
        assert_view(token, false);
    }
    // Newest first.
    assert_eq!(tokens[0]["uuid"], in_an_hour["uuid"]);
    assert_eq!(tokens[1]["uuid"], forever["uuid"]);

    let got = get(&env, "alice", forever["uuid"].as_str().unwrap()).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let body = got.json();
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_view(&body["token"], false);
    let mut without_code = forever.clone();
    without_code.as_object_mut().unwrap().remove("token_code");
    assert_eq!(body["token"], without_code);
}

#[tokio::test]
async fn create_list_get_revoke_and_the_secret_stops_resolving() {
    let env = TestEnv::new().await;
    let token = create_ok(&env, "alice", json!({"title": "deploy"})).await;
    let uuid = token["uuid"].as_str().unwrap();
    let secret = Secret::parse(token["token_code"].as_str().unwrap()).unwrap();
    assert!(env
        .app
        .store
        .find_secret(&secret.digest())
        .await
        .unwrap()
        .is_some());

    assert_eq!(uuids(&list(&env, "alice", None).await), [uuid]);
    assert_eq!(get(&env, "alice", uuid).await.status, 200);

    let revoked = revoke(&env, "alice", uuid).await;
    assert_eq!(revoked.status, 204);
    assert_eq!(revoked.text, "");

    assert_quay_error(&get(&env, "alice", uuid).await, 404, "not_found");
    assert!(uuids(&list(&env, "alice", None).await).is_empty());
    assert_quay_error(&revoke(&env, "alice", uuid).await, 404, "not_found");
    assert_eq!(
        env.app.store.find_secret(&secret.digest()).await.unwrap(),
        None,
        "the revoked secret still resolves"
    );
    // Only the counter and the title's count (now zero) are left.
    assert_eq!(env.scan_all().await.len(), 2);
}

#[tokio::test]
async fn another_users_token_is_invisible_and_untouchable() {
    let env = TestEnv::new().await;
    let token = create_ok(&env, "alice", json!({"title": "mine"})).await;
    let uuid = token["uuid"].as_str().unwrap();

    assert!(uuids(&list(&env, "bob", None).await).is_empty());
    let not_found = assert_quay_error(&get(&env, "bob", uuid).await, 404, "not_found");
    let revoked = revoke(&env, "bob", uuid).await;
    assert_eq!(assert_quay_error(&revoked, 404, "not_found"), not_found);

    // The same answer as for a token that never existed.
    let unknown = get(&env, "bob", &Uuid::new_v4().to_string()).await;
    assert_eq!(assert_quay_error(&unknown, 404, "not_found"), not_found);
    // A malformed uuid is a 404 too (as Quay), whose message names the problem.
    let malformed = get(&env, "bob", "not-a-uuid").await;
    let message = assert_quay_error(&malformed, 404, "not_found");
    assert!(
        message.contains("\"not-a-uuid\" is not a token UUID"),
        "{message}"
    );
    let traversal = assert_quay_error(&revoke(&env, "bob", "../etc").await, 404, "not_found");
    assert!(traversal.contains("is not a token UUID"), "{traversal}");

    assert_eq!(
        get(&env, "alice", uuid).await.status,
        200,
        "alice's token was harmed"
    );
    assert_eq!(uuids(&list(&env, "alice", None).await), [uuid]);
}

#[tokio::test]
async fn expiring_returns_exactly_the_tokens_expiring_soon() {
    // No default lifetime: `soon` is 10% of 4 weeks = 2.8 days.
    let env = TestEnv::with_config(&[
        ("DEFAULT_TOKEN_LIFETIME", "never"),
        ("MAX_TOKEN_LIFETIME", "none"),
    ])
    .await;
    let hour = create_ok(&env, "alice", json!({"title": "1h", "expiration": 3600})).await;
    let in_ten_days = (Utc::now() + Duration::days(10)).to_rfc3339();
    let ten_days = create_ok(
        &env,
        "alice",
        json!({"title": "10d", "expiration": in_ten_days}),
    )
    .await;
    let never = create_ok(&env, "alice", json!({"title": "never"})).await;
    let now = Utc::now();
    let expired = NewToken {
        user_id: "alice".into(),
        uuid: Uuid::new_v4(),
        title: "expired".into(),
        created: now - Duration::days(2),
        expires: Some(now - Duration::minutes(5)),
        scopes: None,
    };
    env.app
        .store
        .create_token(
            expired.clone(),
            &Secret::generate().unwrap().digest(),
            100,
            Duration::days(1),
        )
        .await
        .unwrap();

    let id = |t: &Value| t["uuid"].as_str().unwrap().to_owned();
    let mut all_live = vec![id(&hour), id(&ten_days), id(&never)];
    all_live.sort();
    for (query, only_expiring) in [
        (None, Value::Null),
        (Some("expiring=false"), json!(false)),
        (Some("expiring=FALSE"), json!(false)),
        (Some("expiring=0"), json!(false)),
    ] {
        let answer = list(&env, "alice", query).await;
        assert_eq!(answer.json()["only_expiring"], only_expiring, "{query:?}");
        let mut got = uuids(&answer);
        got.sort();
        assert_eq!(got, all_live, "{query:?}");
    }
    for query in ["expiring=true", "expiring=True", "expiring=1"] {
        let answer = list(&env, "alice", Some(query)).await;
        assert_eq!(answer.json()["only_expiring"], json!(true));
        assert_eq!(uuids(&answer), [id(&hour)], "{query}");
    }
    for query in ["expiring=yes", "expiring=", "expiring=2", "expiring=null"] {
        let detail = assert_quay_error(
            &list(&env, "alice", Some(query)).await,
            400,
            "invalid_request",
        );
        assert!(detail.contains("'expiring'"), "{detail}");
    }
    // The expired token is hidden from list and get, but revoking it still works, as in Quay.
    assert_quay_error(
        &get(&env, "alice", &expired.uuid.to_string()).await,
        404,
        "not_found",
    );
    assert_eq!(
        revoke(&env, "alice", &expired.uuid.to_string())
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn a_list_spanning_many_dynamodb_pages_returns_every_token() {
    let env = TestEnv::new().await.with_page_size(3);
    let mut created = Vec::new();
    for i in 0..10 {
        created.push(
            create_ok(&env, "alice", json!({"title": format!("t{i}")})).await["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    env.requests.reset();
    let got = uuids(&list(&env, "alice", None).await);
    // 10 tokens and the counter item, 3 per page: at least 4 Query calls.
    assert!(
        env.requests.get("Query") >= 4,
        "{:?}",
        env.requests.snapshot()
    );
    created.reverse();
    assert_eq!(got, created, "every token, newest first");
}

#[tokio::test]
async fn expiration_on_create_is_validated() {
    let env = TestEnv::with_config(&[
        ("MAX_TOKEN_LIFETIME", "30d"),
        ("DEFAULT_TOKEN_LIFETIME", "7d"),
    ])
    .await;
    let past = (Utc::now() - Duration::minutes(1)).to_rfc3339();
    let far = (Utc::now() + Duration::days(31)).to_rfc3339();
    for (expiration, expected) in [
        (json!(past), "must be in the future"),
        (json!(-5), "must be in the future"),
        (json!(0), "must be in the future"),
        (json!(far), "at most 30 days"),
        (json!(31 * 86_400), "at most 30 days"),
        (json!("next tuesday"), "RFC 3339"),
        (json!("2030-01-01"), "RFC 3339"),
        (json!(12.5), "RFC 3339"),
        (json!(true), "RFC 3339"),
        (json!(i64::MAX), "RFC 3339"),
    ] {
        let answer = create(
            &env,
            "alice",
            json!({"title": "t", "expiration": expiration}),
        )
        .await;
        let detail = assert_quay_error(&answer, 400, "invalid_request");
        assert!(
            detail.contains("'expiration'") && detail.contains(expected),
            "{expiration}: {detail}"
        );
    }
    let at = (Utc::now() + Duration::days(30) - Duration::minutes(1)).to_rfc3339();
    let ok = create_ok(&env, "alice", json!({"title": "t", "expiration": at})).await;
    assert!(rfc2822(&ok["expiration"]) > Utc::now() + Duration::days(29));
    let default = create_ok(&env, "alice", json!({"title": "t", "expiration": null})).await;
    assert_eq!(
        (rfc2822(&default["expiration"]) - rfc2822(&default["created"])).num_days(),
        7
    );
}

#[tokio::test]
async fn routes_refuse_the_wrong_method_and_missing_callers() {
    let env = TestEnv::new().await;
    let mut wrong = event("get-app-token.json");
    wrong["requestContext"]["http"]["method"] = "PUT".into();
    assert_quay_error(
        &answer(get_app_token(&env.app, request(&wrong)).await),
        405,
        "method_not_allowed",
    );

    for event_name in [
        "list-app-tokens.json",
        "get-app-token.json",
        "revoke-app-token.json",
    ] {
        let anonymous = without_caller(event(event_name));
        let request = request(&anonymous);
        let answer = answer(match event_name {
            "list-app-tokens.json" => list_app_tokens(&env.app, request).await,
            "get-app-token.json" => get_app_token(&env.app, request).await,
            _ => revoke_app_token(&env.app, request).await,
        });
        assert_quay_error(&answer, 401, "invalid_token");
    }
}

#[tokio::test]
async fn the_shipped_events_run_as_they_are() {
    let env = TestEnv::new().await;
    let listed = answer(list_app_tokens(&env.app, request(&event("list-app-tokens.json"))).await);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json(), json!({"tokens": [], "only_expiring": true}));
    assert_quay_error(
        &answer(get_app_token(&env.app, request(&event("get-app-token.json"))).await),
        404,
        "not_found",
    );
    assert_quay_error(
        &answer(revoke_app_token(&env.app, request(&event("revoke-app-token.json"))).await),
        404,
        "not_found",
    );
}

// ---------------------------------------------------------------------------------------------
// `POST /api/v1/user/apptoken` exactly as `events/create-app-token.json` sends it.

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
            "scopes",
            "title",
            "token_code",
            "uuid"
        ]
    );

    let uuid = uuid::Uuid::parse_str(token["uuid"].as_str().unwrap()).expect("uuid");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(token["title"], "ci-pipeline");
    assert_eq!(token["last_accessed"], Value::Null);

    let created = rfc2822(&token["created"]);
    assert!(
        created >= before - chrono::Duration::seconds(1) && created <= Utc::now(),
        "{created}"
    );
    // The default lifetime (90 days) applies when the request names none.
    let expiration = rfc2822(&token["expiration"]);
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
    let anonymous = without_caller(event("create-app-token.json"));
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
