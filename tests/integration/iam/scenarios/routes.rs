//! The routes: creates, lists, reads, revokes, the authorizer, and rotations.

use super::*;

pub(super) async fn routes(rig: &mut Rig) {
    use shared::{logs, quay, unleash};
    let secret = Secret::generate().unwrap();
    let caller = rig
        .token("alice", &secret, "caller", Duration::days(30))
        .await;
    let expires = (Utc::now() + Duration::days(30)).format("%Y-%m-%dT%H:%M:%S%.3fZ");

    // Create, as the shipped event (a session) and as a PAT; then a full cap that a recount frees.
    let app = rig.app("create-app-token");
    status(
        quay::create_app_token(&app, request(&event("create-app-token.json"))).await,
        201,
        "create",
    );
    status(
        quay::create_app_token(&app, request(&pat_caller("create-app-token.json", &secret))).await,
        201,
        "create by PAT",
    );
    rig.token(
        "carol",
        &Secret::generate().unwrap(),
        "old",
        -Duration::hours(1),
    )
    .await;
    let mut capped = app.clone();
    capped.config.max_tokens_per_user = 1;
    status(
        quay::create_app_token(&capped, request(&session("create-app-token.json", "carol"))).await,
        201,
        "create at a stale cap",
    );
    rig.reached(
        "create-app-token",
        "dynamodb:Query",
        "",
        "create at a stale cap (recount)",
    );

    // Unleash create: the event, the same description again (409), a description held only by
    // an expired token (the title count re-read).
    let app = rig.app("create-pat");
    let body = json!({"description": "deploy bot", "expiresAt": expires.to_string()}).to_string();
    let create = || request(&with_body(session("create-pat.json", "dave"), &body));
    status(unleash::create_pat(&app, create()).await, 201, "create-pat");
    status(
        unleash::create_pat(&app, create()).await,
        409,
        "create-pat again",
    );
    rig.token(
        "erin",
        &Secret::generate().unwrap(),
        "deploy bot",
        -Duration::hours(1),
    )
    .await;
    status(
        unleash::create_pat(
            &app,
            request(&with_body(session("create-pat.json", "erin"), &body)),
        )
        .await,
        201,
        "create-pat over an expired holder",
    );
    rig.reached(
        "create-pat",
        "dynamodb:GetItem",
        "",
        "a title held by an expired token",
    );

    let app = rig.app("list-app-tokens");
    status(
        quay::list_app_tokens(&app, request(&event("list-app-tokens.json"))).await,
        200,
        "list",
    );
    status(
        quay::list_app_tokens(&app, request(&pat_caller("list-app-tokens.json", &secret))).await,
        200,
        "list by PAT",
    );
    let app = rig.app("list-pats");
    status(
        unleash::list_pats(&app, request(&pat_caller("list-pats.json", &secret))).await,
        200,
        "list-pats",
    );
    let app = rig.app("list-user-logs");
    status(
        logs::list_user_logs(&app, request(&event("list-user-logs.json"))).await,
        200,
        "logs",
    );
    status(
        logs::list_user_logs(&app, request(&pat_caller("list-user-logs.json", &secret))).await,
        200,
        "logs by PAT",
    );

    let app = rig.app("get-app-token");
    let get = with_path_parameter(
        pat_caller("get-app-token.json", &secret),
        "token_uuid",
        &caller.uuid.to_string(),
    );
    status(quay::get_app_token(&app, request(&get)).await, 200, "get");

    // Revoke a live token by a PAT caller, then one whose owner's counter is found too low.
    let app = rig.app("revoke-app-token");
    let target = rig
        .token(
            "alice",
            &Secret::generate().unwrap(),
            "doomed",
            Duration::days(1),
        )
        .await;
    let revoke = |e: Value, uuid: &uuid::Uuid| {
        request(&with_path_parameter(e, "token_uuid", &uuid.to_string()))
    };
    status(
        quay::revoke_app_token(
            &app,
            revoke(pat_caller("revoke-app-token.json", &secret), &target.uuid),
        )
        .await,
        204,
        "revoke",
    );
    let target = rig
        .token(
            "frank",
            &Secret::generate().unwrap(),
            "doomed",
            Duration::days(1),
        )
        .await;
    rig.zero_counter("frank").await;
    status(
        quay::revoke_app_token(
            &app,
            revoke(session("revoke-app-token.json", "frank"), &target.uuid),
        )
        .await,
        204,
        "revoke, counter at zero",
    );
    rig.reached(
        "revoke-app-token",
        "dynamodb:Query",
        "",
        "revoke with the counter at zero",
    );

    let app = rig.app("delete-pat");
    let target = rig
        .token(
            "gina",
            &Secret::generate().unwrap(),
            "doomed",
            Duration::days(1),
        )
        .await;
    let delete = with_path_parameter(
        session("delete-pat.json", "gina"),
        "id",
        &target.number.to_string(),
    );
    status(
        unleash::delete_pat(&app, request(&delete)).await,
        200,
        "delete-pat",
    );
    rig.reached(
        "delete-pat",
        "dynamodb:Query",
        "/index/by_number",
        "delete by id",
    );

    // The authorizer: a PAT allowed, its use recorded (the throttled last-used write).
    let app = rig.app("authorizer");
    let used = Secret::generate().unwrap();
    rig.token("hank", &used, "api", Duration::days(1)).await;
    let decided =
        shared::authorizer::authorize(&app, authorizer_request(Some(&bearer(&used)))).await;
    assert!(
        decided.expect("a decision").is_authorized,
        "the PAT is allowed"
    );
    rig.reached("authorizer", "dynamodb:UpdateItem", "", "a PAT's last use");
}

