//! Scopes: least privilege for tokens (both dialects and the authorizer, on DynamoDB Local).
//! A token does only what its scopes allow; it grants at most what it holds; a session grants
//! anything but `super:user` unless it holds it; tokens stored before scopes keep full authority.

use crate::authorizer::authorizer_request;
use crate::route_auth::with_authorization;
use crate::support::*;
use harness::events::with_path_parameter;
use serde_json::{json, Value};
use shared::authorizer::authorize;
use shared::quay::{create_app_token, get_app_token, list_app_tokens, revoke_app_token};
use shared::store::TitleRule;
use shared::tokens::Secret;
use shared::unleash::{create_pat, delete_pat, list_pats};
use uuid::Uuid;

/// A token of `user` holding `scopes`, issued as a create issues it.
async fn scoped(env: &TestEnv, user: &str, scopes: &[&str]) -> (Uuid, Secret) {
    let issued = env
        .app
        .issue(
            user,
            format!("scoped {}", Uuid::new_v4()),
            Some(chrono::Utc::now() + chrono::Duration::days(1)),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
            TitleRule::Shared,
            &shared::store::Audit::system(chrono::Utc::now()),
        )
        .await
        .expect("token issued");
    (issued.token.uuid, issued.secret)
}

fn bearer(secret: &Secret) -> String {
    format!("Bearer {}", secret.expose())
}

/// A shipped event, authenticated by `secret` in `Authorization`.
fn with_pat(event: Value, secret: &Secret) -> Value {
    with_authorization(event, Some(&bearer(secret)))
}

/// A shipped event with this project's authorizer context of a session holding `scopes`.
fn as_session(mut event: Value, user: &str, scopes: &str) -> Value {
    event["requestContext"]["authorizer"] =
        json!({"lambda": {"user_id": user, "auth": "jwt", "scopes": scopes}});
    event
}

fn quay_create_body(scopes: Value) -> String {
    json!({"title": "made", "scopes": scopes}).to_string()
}

fn unleash_create_body(description: &str, scopes: Value) -> String {
    let expires = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    json!({"description": description, "expiresAt": expires, "scopes": scopes}).to_string()
}

async fn quay_create(env: &TestEnv, event: Value, scopes: Value) -> Answer {
    let event = with_body(event, &quay_create_body(scopes));
    answer(create_app_token(&env.app, request(&event)).await)
}

async fn unleash_create(env: &TestEnv, event: Value, scopes: Value) -> Answer {
    let description = format!("made {}", Uuid::new_v4());
    let event = with_body(event, &unleash_create_body(&description, scopes));
    answer(create_pat(&env.app, request(&event)).await)
}

fn stored_scopes(
    items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
    uuid: &str,
) -> Vec<Vec<String>> {
    items
        .iter()
        .filter(|i| i.get("token_uuid").and_then(|v| v.as_s().ok()) == Some(&uuid.to_owned()))
        .map(|i| {
            i.get("scopes")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(|s| s.as_s().ok().cloned()).collect())
                .unwrap_or_default()
        })
        .collect()
}

fn assert_forbidden_quay(got: &Answer, scope_in_message: &str) {
    assert_eq!(got.status, 403, "{}", got.text);
    assert_eq!(
        got.json()["error_type"],
        "insufficient_scope",
        "{}",
        got.text
    );
    let detail = got.json()["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains(scope_in_message), "{detail}");
}

fn assert_forbidden_unleash(got: &Answer, scope_in_message: &str) {
    assert_eq!(got.status, 403, "{}", got.text);
    assert_eq!(got.json()["name"], "NoAccessError", "{}", got.text);
    let message = got.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(scope_in_message), "{message}");
}

