//! Item 5: DynamoDB requests per operation, counted by the client while the real handlers run
//! in-process against DynamoDB Local, next to the fewest the key design allows; and their
//! on-demand request units (`units.rs`), which the cost step (item 10) prices.

use crate::cleanup::{seed_population, wait_for_index, Population};
use crate::support::{
    as_user, conditions, create_pat_body, event, fresh_env, request, seed_get_event_token,
    seed_many, seed_token, with_path_parameter, Env, Options, Section, Verdict,
};
use crate::units::{units, Table, UnitMeter, Units};
use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::authorizer::authorize;
use shared::store::Store;
use shared::tokens::Secret;
use shared::App;
use std::collections::BTreeMap;
use std::future::Future;
use uuid::Uuid;

struct Counted {
    operation: String,
    counts: Counts,
    minimum: u64,
    why: String,
}

/// What one operation sent: requests by DynamoDB operation, and their request units.
struct Counts {
    requests: BTreeMap<String, u64>,
    units: Units,
}

async fn count<T>(
    env: &Env,
    meter: &UnitMeter,
    call: impl Future<Output = T>,
) -> Result<(T, Counts), String> {
    let before = Table::read(&env.client, env.table()).await?;
    env.requests.reset();
    meter.reset();
    let out = call.await;
    let requests = env.requests.snapshot();
    let after = Table::read(&env.client, env.table()).await?;
    let units = units(meter, &before, &after);
    Ok((out, Counts { requests, units }))
}

/// `env` with its app's client also recording what `meter` needs (the table reads of `count`
/// go through `env.client`, which it does not see).
fn metered(mut env: Env, meter: &UnitMeter) -> Env {
    let table = env.table().to_owned();
    env.app.store = Store::new(meter.attach(&env.client), table);
    env
}

fn status(response: &lambda_http::Response<lambda_http::Body>) -> u16 {
    response.status().as_u16()
}

