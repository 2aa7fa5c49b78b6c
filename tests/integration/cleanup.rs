//! The scheduled cleanup against DynamoDB Local: exactly the tokens due are removed with their
//! lookup records, reads stay proportional to them, overlapping and interrupted runs converge.

use crate::support::*;
use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use shared::cleanup::cleanup;
use shared::store::NewToken;
use shared::tokens::{Secret, SecretDigest};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ExpiredPastGrace,
    ExpiredWithinGrace,
    Live,
}

struct Seeded {
    kind: Kind,
    user: String,
    uuid: Uuid,
    digest: SecretDigest,
}

/// Creates token `i` of `user` (created 10 days before `now`, expiring at `expires`) through
/// the store.
async fn seed_one(
    env: &TestEnv,
    kind: Kind,
    user: String,
    i: u32,
    (now, expires): (chrono::DateTime<Utc>, Option<chrono::DateTime<Utc>>),
) -> Seeded {
    let secret = Secret::generate().unwrap();
    let new = NewToken {
        user_id: user.clone(),
        uuid: Uuid::new_v4(),
        title: format!("t{i}"),
        created: now - Duration::days(10),
        expires,
        scopes: None,
    };
    let token = env
        .app
        .store
        .create_token(new, &secret.digest(), 100, env.app.config.ttl_grace)
        .await
        .expect("seed");
    Seeded {
        kind,
        user,
        uuid: token.uuid,
        digest: secret.digest(),
    }
}

/// 500 tokens across 50 users: 200 expired past the grace period (spread over several days of
/// sweep buckets), 50 expired within it, 250 live (half of them never expiring).
async fn seed(env: &Arc<TestEnv>) -> Vec<Seeded> {
    env.without_ttl_deletion().await;
    let now = Utc::now();
    let mut tasks = JoinSet::new();
    // Sixteen creates at a time: DynamoDB Local on a loaded two-core machine has been seen to
    // lose a global index entry under hundreds of concurrent transactions.
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..500u32 {
        let env = env.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (kind, expires) = match i % 10 {
                0..=3 => (
                    Kind::ExpiredPastGrace,
                    Some(now - Duration::days(1) - Duration::hours(1 + i64::from(i % 96))),
                ),
                4 => (
                    Kind::ExpiredWithinGrace,
                    Some(now - Duration::hours(1 + i64::from(i % 20))),
                ),
                5..=7 => (
                    Kind::Live,
                    Some(now + Duration::days(1 + i64::from(i % 30))),
                ),
                _ => (Kind::Live, None),
            };
            seed_one(&env, kind, format!("user-{}", i % 50), i, (now, expires)).await
        });
    }
    let mut seeded = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seeded.push(done.unwrap());
    }
    assert_eq!(
        seeded
            .iter()
            .filter(|s| s.kind == Kind::ExpiredPastGrace)
            .count(),
        200
    );
    assert_eq!(
        seeded
            .iter()
            .filter(|s| s.kind == Kind::ExpiredWithinGrace)
            .count(),
        50
    );
    wait_for_index(env, 400).await;
    seeded
}