#[tokio::test]
async fn a_repo_read_token_cannot_create_list_or_revoke_tokens_in_either_dialect() {
    let env = TestEnv::new().await;
    let (uuid, secret) = scoped(&env, "alice", &["repo:read"]).await;
    let (_, other) = scoped(&env, "alice", &["user:admin"]).await;
    let before = env.scan_all().await.len();
    let number = env
        .app
        .store
        .get_token("alice", &uuid)
        .await
        .unwrap()
        .unwrap()
        .number;

    let created = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &secret),
        json!(null),
    )
    .await;
    assert_forbidden_quay(&created, "user:admin");
    let challenge = created
        .header("www-authenticate")
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"user:admin\""),
        "{challenge}"
    );
    let listed = answer(
        list_app_tokens(
            &env.app,
            request(&with_pat(event("list-app-tokens.json"), &secret)),
        )
        .await,
    );
    assert_forbidden_quay(&listed, "user:read");
    let got = get_app_token(
        &env.app,
        request(&with_pat(
            with_path_parameter(event("get-app-token.json"), "token_uuid", &uuid.to_string()),
            &secret,
        )),
    )
    .await;
    assert_forbidden_quay(&answer(got), "user:read");
    let revoked = revoke_app_token(
        &env.app,
        request(&with_pat(
            with_path_parameter(
                event("revoke-app-token.json"),
                "token_uuid",
                &uuid.to_string(),
            ),
            &secret,
        )),
    )
    .await;
    assert_forbidden_quay(&answer(revoked), "user:admin");

    let created = unleash_create(
        &env,
        with_pat(event("create-pat.json"), &secret),
        json!(["repo:read"]),
    )
    .await;
    assert_forbidden_unleash(&created, "user:admin");
    let listed = answer(
        list_pats(
            &env.app,
            request(&with_pat(event("list-pats.json"), &secret)),
        )
        .await,
    );
    assert_forbidden_unleash(&listed, "user:read");
    let deleted = delete_pat(
        &env.app,
        request(&with_pat(
            with_path_parameter(event("delete-pat.json"), "id", &number.to_string()),
            &secret,
        )),
    )
    .await;
    assert_forbidden_unleash(&answer(deleted), "user:admin");

    assert_eq!(
        env.scan_all().await.len(),
        before,
        "a refused call changed the table"
    );
    // The other token, with user:admin, still lists both.
    let listed = answer(
        list_pats(
            &env.app,
            request(&with_pat(event("list-pats.json"), &other)),
        )
        .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["pats"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_token_grants_only_scopes_it_holds() {
    let env = TestEnv::new().await;
    let (_, admin) = scoped(&env, "alice", &["repo:read", "user:admin"]).await;

    // A narrower token: 201, its scopes in Quay's view and on both stored items.
    let made = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &admin),
        json!(["repo:read", "repo:read"]),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let token = made.json()["token"].clone();
    assert_eq!(token["scopes"], json!(["repo:read"]));
    let uuid = token["uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        stored_scopes(&env.scan_all().await, &uuid),
        vec![vec!["repo:read".to_owned()]; 2],
        "token item and lookup record"
    );

    // No `scopes`: everything the creator holds.
    let made = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &admin),
        json!(null),
    )
    .await;
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(["repo:read", "user:admin"]),
        "{}",
        made.text
    );

    // More than it holds: 403 naming the scope, nothing written; unknown: 400 naming it.
    let before = env.scan_all().await.len();
    let more = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &admin),
        json!(["repo:read", "repo:write"]),
    )
    .await;
    assert_forbidden_quay(&more, "repo:write");
    let more = unleash_create(
        &env,
        with_pat(event("create-pat.json"), &admin),
        json!(["super:user"]),
    )
    .await;
    assert_forbidden_unleash(&more, "super:user");
    let unknown = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &admin),
        json!(["repo:wrote"]),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert!(unknown.text.contains("repo:wrote"), "{}", unknown.text);
    let unknown = unleash_create(
        &env,
        with_pat(event("create-pat.json"), &admin),
        json!(["repo:read,user:admin"]),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(unknown.json()["details"][0]["path"], "/body/scopes");
    assert_eq!(
        env.scan_all().await.len(),
        before,
        "a refused create wrote something"
    );

    // Unleash: the scopes are taken, the answer is exactly Unleash's patSchema.
    let made = unleash_create(
        &env,
        with_pat(event("create-pat.json"), &admin),
        json!(["repo:read"]),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let mut fields: Vec<String> = made.json().as_object().unwrap().keys().cloned().collect();
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
    let secret = Secret::parse(made.json()["secret"].as_str().unwrap()).unwrap();

    // The repo:read token it made can create nothing at all, in either dialect.
    for scopes in [json!(null), json!([]), json!(["repo:read"])] {
        let refused = quay_create(
            &env,
            with_pat(event("create-app-token.json"), &secret),
            scopes.clone(),
        )
        .await;
        assert_eq!(refused.status, 403, "{scopes}: {}", refused.text);
        let refused =
            unleash_create(&env, with_pat(event("create-pat.json"), &secret), scopes).await;
        assert_eq!(refused.status, 403, "{}", refused.text);
    }
}

#[tokio::test]
async fn sessions_grant_anything_but_super_user_unless_they_hold_it() {
    let env = TestEnv::new().await;
    let session = |scopes: &str| as_session(event("create-app-token.json"), "bob", scopes);

    let refused = quay_create(&env, session("openid user:admin"), json!(["super:user"])).await;
    assert_forbidden_quay(&refused, "super:user");
    let made = quay_create(
        &env,
        session("openid user:admin"),
        json!(["org:admin", "repo:admin"]),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(["repo:admin", "org:admin"])
    );
    let made = quay_create(
        &env,
        session("user:admin super:user"),
        json!(["super:user"]),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.json()["token"]["scopes"], json!(["super:user"]));

    // No `scopes`: everything the session may grant.
    let made = quay_create(&env, session("openid user:admin"), json!(null)).await;
    let all_but_super = [
        "repo:read",
        "repo:write",
        "repo:admin",
        "repo:create",
        "user:read",
        "user:admin",
        "org:admin",
        "self_rotate",
    ];
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(all_but_super),
        "{}",
        made.text
    );

    // A session needs the routes' scopes too, in both dialects.
    let listed = answer(
        list_pats(
            &env.app,
            request(&as_session(event("list-pats.json"), "bob", "openid")),
        )
        .await,
    );
    assert_forbidden_unleash(&listed, "user:read");
    let listed = answer(
        list_pats(
            &env.app,
            request(&as_session(event("list-pats.json"), "bob", "user:read")),
        )
        .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    let created = unleash_create(
        &env,
        as_session(event("create-pat.json"), "bob", "user:read"),
        json!(null),
    )
    .await;
    assert_forbidden_unleash(&created, "user:admin");
}

#[tokio::test]
async fn the_default_scopes_apply_within_what_the_creator_may_grant() {
    let env = TestEnv::with_config(&[
        ("TOKEN_SCOPES", "reports:read reports:write"),
        ("DEFAULT_TOKEN_SCOPES", "repo:read reports:read"),
    ])
    .await;
    let made = quay_create(
        &env,
        as_session(event("create-app-token.json"), "bob", "user:admin"),
        json!(null),
    )
    .await;
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(["repo:read", "reports:read"]),
        "{}",
        made.text
    );
    let made = quay_create(
        &env,
        as_session(event("create-app-token.json"), "bob", "user:admin"),
        json!(["reports:write"]),
    )
    .await;
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(["reports:write"]),
        "{}",
        made.text
    );
    let (_, narrow) = scoped(&env, "bob", &["user:admin", "reports:read"]).await;
    let made = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &narrow),
        json!(null),
    )
    .await;
    assert_eq!(
        made.json()["token"]["scopes"],
        json!(["reports:read"]),
        "{}",
        made.text
    );
}

