//! Item 5's operations beyond the routes (`requests.rs` counts those and writes the section):
//! the authorizer, on the routes' table; the scheduled cleanup, the expiry notifications, and
//! the leak reports (GitHub's, revocation by value), each on a table of its own.

use crate::cleanup::{seed_population, wait_for_index, Population};
use crate::requests::Counter;
use crate::support::{event, fresh_env, request, seed_many, seed_one, Env};
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::authorizer::authorize;
use shared::tokens::Secret;
use shared::App;

pub async fn count(counter: &mut Counter, env: &Env) -> Result<(), String> {
    let app = &env.app;
    // authorize
    let authorizer = App::new(app.store.clone(), app.config.clone(), None);
    let (_, secret) = seed_one(&app.store, "alice", Duration::days(1)).await?;
    let with_header = |value: String| -> Result<ApiGatewayV2CustomAuthorizerV2Request, String> {
        let mut e = event("authorizer.json");
        e["headers"]["authorization"] = value.into();
        serde_json::from_value(e).map_err(|e| e.to_string())
    };
    let accept = with_header(format!("Bearer {}", secret.expose()))?;
    for (operation, minimum, why) in [
        (
            "authorize, first use in the throttle window",
            2,
            "one strongly consistent GetItem of the lookup record + one conditional \
             TransactWriteItems of `last used` on the lookup record and the token",
        ),
        (
            "authorize, again within the window",
            1,
            "the GetItem only: a revoked token must fail on its next request, so nothing is cached",
        ),
    ] {
        let call = authorize(&authorizer, accept.clone());
        let answer = counter.row(env, operation, minimum, why, call).await?;
        if !answer.map_err(|e| e.to_string())?.is_authorized {
            return Err(format!("{operation}: denied"));
        }
    }
    // The same token under the deployer's scope rules (AUTHORIZER_ROUTE_SCOPES): the lookup
    // record carries the scopes, so a rule costs no request.
    let mut scoped = authorizer.clone();
    scoped.config.scopes = shared::tokens::scopes::ScopeSettings::parse(
        None,
        None,
        Some(r#"{"GET /reports": "repo:read", "DELETE /reports": "super:user"}"#),
    )
    .map_err(|(_, e)| e)?;
    for (route, allowed) in [("GET /reports", true), ("DELETE /reports", false)] {
        let mut request = accept.clone();
        request.route_key = Some(route.into());
        let verdict = if allowed { "holds" } else { "lacks" };
        let operation =
            format!("authorize under a route scope rule (the token {verdict} the scope)");
        let why = "the GetItem only: the lookup record carries the token's scopes";
        let call = authorize(&scoped, request);
        let answer = counter.row(env, operation, 1, why, call).await?;
        if answer.map_err(|e| e.to_string())?.is_authorized != allowed {
            return Err(format!("{route}: expected allowed = {allowed}"));
        }
    }
    let mut text = secret.expose().to_owned();
    let last = if text.ends_with('A') { "B" } else { "A" };
    text.replace_range(text.len() - 1.., last);
    let call = authorize(&authorizer, with_header(format!("Bearer {text}"))?);
    let why = "prefix and CRC32 are checked in memory";
    let answer = counter
        .row(env, "authorize, malformed token", 0, why, call)
        .await?;
    if answer.map_err(|e| e.to_string())?.is_authorized {
        return Err("a malformed token was allowed".into());
    }

    // cleanup per 1,000 expired
    let sweep = counter.metered(fresh_env(&[]).await);
    harness::dynamodb_local::progress("bench: requests: seeding 1,000 expired tokens");
    let population = Population::new(1000, 0, Utc::now());
    seed_population(&sweep, &population, 8).await?;
    wait_for_index(&sweep, &population).await?;
    let run = LambdaEvent::new(event("cleanup.json"), Context::default());
    let summary = counter
        .row(
            &sweep,
            format!(
                "cleanup per 1,000 expired (due over {} days' buckets)",
                population.expired_days
            ),
            shared::cleanup::LOOKBACK_DAYS as u64 + 1 + 1_000,
            format!(
                "one Query per day bucket the sweep looks in (today and {} days back; the tokens \
                 of 1,000, about 400 KB, fit one 1 MB page) + one TransactWriteItems per token \
                 (its item, lookup record and title count go together, so no stop splits them)",
                shared::cleanup::LOOKBACK_DAYS
            ),
            shared::cleanup::cleanup(&sweep.app, run),
        )
        .await?
        .map_err(|e| e.to_string())?;
    if summary["deleted"] != 1000 {
        return Err(format!("cleanup of 1,000 expired: {summary}"));
    }
    sweep.drop_table().await;

    // expiry notifications: 100 users with one token each expiring in 3 days, on moto
    let notices = counter.metered(fresh_env(&[]).await);
    let now = Utc::now();
    let users: Vec<String> = (0..100).map(|i| format!("notice-{i}")).collect();
    seed_many(&notices.app.store, &users, 1, Duration::days(3), None).await?;
    let moto = harness::moto::Moto::shared();
    let bus_name = format!("bench-{}", std::process::id());
    moto.bus_to_queue(&bus_name, &format!("{bus_name}-queue"))
        .await?;
    let bus = shared::events::EventBus::new(moto.eventbridge(), bus_name);
    // The two windows, (now, now + 1 d] and (now + 1 d, now + 7 d], touch 2 + 7 day buckets.
    let buckets = 9;
    let report = counter
        .row(
            &notices,
            "expiry notifications per 100 users' tokens expiring within 7 days",
            buckets + 1 + 100 + 100 + 100,
            "one Query per day bucket of the sweep index the two windows touch, one \
             consistent BatchGetItem of the tokens under the claims, one PutItem claim per user, \
             one UpdateItem marker per token, one DeleteItem per claim released at the end of \
             the run (PutEvents, 10 events a call, goes to EventBridge)",
            shared::notify::notify_at(&notices.app, &bus, now, &|| false),
        )
        .await?
        .map_err(|e| e.to_string())?;
    if report.announced != 100 {
        return Err(format!("expiry notifications of 100 tokens: {report:?}"));
    }
    notices.drop_table().await;

    // leaked tokens: a live token reported by GitHub (signed with the test key, whose document
    // a loopback server publishes; the key fetch is HTTP, not DynamoDB), then revocation by
    // value of a live token, an unknown well-formed one and a malformed string.
    let leaks = counter.metered(fresh_env(&[]).await);
    let signer = harness::github::GithubSigner::test_key();
    let document = harness::github::GithubSigner::document(&[&signer]);
    let key_server = harness::oidc::JwksServer::serving(&document).await;
    let keys = shared::leaks::github::GithubKeys::new(&key_server.url, std::time::Duration::ZERO)
        .map_err(|e| e.to_string())?;
    let leaky = ["leaky".to_owned()];
    let live: Vec<Secret> = seed_many(&leaks.app.store, &leaky, 2, Duration::days(1), None)
        .await?
        .into_iter()
        .map(|(_, secret)| secret)
        .collect();
    let body = json!([{"token": live[0].expose(), "type": "token_service_pat",
        "url": "https://github.com/octo/repo/blob/main/.env", "source": "content"}])
    .to_string();
    let mut report = event("secret-scanning-github.json");
    report["body"] = body.clone().into();
    report["headers"][shared::leaks::github::KEY_ID_HEADER] = signer.key_id.clone().into();
    report["headers"][shared::leaks::github::SIGNATURE_HEADER] =
        signer.sign(body.as_bytes()).into();
    counter
        .route(
            &leaks,
            ("leak report (GitHub, one live token)", 200),
            3,
            "GetItem of the secret's lookup record, GetItem of its token (the revoke's \
             condition), one TransactWriteItems: token, every lookup record, counter, log \
             entry (a text failing the prefix or CRC costs none)",
            shared::leaks::github::report(&leaks.app, &bus, &keys, request(&report)),
        )
        .await?;
    let unknown = Secret::generate().map_err(|e| e.to_string())?;
    let mut revoke = event("revoke-credentials.json");
    revoke["body"] = json!({"credentials": [live[1].expose(), unknown.expose(), "not-a-token"]})
        .to_string()
        .into();
    counter
        .route(
            &leaks,
            (
                "revoke by value (one live, one unknown, one malformed)",
                202,
            ),
            4,
            "the live one as a leak report (3); the unknown one a GetItem that finds nothing; \
             the malformed one none",
            shared::leaks::revoke_credentials(&leaks.app, &bus, request(&revoke)),
        )
        .await?;
    leaks.drop_table().await;
    Ok(())
}
