//! Who may rotate what (issue 31): a rotation hands its caller the target's new secret, so the
//! caller must be able to grant every scope the target holds; `self/rotate` needs `user:admin`
//! or `self_rotate`, and without `user:admin` stays within the token's lifetime at creation; a
//! secret in its grace manages nothing; a later rotation ends earlier graces, and no grace
//! outlives the token's new expiry.

use crate::authorizer::authorizer_request;
use crate::route_auth::with_authorization;
use crate::support::*;
use chrono::{DateTime, Duration, Utc};
use harness::events::with_path_parameter;
use serde_json::{json, Value};
use shared::authorizer::Decision;
use shared::quay::{create_app_token, list_app_tokens};
use shared::rotation::{rotate_app_token, rotate_pat, rotate_self};
use shared::store::{Audit, Rotated, Rotation};
use shared::tokens::Secret;
use shared::unleash::list_pats;
use std::collections::BTreeMap;
use uuid::Uuid;

struct Issued {
    uuid: Uuid,
    number: u64,
    secret: Secret,
}

async fn issue(env: &TestEnv, user: &str, scopes: &[&str], lifetime: Duration) -> Issued {
    let issued = issue_token(env, user, scopes, lifetime).await;
    Issued {
        uuid: issued.token.uuid,
        number: issued.token.number,
        secret: issued.secret,
    }
}

fn bearer(secret: &Secret) -> String {
    format!("Bearer {}", secret.expose())
}

fn session(mut event: Value, user: &str, scopes: &str) -> Value {
    event["requestContext"]["authorizer"] =
        json!({"lambda": {"user_id": user, "auth": "jwt", "scopes": scopes}});
    event
}

fn quay_event(target: &Uuid, body: Value) -> Value {
    let e = with_path_parameter(
        event("rotate-app-token.json"),
        "token_uuid",
        &target.to_string(),
    );
    with_body(e, &body.to_string())
}

fn unleash_event(number: u64) -> Value {
    with_body(
        with_path_parameter(event("rotate-pat.json"), "id", &number.to_string()),
        "{}",
    )
}

async fn quay(env: &TestEnv, event: Value) -> Answer {
    answer(rotate_app_token(&env.app, request(&event)).await)
}