#[tokio::test]
async fn scopes_that_are_not_an_array_of_strings_are_a_400_in_each_dialect() {
    let env = TestEnv::new().await;
    let too_many: Vec<&str> = vec!["repo:read"; 101];
    for scopes in [
        json!("repo:read"),
        json!([1]),
        json!({"repo:read": true}),
        json!(too_many),
        json!([""]),
    ] {
        let got = quay_create(
            &env,
            as_user(event("create-app-token.json"), "alice"),
            scopes.clone(),
        )
        .await;
        assert_eq!(got.status, 400, "{scopes}: {}", got.text);
        assert!(got.text.contains("scope"), "{}", got.text);
        let got = unleash_create(
            &env,
            as_user(event("create-pat.json"), "alice"),
            scopes.clone(),
        )
        .await;
        assert_eq!(got.status, 400, "{scopes}: {}", got.text);
        assert_eq!(
            got.json()["details"][0]["path"],
            "/body/scopes",
            "{}",
            got.text
        );
    }
    assert!(
        env.scan_all().await.is_empty(),
        "a refused create wrote something"
    );
}

#[tokio::test]
async fn tokens_stored_before_scopes_keep_full_authority() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    // seed_pat stores no `scopes` attribute, as every item written before scopes existed.
    let token = seed_pat(&env, "carol", &secret).await;
    let items = env.scan_all().await;
    assert!(
        items.iter().all(|i| !i.contains_key("scopes")),
        "seeded with scopes"
    );

    let legacy = env.app.config.scopes.legacy();
    let listed = answer(
        list_app_tokens(
            &env.app,
            request(&with_pat(event("list-app-tokens.json"), &secret)),
        )
        .await,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["tokens"][0]["scopes"], json!(legacy));
    let made = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &secret),
        json!(["repo:admin"]),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let refused = quay_create(
        &env,
        with_pat(event("create-app-token.json"), &secret),
        json!(["super:user"]),
    )
    .await;
    assert_forbidden_quay(&refused, "super:user");

    let response = authorize(&env.app, authorizer_request(Some(&bearer(&secret))))
        .await
        .unwrap();
    assert!(response.is_authorized);
    assert_eq!(
        response.context["scopes"],
        shared::tokens::scopes::join(&legacy)
    );

    let revoked = revoke_app_token(
        &env.app,
        request(&with_pat(
            with_path_parameter(
                event("revoke-app-token.json"),
                "token_uuid",
                &token.uuid.to_string(),
            ),
            &secret,
        )),
    )
    .await;
    assert_eq!(answer(revoked).status, 204);
}

