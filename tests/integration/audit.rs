//! The audit log on DynamoDB Local: every change writes exactly one entry in its own
//! transaction, read back through `GET /api/v1/user/logs` as Quay's `listUserLogs` answers.

use crate::route_auth::with_authorization;
use crate::support::*;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use harness::events::with_path_parameter;
use serde_json::{json, Value};
use shared::logs::list_user_logs;
use shared::quay::{create_app_token, revoke_app_token};
use shared::rotation::{rotate_app_token, rotate_pat, rotate_self};
use shared::store::{Audit, NewToken};
use shared::tokens::Secret;
use shared::unleash::{create_pat, delete_pat};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The shipped event's source IP.
const IP: &str = "203.0.113.10";

fn logs_event(user: &str, query: &[(&str, &str)]) -> Value {
    let mut e = as_user(event("list-user-logs.json"), user);
    let mut parameters = serde_json::Map::new();
    for (name, value) in query {
        parameters.insert((*name).into(), (*value).into());
    }
    e["rawQueryString"] = query
        .iter()
        .map(|(n, v)| format!("{n}={}", v.replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
        .into();
    e["queryStringParameters"] = Value::Object(parameters);
    e
}

async fn logs(env: &TestEnv, user: &str, query: &[(&str, &str)]) -> Answer {
    answer(list_user_logs(&env.app, request(&logs_event(user, query))).await)
}

/// Every entry of `user` within the default range (the last day), following `next_page`.
async fn all_logs(env: &TestEnv, user: &str, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        if let Some(token) = &next {
            q.push(("next_page", token));
        }
        let page = logs(env, user, &q).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        let body = page.json();
        entries.extend(body["logs"].as_array().cloned().unwrap_or_default());
        match body["next_page"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => return (entries, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

fn kinds(entries: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in entries {
        *counts
            .entry(e["kind"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn every_change_leaves_exactly_one_entry_of_its_kind_with_the_callers_ip() {
    let env = TestEnv::new().await;
    let quay = answer(
        create_app_token(
            &env.app,
            request(&as_user(event("create-app-token.json"), "alice")),
        )
        .await,
    );
    assert_eq!(quay.status, 201, "{}", quay.text);
    let uuid = quay.json()["token"]["uuid"].as_str().unwrap().to_owned();
    let secret = Secret::parse(quay.json()["token"]["token_code"].as_str().unwrap()).unwrap();
    let expires = (Utc::now() + Duration::days(5)).to_rfc3339();
    let body = json!({"description": "bot", "expiresAt": expires}).to_string();
    let unleash = answer(
        create_pat(
            &env.app,
            request(&with_body(
                as_user(event("create-pat.json"), "alice"),
                &body,
            )),
        )
        .await,
    );
    assert_eq!(unleash.status, 201, "{}", unleash.text);
    let number = unleash.json()["id"].as_u64().unwrap().to_string();

    let e = with_path_parameter(
        as_user(event("rotate-app-token.json"), "alice"),
        "token_uuid",
        &uuid,
    );
    let rotated = answer(rotate_app_token(&env.app, request(&with_body(e, "{}"))).await);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let current = Secret::parse(rotated.json()["token"]["token_code"].as_str().unwrap()).unwrap();
    let e = with_authorization(
        event("rotate-self.json"),
        Some(&format!("Bearer {}", current.expose())),
    );
    let rotated = answer(rotate_self(&env.app, request(&with_body(e, ""))).await);
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let e = with_path_parameter(as_user(event("rotate-pat.json"), "alice"), "id", &number);
    assert_eq!(
        answer(rotate_pat(&env.app, request(&with_body(e, ""))).await).status,
        200
    );
    let e = with_path_parameter(
        as_user(event("revoke-app-token.json"), "alice"),
        "token_uuid",
        &uuid,
    );
    assert_eq!(
        answer(revoke_app_token(&env.app, request(&e)).await).status,
        204
    );
    let e = with_path_parameter(as_user(event("delete-pat.json"), "alice"), "id", &number);
    assert_eq!(answer(delete_pat(&env.app, request(&e)).await).status, 200);
    // Refused changes write nothing: a second revoke, a bad rotation.
    let e = with_path_parameter(
        as_user(event("revoke-app-token.json"), "alice"),
        "token_uuid",
        &uuid,
    );
    assert_eq!(
        answer(revoke_app_token(&env.app, request(&e)).await).status,
        404
    );

    let (entries, _) = all_logs(&env, "alice", &[]).await;
    assert_eq!(
        kinds(&entries),
        BTreeMap::from([
            ("create_app_specific_token".to_owned(), 2),
            ("revoke_app_specific_token".to_owned(), 2),
            ("rotate_app_specific_token".to_owned(), 3),
        ]),
        "{entries:?}"
    );
    for entry in &entries {
        assert_eq!(entry["ip"], IP, "{entry}");
        assert_eq!(
            entry["performer"],
            json!({"kind": "user", "name": "alice", "is_robot": false})
        );
        rfc2822(&entry["datetime"]);
        let text = entry.to_string();
        assert!(
            !text.contains(secret.expose()) && !text.contains(current.expose()),
            "{text}"
        );
    }
    // The self-rotation was made by the token itself; the others by the session.
    let by_token: Vec<&Value> = entries
        .iter()
        .filter(|e| e["metadata"]["performed_with"] == "token")
        .collect();
    assert_eq!(by_token.len(), 1, "{entries:?}");
    assert_eq!(by_token[0]["metadata"]["performer_token"], uuid.as_str());
    assert_eq!(by_token[0]["metadata"]["app_specific_token"], uuid.as_str());
    let newest = &entries[0];
    assert_eq!(newest["kind"], "revoke_app_specific_token", "newest first");
    assert_eq!(newest["metadata"]["app_specific_token_title"], "bot");
    // The stored entries hold neither a secret nor a digest.
    let digests = [secret.digest().to_hex(), current.digest().to_hex()];
    let stored = env.scan_everything().await;
    let log_items: Vec<String> = stored
        .iter()
        .filter(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("LOG#"))
        })
        .map(|i| format!("{i:?}"))
        .collect();
    assert_eq!(log_items.len(), 7);
    for item in &log_items {
        assert!(
            digests.iter().all(|d| !item.contains(d.as_str())) && !item.contains("pat_"),
            "{item}"
        );
    }
}

#[tokio::test]
async fn cleanup_logs_each_expiry_removal() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let new = NewToken {
        user_id: "erin".into(),
        uuid: Uuid::new_v4(),
        title: "short".into(),
        created: now,
        expires: Some(now + Duration::hours(1)),
        scopes: None,
    };
    env.app
        .store
        .create_token(
            new,
            &Secret::generate().unwrap().digest(),
            100,
            Duration::days(1),
        )
        .await
        .unwrap();
    crate::cleanup::wait_for_index(&env, 1).await;
    let limits = shared::store::SweepLimits {
        lookback_days: shared::cleanup::LOOKBACK_DAYS,
        stop: None,
    };
    let report = env
        .app
        .store
        .sweep_expired(now + Duration::days(3), limits)
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    let (entries, _) = all_logs(&env, "erin", &[]).await;
    assert_eq!(kinds(&entries).get("create_app_specific_token"), Some(&1));
    let page = env
        .app
        .store
        .log_page(
            "erin",
            now - Duration::days(1),
            now + Duration::days(4),
            None,
            20,
        )
        .await
        .unwrap();
    let expired: Vec<_> = page
        .entries
        .iter()
        .filter(|e| e.kind == "expire_app_specific_token")
        .collect();
    assert_eq!(expired.len(), 1, "{:?}", page.entries);
    assert_eq!(
        (expired[0].actor.as_str(), expired[0].title.as_str()),
        ("system", "short")
    );
    // Through the route: the day of the removal, with the user as performer.
    let day = |at: chrono::DateTime<Utc>| at.format("%m/%d/%Y").to_string();
    let (from, to) = (day(now), day(now + Duration::days(3)));
    let (entries, _) = all_logs(&env, "erin", &[("starttime", &from), ("endtime", &to)]).await;
    let expiry = entries
        .iter()
        .find(|e| e["kind"] == "expire_app_specific_token")
        .expect("the expiry removal's entry");
    assert_eq!(expiry["metadata"]["performed_with"], "system");
    assert_eq!(expiry["ip"], Value::Null);
    assert_eq!(expiry["performer"]["name"], "erin");
}

#[tokio::test]
async fn a_refused_or_failed_change_leaves_no_entry() {
    let env = TestEnv::with_config(&[("MAX_TOKENS_PER_USER", "1")]).await;
    let create = || {
        create_app_token(
            &env.app,
            request(&as_user(event("create-app-token.json"), "alice")),
        )
    };
    assert_eq!(answer(create().await).status, 201);
    assert_eq!(answer(create().await).status, 400, "the cap");
    // Concurrent rotations: one entry per rotation that answered 200.
    let (entries, _) = all_logs(&env, "alice", &[]).await;
    let uuid = entries[0]["metadata"]["app_specific_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let app = env.app.clone();
        let e = with_path_parameter(
            as_user(event("rotate-app-token.json"), "alice"),
            "token_uuid",
            &uuid,
        );
        tasks.spawn(async move {
            answer(rotate_app_token(&app, request(&with_body(e, "{}"))).await).status
        });
    }
    let statuses = tasks.join_all().await;
    let succeeded = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let (entries, _) = all_logs(&env, "alice", &[]).await;
    assert_eq!(
        kinds(&entries),
        BTreeMap::from([
            ("create_app_specific_token".to_owned(), 1),
            ("rotate_app_specific_token".to_owned(), succeeded),
        ])
    );
}

#[tokio::test]
async fn paging_returns_each_of_250_entries_once_and_only_the_callers() {
    let env = TestEnv::with_config(&[("MAX_TOKENS_PER_USER", "1000")]).await;
    let mut made = std::collections::BTreeSet::new();
    for i in 0..250 {
        let token = seed_pat(&env, "paula", &Secret::generate().unwrap()).await;
        made.insert(token.uuid.to_string());
        if i % 50 == 0 {
            seed_pat(&env, "other", &Secret::generate().unwrap()).await;
        }
    }
    let (entries, pages) = all_logs(&env, "paula", &[]).await;
    assert_eq!(entries.len(), 250);
    assert!(pages >= 13, "{pages} pages of 20");
    let seen: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| {
            e["metadata"]["app_specific_token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen, made, "each entry exactly once");
    let times: Vec<_> = entries.iter().map(|e| rfc2822(&e["datetime"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // Another user sees none of them; nobody sees another's.
    let (others, _) = all_logs(&env, "other", &[]).await;
    assert_eq!(others.len(), 5);
    assert!(others
        .iter()
        .all(|e| !made.contains(e["metadata"]["app_specific_token"].as_str().unwrap())));
    let (nobody, _) = all_logs(&env, "nobody", &[]).await;
    assert!(nobody.is_empty());
}

#[tokio::test]
async fn starttime_and_endtime_select_whole_utc_days() {
    let env = TestEnv::new().await;
    let day = |d: u32| {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
    };
    let mut by_day = BTreeMap::new();
    for (d, at) in [
        (27, day(27) + Duration::hours(23) + Duration::minutes(59)),
        (28, day(28)),
        (28, day(28) + Duration::hours(12)),
        (29, day(29) + Duration::seconds(1)),
    ] {
        let uuid = Uuid::new_v4();
        let new = NewToken {
            user_id: "dora".into(),
            uuid,
            title: format!("day {d}"),
            created: at,
            expires: None,
            scopes: None,
        };
        let audit = Audit::system(at);
        env.app
            .store
            .create_token_with(
                new,
                &Secret::generate().unwrap().digest(),
                100,
                Duration::days(1),
                shared::store::TitleRule::Shared,
                &audit,
            )
            .await
            .unwrap();
        by_day
            .entry(d)
            .or_insert_with(Vec::new)
            .push(uuid.to_string());
    }
    let only = |entries: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = entries
            .iter()
            .map(|e| {
                e["metadata"]["app_specific_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        v.sort();
        v
    };
    let (one_day, _) = all_logs(
        &env,
        "dora",
        &[("starttime", "11/28/2026"), ("endtime", "11/28/2026")],
    )
    .await;
    let mut want = by_day[&28].clone();
    want.sort();
    assert_eq!(only(&one_day), want);
    let got = logs(
        &env,
        "dora",
        &[("starttime", "11/28/2026"), ("endtime", "11/28/2026")],
    )
    .await;
    assert_eq!(got.json()["start_time"], "Sat, 28 Nov 2026 00:00:00 -0000");
    assert_eq!(got.json()["end_time"], "Sun, 29 Nov 2026 00:00:00 -0000");
    let (three, _) = all_logs(
        &env,
        "dora",
        &[("starttime", "11/27/2026"), ("endtime", "11/29/2026")],
    )
    .await;
    assert_eq!(three.len(), 4);
    // The default is the last day: none of these.
    let (recent, _) = all_logs(&env, "dora", &[]).await;
    assert!(recent.is_empty(), "{recent:?}");
}

#[tokio::test]
async fn bad_log_queries_are_a_400_and_scopes_apply() {
    let env = TestEnv::new().await;
    for (query, field) in [
        (vec![("starttime", "2026-11-28")], "starttime"),
        (vec![("endtime", "13/45/2026")], "endtime"),
        (
            vec![("starttime", "11/28/2026"), ("endtime", "11/20/2026")],
            "starttime",
        ),
        (
            vec![("starttime", "01/01/2026"), ("endtime", "11/20/2026")],
            "endtime",
        ),
        (vec![("next_page", "not-a-page")], "next_page"),
        (vec![("next_page", "TE9HIzEyMw")], "next_page"),
        // A real entry's key, outside the range asked for (the last day).
        (
            vec![(
                "next_page",
                "TE9HIzE3MDAwMDAwMDAwMDAjYjU2ODVjZGEtNTJmMy00NGQ0LTliMjQtNzhhMDM1ZWMxNGUw",
            )],
            "next_page",
        ),
    ] {
        let got = logs(&env, "alice", &query).await;
        assert_eq!(got.status, 400, "{query:?}: {}", got.text);
        assert_eq!(got.json()["error_type"], "invalid_request");
        assert!(got.text.contains(field), "{query:?}: {}", got.text);
    }
    let now = Utc::now();
    let reader = env
        .app
        .issue(
            "alice",
            "ci2".into(),
            Some(now + Duration::days(1)),
            vec!["repo:read".into()],
            shared::store::TitleRule::Shared,
            &Audit::system(now),
        )
        .await
        .unwrap();
    let e = with_authorization(
        event("list-user-logs.json"),
        Some(&format!("Bearer {}", reader.secret.expose())),
    );
    let got = answer(list_user_logs(&env.app, request(&e)).await);
    assert_eq!(got.status, 403, "{}", got.text);
    let e = with_authorization(event("list-user-logs.json"), None);
    assert_eq!(
        answer(list_user_logs(&env.app, request(&e)).await).status,
        401
    );
}