pub(super) async fn rotations(rig: &mut Rig) {
    use shared::rotation::{rotate_app_token, rotate_pat, rotate_self};
    // `None`: no grace, the superseded secret dropped at once.
    let grace = |e: Value, g: Option<&str>| {
        let body = g.map_or(json!({}), |g| json!({ "grace": g }));
        with_body(e, &body.to_string())
    };

    // By uuid: with a grace, then more than the kept superseded secrets (the oldest's lookup
    // record deleted in the transaction), the last with none.
    let app = rig.app("rotate-app-token");
    let token = rig
        .token(
            "ivan",
            &Secret::generate().unwrap(),
            "rotated",
            Duration::days(1),
        )
        .await;
    let by_uuid = with_path_parameter(
        session("rotate-app-token.json", "ivan"),
        "token_uuid",
        &token.uuid.to_string(),
    );
    let graces = std::iter::repeat_n(Some("1h"), shared::store::MAX_SUPERSEDED).chain([None]);
    for g in graces {
        status(
            rotate_app_token(&app, request(&grace(by_uuid.clone(), g))).await,
            200,
            "rotate-app-token",
        );
    }
    rig.reached(
        "rotate-app-token",
        "dynamodb:DeleteItem",
        "",
        "more rotations than superseded secrets kept",
    );

    let app = rig.app("rotate-pat");
    let token = rig
        .token(
            "judy",
            &Secret::generate().unwrap(),
            "rotated",
            Duration::days(1),
        )
        .await;
    let by_id = with_path_parameter(
        session("rotate-pat.json", "judy"),
        "id",
        &token.number.to_string(),
    );
    for g in [Some("1h"), None] {
        status(
            rotate_pat(&app, request(&grace(by_id.clone(), g))).await,
            200,
            "rotate-pat",
        );
    }

    // A token rotates itself, then its superseded secret comes back: the token is revoked.
    let app = rig.app("rotate-self");
    let first = Secret::generate().unwrap();
    let kim = rig.token("kim", &first, "ci", Duration::days(1)).await;
    let rotated = status(
        rotate_self(
            &app,
            request(&grace(pat_caller("rotate-self.json", &first), None)),
        )
        .await,
        200,
        "rotate-self",
    );
    let second = secret_at(&rotated, "/token/token_code");
    status(
        rotate_self(
            &app,
            request(&grace(pat_caller("rotate-self.json", &second), Some("1h"))),
        )
        .await,
        200,
        "rotate-self with grace",
    );
    status(
        rotate_self(&app, request(&pat_caller("rotate-self.json", &first))).await,
        401,
        "reuse",
    );
    let gone = rig
        .env
        .app
        .store
        .get_token("kim", &kim.uuid)
        .await
        .expect("read");
    assert!(gone.is_none(), "reuse revoked the token");
}