/// Global indexes are eventually consistent (in DynamoDB Local too, under load): wait until the
/// sweep index holds every expiring token seeded (200 + 50 expired, and the 150 live ones that
/// expire), so the runs below are measured on a settled index.
pub(crate) async fn wait_for_index(env: &TestEnv, expected: i32) {
    let now = Utc::now();
    let mut count = 0;
    for _ in 0..100 {
        count = 0;
        for days in -31..=8 {
            let bucket = format!("SWEEP#{}", (now - Duration::days(days)).format("%Y-%m-%d"));
            let page = env
                .client
                .query()
                .table_name(env.table())
                .index_name("sweep")
                .key_condition_expression("sweep_bucket = :b")
                .expression_attribute_values(
                    ":b",
                    aws_sdk_dynamodb::types::AttributeValue::S(bucket),
                )
                .select(aws_sdk_dynamodb::types::Select::Count)
                .send()
                .await
                .expect("count the sweep index");
            count += page.count;
        }
        if count == expected {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sweep index never reached {expected} items (last count {count})");
}

fn scheduled_event(deadline_in_ms: Option<u64>) -> LambdaEvent<Value> {
    let mut context = Context::default();
    if let Some(ms) = deadline_in_ms {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context.deadline = now + ms;
    }
    LambdaEvent::new(event("cleanup.json"), context)
}

/// Which seeded tokens still exist, as (token item, lookup record) presence.
async fn survivors(env: &TestEnv, seeded: &[Seeded]) -> Vec<(Kind, bool, bool)> {
    let mut out = Vec::new();
    for s in seeded {
        let token = env
            .app
            .store
            .get_token(&s.user, &s.uuid)
            .await
            .unwrap()
            .is_some();
        let lookup = env
            .app
            .store
            .find_secret(&s.digest)
            .await
            .unwrap()
            .is_some();
        out.push((s.kind, token, lookup));
    }
    out
}

fn assert_only_due_tokens_gone(state: &[(Kind, bool, bool)]) {
    for (kind, token, lookup) in state {
        let expect_present = *kind != Kind::ExpiredPastGrace;
        assert_eq!(
            (*token, *lookup),
            (expect_present, expect_present),
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn one_run_deletes_exactly_the_due_tokens_reading_only_them() {
    let env = Arc::new(TestEnv::new().await);
    let seeded = seed(&env).await;
    env.requests.reset();

    let summary = cleanup(&env.app, scheduled_event(Some(60_000)))
        .await
        .expect("cleanup");
    assert_eq!(summary["deleted"], 200, "{summary}");
    assert_eq!(summary["stopped_early"], false);
    assert_eq!(summary["remaining"], 0);
    let examined = summary["examined"].as_u64().unwrap();
    assert!(examined <= 220, "examined {examined} for 200 due tokens");
    assert_eq!(examined, 200, "items read beyond the due tokens");
    let requests = env.requests.snapshot();
    assert_eq!(requests.get("Scan"), None, "{requests:?}");
    assert_eq!(requests.get("GetItem"), None, "{requests:?}");
    // One Query per day bucket (8); one transaction per token removed (its token, lookup
    // record and title count together, so no stop or failure can split them).
    assert!(
        requests.get("Query").copied().unwrap_or(0) <= 8 + 2,
        "{requests:?}"
    );
    assert_eq!(
        requests.get("TransactWriteItems").copied(),
        Some(200),
        "{requests:?}"
    );
    assert_eq!(requests.get("BatchWriteItem"), None, "{requests:?}");

    assert_only_due_tokens_gone(&survivors(&env, &seeded).await);
    // 300 tokens + 300 lookup records + 50 counters + 500 title counts remain (the removed
    // tokens' titles are counted down to zero).
    assert_eq!(env.scan_all().await.len(), 1150);

    let again = cleanup(&env.app, scheduled_event(Some(60_000)))
        .await
        .expect("second run");
    assert_eq!(
        (again["deleted"].as_u64(), again["examined"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
}

#[tokio::test]
async fn two_overlapping_runs_reach_the_same_end_state_without_errors() {
    let env = Arc::new(TestEnv::new().await);
    let seeded = seed(&env).await;
    let (a, b) = tokio::join!(
        cleanup(&env.app, scheduled_event(Some(60_000))),
        cleanup(&env.app, scheduled_event(Some(60_000)))
    );
    let (a, b) = (a.expect("first run"), b.expect("second run"));
    assert!(
        a["deleted"].as_u64().unwrap() + b["deleted"].as_u64().unwrap() >= 200,
        "{a} {b}"
    );
    assert_only_due_tokens_gone(&survivors(&env, &seeded).await);
    assert_eq!(env.scan_all().await.len(), 1150);
}

#[tokio::test]
async fn a_run_out_of_time_stops_and_the_next_run_finishes() {
    let env = Arc::new(TestEnv::new().await);
    let seeded = seed(&env).await;
    let hurried = cleanup(&env.app, scheduled_event(Some(5)))
        .await
        .expect("hurried run");
    assert_eq!(hurried["stopped_early"], true, "{hurried}");
    assert!(hurried["deleted"].as_u64().unwrap() < 200, "{hurried}");

    let next = cleanup(&env.app, scheduled_event(Some(60_000)))
        .await
        .expect("next run");
    assert_eq!(next["stopped_early"], false);
    assert_eq!(
        hurried["deleted"].as_u64().unwrap() + next["deleted"].as_u64().unwrap(),
        200,
        "{hurried} {next}"
    );
    assert_only_due_tokens_gone(&survivors(&env, &seeded).await);
}

#[tokio::test]
async fn any_payload_is_accepted_as_a_trigger() {
    let env = TestEnv::new().await;
    for payload in [
        serde_json::json!({"note": "from EventBridge Scheduler"}),
        Value::Null,
        serde_json::json!([1, 2]),
    ] {
        let summary = cleanup(&env.app, LambdaEvent::new(payload, Context::default()))
            .await
            .expect("cleanup");
        assert_eq!(summary["deleted"], 0);
    }
}

/// Every token item has its lookup record and every lookup record its token item.
async fn assert_no_orphans(env: &TestEnv) {
    let items = env.scan_all().await;
    let text =
        |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
         name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
    let tokens: std::collections::BTreeSet<String> = items
        .iter()
        .filter(|i| text(i, "sk").starts_with("TOKEN#"))
        .map(|i| text(i, "digest"))
        .collect();
    let lookups: std::collections::BTreeSet<String> = items
        .iter()
        .filter(|i| text(i, "sk") == "SECRET")
        .map(|i| text(i, "digest"))
        .collect();
    assert_eq!(
        tokens, lookups,
        "a token without its lookup record, or the reverse"
    );
}

#[tokio::test]
async fn a_sweep_stopped_at_any_point_leaves_no_orphan() {
    // Small pages, and a stop signal that says "stop" after k questions, for every k: the
    // run stops before a page, or between two groups of removals, at every place it can.
    let env = Arc::new(TestEnv::new().await.with_page_size(7));
    env.without_ttl_deletion().await;
    let now = Utc::now();
    for i in 0..30 {
        let at = (now, Some(now - Duration::days(2)));
        seed_one(
            &env,
            Kind::ExpiredPastGrace,
            format!("user-{}", i % 3),
            i,
            at,
        )
        .await;
    }
    wait_for_index(&env, 30).await;
    let mut total = 0;
    for k in 0.. {
        let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = asked.clone();
        let limits = shared::store::SweepLimits {
            lookback_days: shared::cleanup::LOOKBACK_DAYS,
            stop: Some(Arc::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= k
            })),
        };
        let report = env
            .app
            .store
            .sweep_expired(Utc::now(), limits)
            .await
            .expect("sweep");
        assert_no_orphans(&env).await;
        total += report.deleted;
        if !report.stopped_early {
            break;
        }
        assert_eq!(
            report.examined,
            report.deleted + report.pending,
            "{report:?}"
        );
    }
    assert_eq!(total, 30);
}

/// One token's removal fails (its transaction refused before it reaches DynamoDB): the run
/// goes on, removes the others, counts the failure, and the next run removes it.
#[tokio::test]
async fn a_failed_removal_is_skipped_and_counted_and_the_others_are_removed() {
    let env = TestEnv::new().await;
    env.without_ttl_deletion().await;
    let now = Utc::now();
    let mut seeded = Vec::new();
    for i in 0..6 {
        let expires = Some(now - Duration::days(2));
        let user = format!("user-{}", i % 2);
        seeded.push(seed_one(&env, Kind::ExpiredPastGrace, user, i, (now, expires)).await);
    }
    wait_for_index(&env, 6).await;
    let broken = seeded[3].uuid;
    let (client, fault) =
        crate::faults::FailRequests::on(&env.client, "TransactWriteItems", broken.to_string());
    let mut faulty = env.app.clone();
    faulty.store = shared::store::Store::new(client, env.table());

    let summary = cleanup(&faulty, scheduled_event(Some(60_000)))
        .await
        .expect("a failed removal must not fail the run");
    assert!(fault.failed() >= 1, "the fault was never hit");
    assert_eq!(summary["deleted"], 5, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["remaining"], 0, "{summary}");
    assert_eq!(summary["stopped_early"], false, "{summary}");
    for (s, (_, token, lookup)) in seeded.iter().zip(survivors(&env, &seeded).await) {
        let kept = s.uuid == broken;
        assert_eq!((token, lookup), (kept, kept), "{}", s.uuid);
    }
    assert_no_orphans(&env).await;

    let next = cleanup(&env.app, scheduled_event(Some(60_000)))
        .await
        .expect("next run");
    assert_eq!(
        (next["deleted"].as_u64(), next["failed"].as_u64()),
        (Some(1), Some(0)),
        "{next}"
    );
    assert!(survivors(&env, &seeded)
        .await
        .iter()
        .all(|(_, token, lookup)| !token && !lookup));
}