async fn itself(env: &TestEnv, secret: &Secret, body: Value) -> Answer {
    let e = with_body(
        with_authorization(event("rotate-self.json"), Some(&bearer(secret))),
        &body.to_string(),
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

fn expiry(answer: &Answer) -> DateTime<Utc> {
    rfc2822(&answer.json()["token"]["expiration"])
}

async fn works(env: &TestEnv, secret: &Secret, at: DateTime<Utc>) -> Result<(), &'static str> {
    let request = authorizer_request(Some(&bearer(secret)));
    match env.app.decide(&request.headers, at).await {
        Decision::Allow(_) => Ok(()),
        Decision::Deny(d) | Decision::Fail(d) => Err(d.reason.code()),
    }
}

/// Every item of the table, each with its attributes in order, but `last_used_ms` (written by a
/// use, which `works` makes).
async fn without_use(env: &TestEnv) -> Vec<String> {
    let mut items: Vec<String> = env
        .scan_all()
        .await
        .into_iter()
        .map(|mut item| {
            item.remove("last_used_ms");
            format!("{:?}", item.into_iter().collect::<BTreeMap<_, _>>())
        })
        .collect();
    items.sort();
    items
}

/// `self/rotate` without `user:admin` at `at`, asking for a year, straight on the store.
async fn rotate_within_lifetime(
    env: &TestEnv,
    user: &str,
    uuid: &Uuid,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    let rotation = Rotation {
        digest: Secret::generate().expect("secret").digest(),
        expires: Some(at + Duration::days(365)),
        grace: Duration::zero(),
        ttl_grace: env.app.config.ttl_grace,
        presented: None,
        within_lifetime: true,
        audit: Audit::system(at),
    };
    match env.app.store.rotate(user, uuid, &rotation).await {
        Ok(Rotated::Yes(token)) => token.expires.expect("an expiry"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_lifetime_bound_is_the_lifetime_at_creation_however_often_it_rotates() {
    let env = TestEnv::new().await;
    let token = issue(&env, "frank", &["self_rotate"], Duration::days(2)).await;
    let created = Utc::now();
    // A rotation a day, each asking for a year: two days from then, every time (a bound
    // recomputed from the last expiry would grow a day a rotation).
    for day in 1..=3 {
        let at = created + Duration::days(day);
        let expires = rotate_within_lifetime(&env, "frank", &token.uuid, at).await;
        assert!(expires <= at + Duration::days(2), "day {day}: {expires}");
        assert!(
            expires >= at + Duration::days(2) - Duration::seconds(5),
            "day {day}: {expires}"
        );
    }

    // A token stored before `lifetime_ms` existed: its first expiry minus its creation.
    let older = issue(&env, "frank", &["self_rotate"], Duration::days(2)).await;
    env.client
        .update_item()
        .table_name(env.table())
        .set_key(Some(shared::store::items::token_key("frank", &older.uuid)))
        .update_expression("REMOVE lifetime_ms")
        .send()
        .await
        .expect("lifetime_ms removed");
    for day in 1..=2 {
        let at = created + Duration::days(day);
        let expires = rotate_within_lifetime(&env, "frank", &older.uuid, at).await;
        assert!(expires <= at + Duration::days(2), "day {day}: {expires}");
    }
}

#[tokio::test]
async fn rotating_a_token_needs_every_scope_it_holds_in_both_dialects() {
    let env = TestEnv::new().await;
    let admin_only = issue(&env, "alice", &["user:admin"], Duration::days(1)).await;
    let wide = issue(
        &env,
        "alice",
        &["repo:admin", "user:admin", "org:admin"],
        Duration::days(1),
    )
    .await;
    let before = without_use(&env).await;

    // A PAT holding only user:admin may not receive a repo:admin org:admin secret.
    let by_pat = |target: &Uuid| {
        with_authorization(
            quay_event(target, json!({})),
            Some(&bearer(&admin_only.secret)),
        )
    };
    let refused = quay(&env, by_pat(&wide.uuid)).await;
    let detail = assert_quay_error(&refused, 403, "insufficient_scope");
    assert!(detail.contains("repo:admin"), "{detail}");
    let e = with_authorization(
        unleash_event(wide.number),
        Some(&bearer(&admin_only.secret)),
    );
    let refused = answer(rotate_pat(&env.app, request(&e)).await);
    let message = assert_unleash_error(&refused, 403, "NoAccessError");
    assert!(message.contains("repo:admin"), "{message}");
    assert_eq!(
        works(&env, &wide.secret, Utc::now()).await,
        Ok(()),
        "the target is untouched"
    );
    assert_eq!(
        without_use(&env).await,
        before,
        "a refused rotation writes nothing"
    );

    // A token holding all of them may; so may the target itself by uuid.
    let rotated = quay(
        &env,
        with_authorization(
            quay_event(&admin_only.uuid, json!({})),
            Some(&bearer(&wide.secret)),
        ),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);

    // A session without super:user may not receive a super:user secret; one holding it may.
    let root = issue(
        &env,
        "alice",
        &["super:user", "user:admin"],
        Duration::days(1),
    )
    .await;
    let refused = quay(
        &env,
        session(
            quay_event(&root.uuid, json!({})),
            "alice",
            "openid user:admin",
        ),
    )
    .await;
    let detail = assert_quay_error(&refused, 403, "insufficient_scope");
    assert!(detail.contains("super:user"), "{detail}");
    let e = session(unleash_event(root.number), "alice", "openid user:admin");
    let refused = answer(rotate_pat(&env.app, request(&e)).await);
    assert!(assert_unleash_error(&refused, 403, "NoAccessError").contains("super:user"));
    let allowed = quay(
        &env,
        session(
            quay_event(&root.uuid, json!({})),
            "alice",
            "user:admin super:user",
        ),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
}

#[tokio::test]
async fn self_rotate_needs_user_admin_or_self_rotate() {
    let env = TestEnv::new().await;
    for scopes in [
        &[][..],
        &["repo:read"][..],
        &["user:read", "repo:write"][..],
    ] {
        let token = issue(&env, "bob", scopes, Duration::days(1)).await;
        let refused = itself(&env, &token.secret, json!({})).await;
        let detail = assert_quay_error(&refused, 403, "insufficient_scope");
        assert!(
            detail.contains("self_rotate") && detail.contains("user:admin"),
            "{detail}"
        );
        assert_eq!(
            works(&env, &token.secret, Utc::now()).await,
            Ok(()),
            "{scopes:?}: not rotated"
        );
    }
}

#[tokio::test]
async fn self_rotate_without_user_admin_stays_within_the_original_lifetime() {
    let env = TestEnv::new().await;
    let token = issue(
        &env,
        "carol",
        &["repo:read", "self_rotate"],
        Duration::days(2),
    )
    .await;
    let far = (Utc::now() + Duration::days(300))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut secret = token.secret;
    // However often it rotates, and whatever it asks, the expiry stays within 2 days of now.
    for body in [
        json!({"expiration": far}),
        json!({}),
        json!({"expiration": far}),
    ] {
        let started = Utc::now();
        let rotated = itself(&env, &secret, body).await;
        assert_eq!(rotated.status, 200, "{}", rotated.text);
        let expires = expiry(&rotated);
        assert!(
            expires <= Utc::now() + Duration::days(2),
            "{expires} is past the lifetime"
        );
        assert!(
            expires >= started + Duration::days(2) - Duration::seconds(5),
            "{expires}"
        );
        assert_eq!(
            rotated.json()["token"]["scopes"],
            json!(["repo:read", "self_rotate"])
        );
        secret = new_secret(&rotated, "/token/token_code");
    }

    // user:admin is not bound by it.
    let admin = issue(&env, "carol", &["user:admin"], Duration::days(2)).await;
    let rotated = itself(&env, &admin.secret, json!({"expiration": far})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert!(expiry(&rotated) > Utc::now() + Duration::days(299));
}

#[tokio::test]
async fn a_secret_in_its_grace_works_elsewhere_but_manages_nothing() {
    let env = TestEnv::new().await;
    let token = issue(
        &env,
        "dave",
        &["user:admin", "repo:read"],
        Duration::days(3),
    )
    .await;
    let rotated = itself(&env, &token.secret, json!({"grace": "1h"})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = new_secret(&rotated, "/token/token_code");
    let old = Some(bearer(&token.secret));
    assert_eq!(
        works(&env, &token.secret, Utc::now()).await,
        Ok(()),
        "in grace: other routes"
    );

    let superseded = |detail: String| assert!(detail.contains("superseded"), "{detail}");
    // Rotating its own token by uuid would kill the new secret.
    let got = quay(
        &env,
        with_authorization(quay_event(&token.uuid, json!({})), old.as_deref()),
    )
    .await;
    superseded(assert_quay_error(&got, 401, "invalid_token"));
    let got = itself(&env, &token.secret, json!({})).await;
    superseded(assert_quay_error(&got, 401, "invalid_token"));
    // Minting or listing tokens.
    let e = with_body(
        with_authorization(event("create-app-token.json"), old.as_deref()),
        r#"{"title": "minted"}"#,
    );
    superseded(assert_quay_error(
        &answer(create_app_token(&env.app, request(&e)).await),
        401,
        "invalid_token",
    ));
    let e = with_authorization(event("list-app-tokens.json"), old.as_deref());
    superseded(assert_quay_error(
        &answer(list_app_tokens(&env.app, request(&e)).await),
        401,
        "invalid_token",
    ));
    let e = with_authorization(event("list-pats.json"), old.as_deref());
    superseded(assert_unleash_error(
        &answer(list_pats(&env.app, request(&e)).await),
        401,
        "AuthenticationRequired",
    ));

    // Nothing changed: the new secret still works and the token was not minted or rotated.
    assert_eq!(works(&env, &new, Utc::now()).await, Ok(()));
    let mut list = with_authorization(event("list-app-tokens.json"), Some(&bearer(&new)));
    list["rawQueryString"] = json!("");
    list["queryStringParameters"] = json!({});
    let listed = answer(list_app_tokens(&env.app, request(&list)).await);
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.json()["tokens"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );

    // A gateway authorizer's context for such a secret is refused the same way.
    let mut e = event("list-app-tokens.json");
    e["requestContext"]["authorizer"] = json!({"lambda": {
        "user_id": "dave", "auth": "pat", "token_uuid": token.uuid.to_string(),
        "scopes": "user:admin", "expires": "", "grace_until": "4102444800"
    }});
    superseded(assert_quay_error(
        &answer(list_app_tokens(&env.app, request(&e)).await),
        401,
        "invalid_token",
    ));
}

#[tokio::test]
async fn a_later_rotation_ends_earlier_graces_and_no_grace_outlives_the_new_expiry() {
    let env = TestEnv::new().await;
    let first = issue(&env, "erin", &["repo:read"], Duration::days(3)).await;
    let as_erin = |body: Value| session(quay_event(&first.uuid, body), "erin", "openid user:admin");

    let rotated = quay(&env, as_erin(json!({"grace": "1h"}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = new_secret(&rotated, "/token/token_code");
    let now = Utc::now();
    assert_eq!(
        works(&env, &first.secret, now).await,
        Ok(()),
        "first in its grace"
    );

    // A rotation with grace 0 ends the first secret's grace at once, and the second's.
    let rotated = quay(&env, as_erin(json!({"grace": "0s"}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let third = new_secret(&rotated, "/token/token_code");
    let now = Utc::now() + Duration::milliseconds(1);
    assert_eq!(works(&env, &first.secret, now).await, Err("superseded"));
    assert_eq!(works(&env, &second, now).await, Err("superseded"));
    assert_eq!(works(&env, &third, now).await, Ok(()));

    // Grace 7 days, new expiry in 1 hour: the old secret ends with the token's new expiry.
    let soon = (Utc::now() + Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let rotated = quay(&env, as_erin(json!({"grace": "7d", "expiration": soon}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let fourth = new_secret(&rotated, "/token/token_code");
    let expires = expiry(&rotated);
    assert_eq!(
        works(&env, &third, expires - Duration::seconds(1)).await,
        Ok(())
    );
    assert!(works(&env, &third, expires + Duration::seconds(1))
        .await
        .is_err());
    assert!(works(&env, &fourth, expires + Duration::seconds(1))
        .await
        .is_err());
    // And a rotation within the third's grace (grace 1h) ends it: only the newest two remain.
    let rotated = quay(&env, as_erin(json!({"grace": "1h"}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let now = Utc::now() + Duration::milliseconds(1);
    assert_eq!(works(&env, &third, now).await, Err("superseded"));
    assert_eq!(
        works(&env, &fourth, now).await,
        Ok(()),
        "the replaced secret in its grace"
    );
}