#[tokio::test]
async fn the_authorizer_enforces_route_scopes_with_one_get_item() {
    let env = TestEnv::with_config(&[
        ("TOKEN_SCOPES", "reports:read"),
        (
            "AUTHORIZER_ROUTE_SCOPES",
            r#"{"GET /reports": "reports:read repo:read", "POST /repos": ["repo:write"]}"#,
        ),
    ])
    .await;
    let (_, reader) = scoped(&env, "alice", &["repo:read"]).await;
    let (_, writer) = scoped(&env, "alice", &["repo:write"]).await;
    let at = |route: &str, secret: &Secret| {
        let mut request = authorizer_request(Some(&bearer(secret)));
        request.route_key = Some(route.to_owned());
        request
    };
    for (route, secret, allowed) in [
        ("GET /reports", &reader, true),
        ("POST /repos", &reader, false),
        ("POST /repos", &writer, true),
        ("GET /reports", &writer, false),
        ("GET /unmapped", &reader, true),
    ] {
        env.requests.reset();
        let response = authorize(&env.app, at(route, secret))
            .await
            .expect("a decision");
        assert_eq!(response.is_authorized, allowed, "{route}");
        if allowed {
            assert_eq!(
                response.context["scopes"],
                if std::ptr::eq(secret, &reader) {
                    "repo:read"
                } else {
                    "repo:write"
                }
            );
        } else {
            assert_eq!(response.context, json!({}));
        }
        assert_eq!(
            env.requests.get("GetItem"),
            1,
            "{route}: {:?}",
            env.requests.snapshot()
        );
        assert_eq!(env.requests.get("Query") + env.requests.get("Scan"), 0);
    }
}
