//! The scheduled functions (cleanup, notifications) and the leak endpoints.

use super::*;

pub(super) async fn scheduled_runs(rig: &mut Rig) {
    // Cleanup: a due token revoked by someone else between the sweep's Query and its removal
    // (the race lost: the token read again), then a due token removed.
    let app = rig.app("cleanup");
    let raced = rig
        .token(
            "lena",
            &Secret::generate().unwrap(),
            "old",
            -Duration::days(3),
        )
        .await;
    rig.indexed("lena", 1).await;
    let table = rig.env.table().to_owned();
    rig.recorder("cleanup")
        .before_next("TransactWriteItems", move || {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let (client, _) = DynamoLocal::shared().client().await;
                    Store::new(client, table)
                        .revoke("lena", &raced.uuid, &Audit::system(Utc::now()))
                        .await
                        .expect("the other writer's revoke");
                });
            })
            .join()
            .expect("the other writer");
        });
    shared::cleanup::cleanup(&app, scheduled("cleanup.json"))
        .await
        .expect("cleanup (race lost)");
    rig.reached(
        "cleanup",
        "dynamodb:GetItem",
        "",
        "a removal that lost a race",
    );
    rig.token(
        "mona",
        &Secret::generate().unwrap(),
        "old",
        -Duration::days(3),
    )
    .await;
    rig.indexed("mona", 1).await;
    let report = shared::cleanup::cleanup(&app, scheduled("cleanup.json"))
        .await
        .expect("cleanup");
    assert!(report["deleted"].as_u64() >= Some(1), "{report}");

    // Notifications: a token expiring within a day is announced on the bus and marked.
    let app = rig.app("notify-expiring");
    let bus = rig.events("notify-expiring");
    rig.token(
        "nina",
        &Secret::generate().unwrap(),
        "soon",
        Duration::hours(12),
    )
    .await;
    rig.indexed("nina", 1).await;
    let report = shared::notify::notify_expiring(&app, &bus, scheduled("notify-expiring.json"))
        .await
        .expect("notify");
    rig.reached(
        "notify-expiring",
        "events:PutEvents",
        &rig.bus.clone(),
        &format!("announce ({report})"),
    );
    rig.reached("notify-expiring", "dynamodb:BatchGetItem", "", "announce");
}

pub(super) async fn leaks(rig: &mut Rig) {
    // The shipped report names a live token (its owner's counter too low: the recount runs).
    let github = event("secret-scanning-github.json");
    let body = github["body"].as_str().expect("body").to_owned();
    let reported: Value = serde_json::from_str(&body).expect("a JSON report");
    let leaked = Secret::parse(reported[0]["token"].as_str().unwrap()).expect("a PAT");
    let signer = GithubSigner::generate("iam-key");
    let server = JwksServer::serving(&GithubSigner::document(&[&signer])).await;
    let keys = GithubKeys::new(&server.url, std::time::Duration::ZERO).expect("loopback URL");
    let mut signed = github.clone();
    signed["headers"][KEY_ID_HEADER] = "iam-key".into();
    signed["headers"][SIGNATURE_HEADER] = signer.sign(body.as_bytes()).into();

    let app = rig.app("secret-scanning-github");
    let bus = rig.events("secret-scanning-github");
    rig.token("olga", &leaked, "leaked", Duration::days(30))
        .await;
    rig.zero_counter("olga").await;
    let answer = shared::leaks::github::report(&app, &bus, &keys, request(&signed)).await;
    status(answer, 200, "github report");
    rig.reached(
        "secret-scanning-github",
        "events:PutEvents",
        &rig.bus.clone(),
        "a live token reported",
    );
    rig.reached(
        "secret-scanning-github",
        "dynamodb:Query",
        "",
        "its owner's counter recounted",
    );

    let app = rig.app("revoke-credentials");
    let bus = rig.events("revoke-credentials");
    rig.token("pete", &leaked, "leaked", Duration::days(30))
        .await;
    rig.zero_counter("pete").await;
    let response =
        shared::leaks::revoke_credentials(&app, &bus, request(&event("revoke-credentials.json")))
            .await;
    status(response, 202, "revoke-credentials");
    rig.reached(
        "revoke-credentials",
        "events:PutEvents",
        &rig.bus.clone(),
        "a live token named",
    );
    rig.reached(
        "revoke-credentials",
        "dynamodb:Query",
        "",
        "its owner's counter recounted",
    );
}