pub async fn run(_options: &Options) -> Result<Section, String> {
    let mut section = Section::new(5, "DynamoDB requests per operation");
    conditions(&mut section);
    let meter = UnitMeter::default();
    let env = metered(fresh_env(&[]).await, &meter);
    let app = &env.app;
    let mut rows: Vec<Counted> = Vec::new();
    let expect = |what: &str, got: u16, want: u16| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what} answered {got}, expected {want}"))
        }
    };

    // create
    let (r, counts) = count(
        &env,
        &meter,
        shared::quay::create_app_token(
            app,
            request(&as_user(event("create-app-token.json"), "c1")),
        ),
    )
    .await?;
    expect("Quay create", status(&r), 201)?;
    rows.push(Counted {
        operation: "create (Quay)".into(),
        counts,
        minimum: 2,
        why: "UpdateItem issues the Unleash number (a transaction cannot return a new value, and \
              the number is part of the item) + one TransactWriteItems: counter under the cap, \
              token, lookup record"
            .into(),
    });
    let mut create_pat = as_user(event("create-pat.json"), "c2");
    create_pat["body"] = create_pat_body("deploy bot").into();
    let (r, counts) = count(
        &env,
        &meter,
        shared::unleash::create_pat(app, request(&create_pat)),
    )
    .await?;
    expect("Unleash create", status(&r), 201)?;
    rows.push(Counted {
        operation: "create (Unleash, user with < 100 tokens)".into(),
        counts,
        minimum: 3,
        why: "as Quay's, plus one Query of the user's tokens to refuse a description already in \
              use (Unleash's 409). With a description-keyed item in the transaction it would be 2"
            .into(),
    });

    // list, per page
    let users: Vec<String> = ["list-10", "list-100", "list-250"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    harness::dynamodb_local::progress("bench: requests: seeding 360 tokens");
    seed_many(&app.store, &users[..1], 10).await;
    seed_many(&app.store, &users[1..2], 100).await;
    seed_many(&app.store, &users[2..], 250).await;
    for (user, n) in [("list-10", 10u64), ("list-100", 100), ("list-250", 250)] {
        let mut list = as_user(event("list-app-tokens.json"), user);
        list["rawQueryString"] = "".into();
        if let Some(o) = list.as_object_mut() {
            o.remove("queryStringParameters");
        }
        let (r, counts) = count(
            &env,
            &meter,
            shared::quay::list_app_tokens(app, request(&list)),
        )
        .await?;
        expect("Quay list", status(&r), 200)?;
        rows.push(Counted {
            operation: format!("list of {n} (Quay; Unleash's is the same Query)"),
            counts,
            minimum: 1,
            why: format!(
                "one strongly consistent Query per 1 MB page; {n} tokens are about {} KB",
                n * 3 / 10
            ),
        });
    }

    // get
    let get_event = seed_get_event_token(&app.store).await?;
    let (r, counts) = count(
        &env,
        &meter,
        shared::quay::get_app_token(app, request(&get_event)),
    )
    .await?;
    expect("get", status(&r), 200)?;
    rows.push(Counted {
        operation: "get".into(),
        counts,
        minimum: 1,
        why: "one strongly consistent GetItem by (user, uuid)".into(),
    });

    // rotate: the get event's token by uuid, a numbered one by id, a PAT rotating itself
    let (r, counts) = count(
        &env,
        &meter,
        shared::rotation::rotate_app_token(
            app,
            request(&as_user(event("rotate-app-token.json"), "alice")),
        ),
    )
    .await?;
    expect("rotate", status(&r), 200)?;
    rows.push(Counted {
        operation: "rotate (Quay, by uuid)".into(),
        counts,
        minimum: 2,
        why: "GetItem for the current digest, then one TransactWriteItems: the token's new digest \
              (on the condition it is still the one read), the new lookup record, the old one's \
              end of grace"
            .into(),
    });
    let numbered = seed_many(&app.store, &["rot".to_owned()], 1).await;
    let rotate_pat = with_path_parameter(
        as_user(event("rotate-pat.json"), "rot"),
        "id",
        &numbered["rot"][0].number.to_string(),
    );
    let (r, counts) = count(
        &env,
        &meter,
        shared::rotation::rotate_pat(app, request(&rotate_pat)),
    )
    .await?;
    expect("Unleash rotate", status(&r), 200)?;
    rows.push(Counted {
        operation: "rotate (Unleash, by integer id)".into(),
        counts,
        minimum: 2,
        why: "Query of `by_number` (the whole token), then the same one TransactWriteItems".into(),
    });
    let own = Secret::generate().map_err(|e| e.to_string())?;
    seed_token(
        &app.store,
        "self",
        Uuid::new_v4(),
        &own.digest(),
        Some(Utc::now() + Duration::days(1)),
    )
    .await;
    let mut rotate_self = event("rotate-self.json");
    rotate_self["headers"]["authorization"] = format!("Bearer {}", own.expose()).into();
    let (r, counts) = count(
        &env,
        &meter,
        shared::rotation::rotate_self(app, request(&rotate_self)),
    )
    .await?;
    expect("self rotate", status(&r), 200)?;
    rows.push(Counted {
        operation: "rotate itself (a PAT's first use in the window)".into(),
        counts,
        minimum: 4,
        why: "authenticating: GetItem of the lookup record + its `last used` TransactWriteItems; \
              then the rotation's GetItem + TransactWriteItems"
            .into(),
    });

    // the audit log: the entries the calls above wrote, a page
    let (r, counts) = count(
        &env,
        &meter,
        shared::logs::list_user_logs(
            app,
            request(&as_user(event("list-user-logs.json"), "alice")),
        ),
    )
    .await?;
    expect("logs", status(&r), 200)?;
    rows.push(Counted {
        operation: "audit log, one page of 20".into(),
        counts,
        minimum: 1,
        why: "one strongly consistent Query of the user's `LOG#` range, newest first; every \
              change wrote its entry inside its own transaction (no extra request)"
            .into(),
    });

    // revoke
    let (r, counts) = count(
        &env,
        &meter,
        shared::quay::revoke_app_token(
            app,
            request(&as_user(event("revoke-app-token.json"), "alice")),
        ),
    )
    .await?;
    expect("revoke", status(&r), 204)?;
    rows.push(Counted {
        operation: "revoke (Quay)".into(),
        counts,
        minimum: 2,
        why: "GetItem, because the lookup record's key is the secret's digest, which only the \
              token item knows; then one TransactWriteItems deleting both and uncounting"
            .into(),
    });
    let numbered = seed_many(&app.store, &["del".to_owned()], 1).await;
    let number = numbered["del"][0].number;
    let delete = with_path_parameter(
        as_user(event("delete-pat.json"), "del"),
        "id",
        &number.to_string(),
    );
    let (r, counts) = count(
        &env,
        &meter,
        shared::unleash::delete_pat(app, request(&delete)),
    )
    .await?;
    expect("Unleash delete", status(&r), 200)?;
    rows.push(Counted {
        operation: "revoke (Unleash, by integer id)".into(),
        counts,
        minimum: 2,
        why: "Query of the `by_number` index, which projects the secret's digest and the \
              expiry (template.yaml), then the same one TransactWriteItems as Quay's revoke"
            .into(),
    });

    // authorize
    let authorizer = App::new(app.store.clone(), app.config.clone(), None);
    let secret = Secret::generate().map_err(|e| e.to_string())?;
    let in_a_day = Some(Utc::now() + Duration::days(1));
    seed_token(
        &app.store,
        "alice",
        Uuid::new_v4(),
        &secret.digest(),
        in_a_day,
    )
    .await;
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
        let (answer, counts) = count(&env, &meter, authorize(&authorizer, accept.clone())).await?;
        if !answer.map_err(|e| e.to_string())?.is_authorized {
            return Err(format!("{operation}: denied"));
        }
        rows.push(Counted {
            operation: operation.into(),
            counts,
            minimum,
            why: why.into(),
        });
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
        let (answer, counts) = count(&env, &meter, authorize(&scoped, request)).await?;
        if answer.map_err(|e| e.to_string())?.is_authorized != allowed {
            return Err(format!("{route}: expected allowed = {allowed}"));
        }
        let verdict = if allowed { "holds" } else { "lacks" };
        rows.push(Counted {
            operation: format!(
                "authorize under a route scope rule (the token {verdict} the scope)"
            ),
            counts,
            minimum: 1,
            why: "the GetItem only: the lookup record carries the token's scopes".into(),
        });
    }
    let mut text = secret.expose().to_owned();
    let last = if text.ends_with('A') { "B" } else { "A" };
    text.replace_range(text.len() - 1.., last);
    let (answer, counts) = count(
        &env,
        &meter,
        authorize(&authorizer, with_header(format!("Bearer {text}"))?),
    )
    .await?;
    if answer.map_err(|e| e.to_string())?.is_authorized {
        return Err("a malformed token was allowed".into());
    }
    rows.push(Counted {
        operation: "authorize, malformed token".into(),
        counts,
        minimum: 0,
        why: "prefix and CRC32 are checked in memory".into(),
    });

    // cleanup per 1,000 expired
    let sweep = metered(fresh_env(&[]).await, &meter);
    harness::dynamodb_local::progress("bench: requests: seeding 1,000 expired tokens");
    let population = Population::new(1000, 0, Utc::now());
    seed_population(&sweep, &population, 8).await?;
    wait_for_index(&sweep, &population).await?;
    let (summary, counts) = count(
        &sweep,
        &meter,
        shared::cleanup::cleanup(
            &sweep.app,
            LambdaEvent::new(event("cleanup.json"), Context::default()),
        ),
    )
    .await?;
    let summary = summary.map_err(|e| e.to_string())?;
    if summary["deleted"] != 1000 {
        return Err(format!("cleanup of 1,000 expired: {summary}"));
    }
    rows.push(Counted {
        operation: format!(
            "cleanup per 1,000 expired (due over {} days' buckets)",
            population.expired_days
        ),
        counts,
        minimum: shared::cleanup::LOOKBACK_DAYS as u64 + 1 + 1_000,
        why: format!(
            "one Query per day bucket the sweep looks in (today and {} days back; the tokens \
             of 1,000, about 400 KB, fit one 1 MB page) + one TransactWriteItems per token \
             (its item, lookup record and title count go together, so no stop splits them)",
            shared::cleanup::LOOKBACK_DAYS
        ),
    });
    sweep.drop_table().await;

    // expiry notifications: 100 users with one token each expiring in 3 days, on moto
    let notices = metered(fresh_env(&[]).await, &meter);
    let now = Utc::now();
    for i in 0..100 {
        let user = format!("notice-{i}");
        let digest = Secret::generate().map_err(|e| e.to_string())?.digest();
        seed_token(
            &notices.app.store,
            &user,
            Uuid::new_v4(),
            &digest,
            Some(now + Duration::days(3)),
        )
        .await;
    }
    let moto = harness::moto::Moto::shared();
    let bus_name = format!("bench-{}", std::process::id());
    moto.bus_to_queue(&bus_name, &format!("{bus_name}-queue"))
        .await?;
    let bus = shared::events::EventBus::new(moto.eventbridge(), bus_name);
    let (report, counts) = count(
        &notices,
        &meter,
        shared::notify::notify_at(&notices.app, &bus, now, &|| false),
    )
    .await?;
    let report = report.map_err(|e| e.to_string())?;
    if report.announced != 100 {
        return Err(format!("expiry notifications of 100 tokens: {report:?}"));
    }
    // The two windows, (now, now + 1 d] and (now + 1 d, now + 7 d], touch 2 + 7 day buckets.
    let buckets = 9;
    rows.push(Counted {
        operation: "expiry notifications per 100 users' tokens expiring within 7 days".into(),
        counts,
        minimum: buckets + 1 + 100 + 100 + 100,
        why: "one Query per day bucket of the sweep index the two windows touch, one \
              consistent BatchGetItem of the tokens under the claims, one PutItem claim per user, \
              one UpdateItem marker per token, one DeleteItem per claim released at the end of \
              the run (PutEvents, 10 events a call, goes to EventBridge)"
            .into(),
    });
    notices.drop_table().await;

    // leaked tokens: a live token reported by GitHub (signed with the test key, whose document
    // a loopback server publishes; the key fetch is HTTP, not DynamoDB), then revocation by
    // value of a live token, an unknown well-formed one and a malformed string.
    let leaks = metered(fresh_env(&[]).await, &meter);
    let signer = harness::github::GithubSigner::test_key();
    let document = harness::github::GithubSigner::document(&[&signer]);
    let key_server = harness::oidc::JwksServer::serving(&document).await;
    let keys = shared::leaks::github::GithubKeys::new(&key_server.url, std::time::Duration::ZERO)
        .map_err(|e| e.to_string())?;
    let mut live = Vec::new();
    for _ in 0..2 {
        let secret = Secret::generate().map_err(|e| e.to_string())?;
        let expires = Some(now + Duration::days(1));
        seed_token(
            &leaks.app.store,
            "leaky",
            Uuid::new_v4(),
            &secret.digest(),
            expires,
        )
        .await;
        live.push(secret);
    }
    let body = json!([{"token": live[0].expose(), "type": "token_service_pat",
        "url": "https://github.com/octo/repo/blob/main/.env", "source": "content"}])
    .to_string();
    let mut report = event("secret-scanning-github.json");
    report["body"] = body.clone().into();
    report["headers"][shared::leaks::github::KEY_ID_HEADER] = signer.key_id.clone().into();
    report["headers"][shared::leaks::github::SIGNATURE_HEADER] =
        signer.sign(body.as_bytes()).into();
    let (r, counts) = count(
        &leaks,
        &meter,
        shared::leaks::github::report(&leaks.app, &bus, &keys, request(&report)),
    )
    .await?;
    expect("GitHub's report", status(&r), 200)?;
    rows.push(Counted {
        operation: "leak report (GitHub, one live token)".into(),
        counts,
        minimum: 3,
        why: "GetItem of the secret's lookup record, GetItem of its token (the revoke's \
              condition), one TransactWriteItems: token, every lookup record, counter, log \
              entry (a text failing the prefix or CRC costs none)"
            .into(),
    });
    let unknown = Secret::generate().map_err(|e| e.to_string())?;
    let mut revoke = event("revoke-credentials.json");
    revoke["body"] = json!({"credentials": [live[1].expose(), unknown.expose(), "not-a-token"]})
        .to_string()
        .into();
    let (r, counts) = count(
        &leaks,
        &meter,
        shared::leaks::revoke_credentials(&leaks.app, &bus, request(&revoke)),
    )
    .await?;
    expect("revocation by value", status(&r), 202)?;
    rows.push(Counted {
        operation: "revoke by value (one live, one unknown, one malformed)".into(),
        counts,
        minimum: 4,
        why: "the live one as a leak report (3); the unknown one a GetItem that finds nothing; \
              the malformed one none"
            .into(),
    });
    leaks.drop_table().await;

    section.paragraph(
        "Requests counted by the SDK client itself (an interceptor counts every request sent, \
         retries included) while the real handlers (`shared::quay`, `shared::unleash`, \
         `shared::authorizer`, `shared::cleanup`) run in-process against DynamoDB Local, with \
         the default configuration (no `Limit`: DynamoDB's 1 MB pages). *Minimum*: the fewest requests the key \
         design (README, \"The table\") allows for the operation. *RRU* and *WRU*: the \
         on-demand read and write request units DynamoDB would bill for them, counted from each \
         request's items (`benches/lambda/units.rs`): 1 RRU per 4 KB read strongly consistent \
         (half eventually consistent; a Query's items summed, a local index's unprojected \
         attributes read from the table per item), 1 WRU per 1 KB of the larger of an item's \
         sizes before and after, twice in a transaction (condition checks included), and as \
         much again for every index entry written or removed (*indexes*).",
    );
    let mut table = Vec::new();
    let mut data = serde_json::Map::new();
    for row in &rows {
        let total: u64 = row.counts.requests.values().sum();
        let units = row.counts.units;
        let calls = if row.counts.requests.is_empty() {
            "none".to_owned()
        } else {
            row.counts
                .requests
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let ok = total == row.minimum;
        table.push(vec![
            row.operation.clone(),
            calls,
            total.to_string(),
            row.minimum.to_string(),
            crate::support::met(Some(ok)).to_owned(),
            format!("{}", units.read),
            if units.write_indexes > 0.0 {
                format!("{} (indexes {})", units.write(), units.write_indexes)
            } else {
                units.write().to_string()
            },
            row.why.clone(),
        ]);
        let mut figures = units.to_json();
        figures["requests"] = json!(row.counts.requests);
        data.insert(row.operation.clone(), figures);
        section.verdicts.push(Verdict::new(
            format!("requests, {}", row.operation),
            format!("{} (minimum)", row.minimum),
            total.to_string(),
            Some(ok),
        ));
    }
    section.table(
        &[
            "operation",
            "requests",
            "total",
            "minimum",
            "",
            "RRU",
            "WRU",
            "why that minimum",
        ],
        &table,
    );
    section.data = Some(json!({ "operations": data }));
    let over = |prefix: &str| {
        rows.iter().any(|r| {
            r.operation.starts_with(prefix) && r.counts.requests.values().sum::<u64>() > r.minimum
        })
    };
    let mut notes = Vec::new();
    if over("list") || over("cleanup") {
        notes.push(
            "- **Lists and the sweep** read whole 1 MB pages (about 3,000 tokens, or 7,000 \
             index items). More requests than the minimum mean more pages than that, or a \
             `Limit` set with `Store::with_page_size`.",
        );
    }
    if over("revoke (Unleash") {
        notes.push(
            "- **Unleash's revoke by id** read the token again: the table's `by_number` index \
             does not project `digest` and `expires_ms` (a table created before template.yaml \
             did).",
        );
    }
    if !notes.is_empty() {
        section.paragraph(format!(
            "Where a count is above the minimum:\n\n{}",
            notes.join("\n")
        ));
    }
    env.drop_table().await;
    Ok(section)
}
