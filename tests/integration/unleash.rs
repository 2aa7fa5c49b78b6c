//! The three Unleash routes through their handlers, from `events/*.json`, against DynamoDB
//! Local, and their agreement with the Quay routes over the same tokens.

use crate::support::*;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use shared::quay::{create_app_token, list_app_tokens};
use shared::tokens::Secret;
use shared::unleash::{create_pat, delete_pat, list_pats};

fn in_days(days: i64) -> String {
    (Utc::now() + Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

async fn create(env: &TestEnv, user: &str, body: &str) -> Answer {
    let event = with_body(as_user(event("create-pat.json"), user), body);
    answer(create_pat(&env.app, request(&event)).await)
}

async fn create_ok(env: &TestEnv, user: &str, description: &str) -> Value {
    let body = json!({"description": description, "expiresAt": in_days(30)}).to_string();
    let answer = create(env, user, &body).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json()
}

/// The Quay list of every live token (the shipped event asks for `expiring=true`).
async fn quay_list(env: &TestEnv, user: &str) -> Vec<Value> {
    let mut event = as_user(event("list-app-tokens.json"), user);
    event["rawQueryString"] = "".into();
    event
        .as_object_mut()
        .unwrap()
        .remove("queryStringParameters");
    let answer = answer(list_app_tokens(&env.app, request(&event)).await);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()["tokens"].as_array().unwrap().clone()
}

async fn list(env: &TestEnv, user: &str) -> Vec<Value> {
    let answer =
        answer(list_pats(&env.app, request(&as_user(event("list-pats.json"), user))).await);
    assert_eq!(answer.status, 200, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["pats"].as_array().unwrap().clone()
}

async fn delete(env: &TestEnv, user: &str, id: &str) -> Answer {
    let mut event = as_user(event("delete-pat.json"), user);
    event["rawPath"] = format!("/api/admin/user/tokens/{id}").into();
    event["pathParameters"] = json!({ "id": id });
    answer(delete_pat(&env.app, request(&event)).await)
}

/// Asserts Unleash's error body and returns its message.
fn assert_iso8601_ms(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a date: {value}"));
    let bytes = text.as_bytes();
    assert!(
        text.len() == 24 && text.ends_with('Z') && bytes[19] == b'.',
        "{text} is not like 2023-04-19T08:15:14.000Z"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn create_and_list_have_unleash_shapes() {
    let env = TestEnv::new().await;
    let expires_at = in_days(10);
    let body = json!({"description": "deploy bot", "expiresAt": expires_at}).to_string();
    let created = create(&env, "alice", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let pat = created.json();
    assert_eq!(
        keys(&pat),
        [
            "createdAt",
            "description",
            "expiresAt",
            "id",
            "secret",
            "seenAt"
        ]
    );
    assert_eq!(pat["id"], 1);
    assert_eq!(created.header("location"), Some("/api/admin/user/tokens/1"));
    assert!(Secret::parse(pat["secret"].as_str().unwrap()).is_ok());
    assert_eq!(pat["description"], "deploy bot");
    assert_eq!(pat["expiresAt"], expires_at.as_str());
    let created_at = assert_iso8601_ms(&pat["createdAt"]);
    assert!((Utc::now() - created_at).num_seconds().abs() <= 2);
    assert_eq!(pat["seenAt"], Value::Null);

    let second = create_ok(&env, "alice", "laptop").await;
    assert_eq!(second["id"], 2);

    let pats = list(&env, "alice").await;
    assert_eq!(pats.len(), 2);
    for listed in &pats {
        assert_eq!(
            keys(listed),
            ["createdAt", "description", "expiresAt", "id", "seenAt"]
        );
        assert!(listed["id"].as_u64().unwrap() >= 1);
        assert_iso8601_ms(&listed["createdAt"]);
        assert_iso8601_ms(&listed["expiresAt"]);
    }
    let mut without_secret = pat.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(pats[0], without_secret);
    assert_eq!(pats[1]["description"], "laptop");
}

#[tokio::test]
async fn server_set_fields_in_the_body_are_ignored() {
    let env = TestEnv::new().await;
    let body = json!({
        "description": "ci", "expiresAt": in_days(1),
        "id": 999, "secret": "pat_chosen", "createdAt": "2000-01-01T00:00:00.000Z", "seenAt": "2000-01-01T00:00:00.000Z"
    });
    let pat = create(&env, "alice", &body.to_string()).await.json();
    assert_eq!(pat["id"], 1);
    assert_ne!(pat["secret"], "pat_chosen");
    assert_eq!(pat["seenAt"], Value::Null);
    assert!(assert_iso8601_ms(&pat["createdAt"]) > Utc::now() - Duration::minutes(1));
}

#[tokio::test]
async fn both_dialects_see_and_remove_the_same_tokens() {
    let env = TestEnv::new().await;
    let pat = create_ok(&env, "alice", "from unleash").await;
    let quay_event = with_body(
        as_user(event("create-app-token.json"), "alice"),
        r#"{"title": "from quay"}"#,
    );
    let quay_token =
        answer(create_app_token(&env.app, request(&quay_event)).await).json()["token"].clone();

    let mut quay_listed = quay_list(&env, "alice").await;
    quay_listed.retain(|t| t["title"] == "from unleash");
    assert_eq!(
        quay_listed.len(),
        1,
        "the Unleash PAT is missing from the Quay list"
    );
    assert!(uuid::Uuid::parse_str(quay_listed[0]["uuid"].as_str().unwrap()).is_ok());
    assert_eq!(quay_listed[0]["title"], "from unleash");

    let pats = list(&env, "alice").await;
    let from_quay: Vec<&Value> = pats
        .iter()
        .filter(|p| p["description"] == "from quay")
        .collect();
    assert_eq!(
        from_quay.len(),
        1,
        "the Quay token is missing from the Unleash list"
    );
    assert_eq!(from_quay[0]["id"], 2);
    assert_eq!(from_quay[0]["description"], quay_token["title"]);

    // Deleting the Quay-created token by its Unleash id removes it from the Quay list too.
    assert_eq!(delete(&env, "alice", "2").await.status, 200);
    let titles: Vec<Value> = quay_list(&env, "alice")
        .await
        .iter()
        .map(|t| t["title"].clone())
        .collect();
    assert_eq!(titles, [json!("from unleash")]);
    assert_eq!(pat["id"], 1);
}

#[tokio::test]
async fn delete_answers_200_once_then_404_and_never_touches_another_users_pat() {
    let env = TestEnv::new().await;
    let pat = create_ok(&env, "alice", "mine").await;
    let id = pat["id"].to_string();
    let secret = Secret::parse(pat["secret"].as_str().unwrap()).unwrap();

    // Bob asking for Alice's id: 404, unlike real Unleash's silent 200, and nothing is deleted.
    assert_eq!(
        assert_unleash_error(&delete(&env, "bob", &id).await, 404, "NotFoundError"),
        "No PAT found."
    );
    assert_eq!(list(&env, "alice").await.len(), 1);

    let deleted = delete(&env, "alice", &id).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.text, "");
    assert!(list(&env, "alice").await.is_empty());
    assert_eq!(
        env.app.store.find_secret(&secret.digest()).await.unwrap(),
        None
    );
    assert_unleash_error(&delete(&env, "alice", &id).await, 404, "NotFoundError");
    assert_unleash_error(&delete(&env, "alice", "77").await, 404, "NotFoundError");
    // Ids are never reused.
    assert_eq!(create_ok(&env, "alice", "mine").await["id"], 2);
}

#[tokio::test]
async fn a_malformed_id_is_a_400_naming_it() {
    let env = TestEnv::new().await;
    for id in [
        "abc",
        "0",
        "-1",
        "1.5",
        "+1",
        "",
        "18446744073709551616",
        "1 ",
    ] {
        let answer = delete(&env, "alice", id).await;
        let message = assert_unleash_error(&answer, 400, "BadDataError");
        assert!(message.contains("PAT id"), "{id:?}: {message}");
        // The path parameter, not a body field, is named.
        assert_eq!(answer.json()["details"][0]["path"], "/params/id", "{id:?}");
    }
}

#[tokio::test]
async fn thirty_concurrent_creates_yield_thirty_distinct_ids() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let handles: Vec<_> = (0..30)
        .map(|i| {
            let env = env.clone();
            tokio::spawn(async move {
                create_ok(&env, "zoe", &format!("token {i}")).await["id"]
                    .as_u64()
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for handle in handles {
        ids.push(handle.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
}

#[tokio::test]
async fn unleash_rules_on_create() {
    let env = TestEnv::with_config(&[("MAX_TOKENS_PER_USER", "2")]).await;
    create_ok(&env, "alice", "one").await;
    let duplicate = create(
        &env,
        "alice",
        &json!({"description": "one", "expiresAt": in_days(3)}).to_string(),
    )
    .await;
    assert_eq!(
        assert_unleash_error(&duplicate, 409, "NameExistsError"),
        "PAT description already exists."
    );
    // Another user may use the same description.
    create_ok(&env, "bob", "one").await;
    create_ok(&env, "alice", "two").await;
    let full = create(
        &env,
        "alice",
        &json!({"description": "three", "expiresAt": in_days(3)}).to_string(),
    )
    .await;
    assert_eq!(
        assert_unleash_error(&full, 403, "OperationDeniedError"),
        "Too many PATs (2) already exist for this user."
    );
}

#[tokio::test]
async fn every_bad_input_gets_a_400_naming_the_field() {
    let env = TestEnv::with_config(&[
        ("MAX_TOKEN_LIFETIME", "30d"),
        ("DEFAULT_TOKEN_LIFETIME", "7d"),
    ])
    .await;
    let future = in_days(3);
    let cases: Vec<(String, &str, &str)> = vec![
        (
            json!({"expiresAt": future}).to_string(),
            "description",
            "PAT description cannot be empty.",
        ),
        (
            json!({"description": "", "expiresAt": future}).to_string(),
            "description",
            "PAT description cannot be empty.",
        ),
        (
            json!({"description": "  ", "expiresAt": future}).to_string(),
            "description",
            "PAT description cannot be empty.",
        ),
        (
            json!({"description": 7, "expiresAt": future}).to_string(),
            "description",
            "must be a string",
        ),
        (
            json!({"description": "x".repeat(256), "expiresAt": future}).to_string(),
            "description",
            "at most 255",
        ),
        (
            json!({"description": "d"}).to_string(),
            "expiresAt",
            "expiresAt is required.",
        ),
        (
            json!({"description": "d", "expiresAt": "soon"}).to_string(),
            "expiresAt",
            "must be a date-time",
        ),
        (
            json!({"description": "d", "expiresAt": 1_900_000_000}).to_string(),
            "expiresAt",
            "must be a date-time",
        ),
        (
            json!({"description": "d", "expiresAt": "2001-01-01T00:00:00.000Z"}).to_string(),
            "expiresAt",
            "should be in future",
        ),
        (
            json!({"description": "d", "expiresAt": in_days(31)}).to_string(),
            "expiresAt",
            "at most 30 days",
        ),
    ];
    for (body, field, expected) in cases {
        let answer = create(&env, "alice", &body).await;
        let message = assert_unleash_error(&answer, 400, "BadDataError");
        assert!(message.contains(expected), "{body}: {message}");
        assert_eq!(
            answer.json()["details"][0]["path"],
            format!("/body/{field}"),
            "{body}"
        );
    }
    for (body, expected) in [
        ("{\"description\":", "Malformed JSON"),
        ("", "Missing JSON body"),
        ("[1]", "must be an object"),
    ] {
        let message = assert_unleash_error(&create(&env, "alice", body).await, 400, "BadDataError");
        assert!(message.contains(expected), "{body:?}: {message}");
    }
    let mut form = with_body(event("create-pat.json"), "description=x");
    form["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    assert_unleash_error(
        &answer(create_pat(&env.app, request(&form)).await),
        415,
        "ContentTypeError",
    );
    assert!(
        env.scan_all().await.is_empty(),
        "a refused create wrote something"
    );
}

#[tokio::test]
async fn callers_are_required_and_must_be_users() {
    let env = TestEnv::new().await;
    let anonymous = without_caller(event("list-pats.json"));
    let answer1 = answer(list_pats(&env.app, request(&anonymous)).await);
    assert_unleash_error(&answer1, 401, "AuthenticationRequired");

    let mut service = event("list-pats.json");
    service["requestContext"]["authorizer"] =
        json!({"lambda": {"user_id": "svc", "auth": "apikey"}});
    assert_unleash_error(
        &answer(list_pats(&env.app, request(&service)).await),
        403,
        "NoAccessError",
    );
}

#[tokio::test]
async fn every_route_refuses_the_wrong_method_with_a_405() {
    let env = TestEnv::new().await;
    for (event_name, wrong_method) in [
        ("create-pat.json", "PUT"),
        ("list-pats.json", "POST"),
        ("delete-pat.json", "GET"),
    ] {
        let mut wrong = as_user(event(event_name), "alice");
        wrong["requestContext"]["http"]["method"] = wrong_method.into();
        let request = request(&wrong);
        let answer = answer(match event_name {
            "create-pat.json" => create_pat(&env.app, request).await,
            "list-pats.json" => list_pats(&env.app, request).await,
            _ => delete_pat(&env.app, request).await,
        });
        let message = assert_unleash_error(&answer, 405, "MethodNotAllowedError");
        assert!(message.contains(wrong_method), "{event_name}: {message}");
    }
    assert!(
        env.scan_all().await.is_empty(),
        "a refused request wrote something"
    );
}

#[tokio::test]
async fn expired_pats_are_not_listed_but_can_be_deleted() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let expired = shared::store::NewToken {
        user_id: "alice".into(),
        uuid: uuid::Uuid::new_v4(),
        title: "old".into(),
        created: now - Duration::days(3),
        expires: Some(now - Duration::hours(1)),
        scopes: None,
    };
    let token = env
        .app
        .store
        .create_token(
            expired,
            &Secret::generate().unwrap().digest(),
            10,
            Duration::days(1),
        )
        .await
        .unwrap();
    assert!(list(&env, "alice").await.is_empty());
    assert_eq!(
        delete(&env, "alice", &token.number.to_string())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_shipped_events_run_as_they_are() {
    let env = TestEnv::new().await;
    let created = answer(create_pat(&env.app, request(&event("create-pat.json"))).await);
    assert_eq!(created.status, 201, "{}", created.text);
    create_ok(&env, "alice", "second").await;
    // The shipped list event authenticates itself, with the shipped authorizer event's PAT.
    let shipped = event("list-pats.json");
    assert!(shipped["requestContext"].get("authorizer").is_none());
    seed_pat(&env, "alice", &event_secret(&shipped)).await;
    let listed = answer(list_pats(&env.app, request(&shipped)).await);
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["pats"][0]["description"], "deploy bot");
    // The shipped delete event names id 2.
    let deleted = answer(delete_pat(&env.app, request(&event("delete-pat.json"))).await);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(list(&env, "alice").await.len(), 2);
}

#[tokio::test]
async fn ten_concurrent_creates_of_one_description_make_exactly_one_pat() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let body = json!({"description": "deploy bot", "expiresAt": in_days(30)}).to_string();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let env = env.clone();
        let body = body.clone();
        attempts.spawn(async move { create(&env, "alice", &body).await });
    }
    let mut statuses = Vec::new();
    while let Some(done) = attempts.join_next().await {
        let answer = done.unwrap();
        if answer.status == 409 {
            assert_unleash_error(&answer, 409, "NameExistsError");
        }
        statuses.push(answer.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    let pats = list(&env, "alice").await;
    assert_eq!(pats.len(), 1, "{pats:?}");

    // Deleted, the description is free again, for one create.
    let id = pats[0]["id"].to_string();
    assert_eq!(delete(&env, "alice", &id).await.status, 200);
    assert_eq!(create(&env, "alice", &body).await.status, 201);
    assert_eq!(create(&env, "alice", &body).await.status, 409);
    // Another user's descriptions are their own.
    assert_eq!(create(&env, "bob", &body).await.status, 201);
}

#[tokio::test]
async fn a_description_held_only_by_expired_pats_can_be_used_again() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    // An expired token (not yet removed by cleanup) still counts its title.
    let expired = shared::store::NewToken {
        user_id: "alice".into(),
        uuid: uuid::Uuid::new_v4(),
        title: "nightly".into(),
        created: now - Duration::days(3),
        expires: Some(now - Duration::days(1)),
        scopes: None,
    };
    env.app
        .store
        .create_token_with(
            expired,
            &Secret::generate().unwrap().digest(),
            100,
            Duration::days(7),
            shared::store::TitleRule::Unique,
            &shared::store::Audit::system(now),
        )
        .await
        .unwrap();
    let body = json!({"description": "nightly", "expiresAt": in_days(30)}).to_string();
    assert_eq!(create(&env, "alice", &body).await.status, 201);
    assert_eq!(create(&env, "alice", &body).await.status, 409);
}
