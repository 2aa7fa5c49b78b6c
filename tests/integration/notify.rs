//! Expiry notifications against DynamoDB Local and moto as EventBridge: the events a rule
//! delivers to an SQS queue are exactly the right digests, each token once per threshold
//! across repeated and concurrent runs; a refused publish marks nothing; reads are the window's.

use crate::support::*;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{DateTime, Duration, Utc};
use harness::moto::Moto;
use serde_dynamo::aws_sdk_dynamodb_1::to_item;
use serde_json::Value;
use shared::events::EventBus;
use shared::notify::{notify_at, NotifyReport, DETAIL_TYPE};
use shared::store::items::TokenItem;
use shared::store::{Audit, NewToken, Rotation};
use shared::tokens::{Secret, Token};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::task::JoinSet;
use uuid::Uuid;

/// What the events said: (user, threshold days) → the uuids of each event for it.
type Digests = BTreeMap<(String, u64), Vec<BTreeSet<Uuid>>>;

static QUEUES: AtomicU32 = AtomicU32::new(0);

/// A bus and queue of this test's own (tests run in parallel on one moto).
fn bus_and_queue() -> (String, String) {
    let n = QUEUES.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    (format!("tokens-{pid}-{n}"), format!("events-{pid}-{n}"))
}

fn bus(name: &str) -> EventBus {
    EventBus::new(Moto::shared().eventbridge(), name)
}

async fn run(env: &TestEnv, bus: &EventBus, now: DateTime<Utc>) -> NotifyReport {
    notify_at(&env.app, bus, now, &|| false)
        .await
        .expect("notification run")
}

fn digests(events: &[Value]) -> Digests {
    let mut digests = Digests::new();
    for event in events {
        assert_eq!(event["detail-type"], DETAIL_TYPE, "{event}");
        assert_eq!(event["source"], "token-service", "{event}");
        let detail = &event["detail"];
        let text = detail.to_string();
        assert!(!text.contains("pat_"), "an event carries a secret: {text}");
        let tokens = detail["tokens"].as_array().expect("tokens");
        for token in tokens {
            assert!(
                token["title"].is_string() && token["expires_at"].is_string(),
                "{token}"
            );
        }
        let uuids = tokens
            .iter()
            .map(|t| Uuid::parse_str(t["uuid"].as_str().unwrap_or_default()).expect("uuid"))
            .collect();
        let key = (
            detail["user_id"].as_str().expect("user_id").to_owned(),
            detail["within_days"].as_u64().expect("within_days"),
        );
        digests.entry(key).or_default().push(uuids);
    }
    digests
}

/// Seeds `users` users with tokens at various expiries, then returns the digests a run must
/// publish, worked out from what the table holds. Most tokens are written as the items a
/// create writes (BatchWriteItem, fast); some users' tokens are created, then revoked or
/// rotated out of the window, through the store.
async fn seed(env: &Arc<TestEnv>, users: u32, now: DateTime<Utc>) -> Digests {
    let hours = |h: i64| Some(now + Duration::hours(h));
    let mut items = Vec::new();
    let mut tasks = JoinSet::new();
    for i in 0..users {
        let user = format!("user-{i}");
        let expiries: Vec<Option<DateTime<Utc>>> = match i % 6 {
            0 => vec![hours(12)],
            1 => vec![hours(72), hours(24 * 30)],
            2 => vec![hours(-1), None],
            3 => vec![hours(24 * 7 - 1), hours(20), hours(30)],
            4 => vec![hours(26)],
            _ => vec![hours(24 * 7 + 2)],
        };
        for (n, expires) in expiries.into_iter().enumerate() {
            let token = Token {
                user_id: user.clone(),
                uuid: Uuid::new_v4(),
                number: n as u64 + 1,
                title: format!("token {n} of {user}"),
                created: now - Duration::days(80),
                expires,
                last_used: None,
                scopes: None,
            };
            let item = TokenItem::new(
                &token,
                &Secret::generate().expect("secret").digest(),
                env.app.config.ttl_grace,
            );
            items.push(to_item(item.lookup()).expect("lookup item"));
            items.push(to_item(item).expect("token item"));
        }
        if i % 6 == 4 && i < 300 {
            // One revoked and one rotated to 60 days, both in the window when they were made.
            let env = env.clone();
            tasks.spawn(async move {
                for (hours_left, then) in [(10, "revoke"), (100, "rotate")] {
                    let new = NewToken {
                        user_id: user.clone(),
                        uuid: Uuid::new_v4(),
                        title: format!("{then} me"),
                        created: now,
                        expires: Some(now + Duration::hours(hours_left)),
                        scopes: None,
                    };
                    let secret = Secret::generate().expect("secret");
                    let store = &env.app.store;
                    let grace = env.app.config.ttl_grace;
                    let token = store
                        .create_token(new, &secret.digest(), 100, grace)
                        .await
                        .expect("seed");
                    if then == "revoke" {
                        let audit = Audit::system(now);
                        store
                            .revoke(&user, &token.uuid, &audit)
                            .await
                            .expect("revoke");
                    } else {
                        rotate(&env, &user, &token.uuid, now + Duration::days(60), now).await;
                    }
                }
            });
        }
    }
    let mut writes = JoinSet::new();
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone()))
                    .build()
                    .expect("put");
                WriteRequest::builder().put_request(put).build()
            })
            .collect::<Vec<_>>();
        let env = env.clone();
        writes.spawn(async move {
            let mut requests = Some(requests);
            while let Some(pending) = requests.take().filter(|r| !r.is_empty()) {
                let output = env
                    .client
                    .batch_write_item()
                    .request_items(env.table(), pending)
                    .send()
                    .await
                    .expect("BatchWriteItem");
                requests = output
                    .unprocessed_items
                    .and_then(|mut m| m.remove(env.table()));
            }
        });
        if writes.len() >= 8 {
            writes
                .join_next()
                .await
                .expect("a write")
                .expect("BatchWriteItem");
        }
    }
    while let Some(done) = writes.join_next().await {
        done.expect("BatchWriteItem");
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("seeding");
    }
    let mut expected = Digests::new();
    for item in env.scan_all().await {
        let Some(uuid) = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix("TOKEN#"))
            .and_then(|u| Uuid::parse_str(u).ok())
        else {
            continue;
        };
        let Some(expires) = item
            .get("expires_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
        else {
            continue;
        };
        let left = expires - now;
        let days = if left > Duration::zero() && left <= Duration::days(1) {
            1
        } else if left > Duration::days(1) && left <= Duration::days(7) {
            7
        } else {
            continue;
        };
        let user = item["user_id"].as_s().expect("user_id").clone();
        let sets = expected.entry((user, days)).or_default();
        if sets.is_empty() {
            sets.push(BTreeSet::new());
        }
        sets[0].insert(uuid);
    }
    expected
}

async fn rotate(
    env: &TestEnv,
    user: &str,
    uuid: &Uuid,
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let rotation = Rotation {
        digest: Secret::generate().expect("secret").digest(),
        expires: Some(expires),
        grace: Duration::zero(),
        ttl_grace: env.app.config.ttl_grace,
        presented: None,
        within_lifetime: false,
        audit: Audit::system(now),
    };
    let rotated = env
        .app
        .store
        .rotate(user, uuid, &rotation)
        .await
        .expect("rotate");
    assert!(
        matches!(rotated, shared::store::Rotated::Yes(_)),
        "{rotated:?}"
    );
}

fn in_windows(expected: &Digests) -> u64 {
    expected.values().flatten().map(|s| s.len() as u64).sum()
}

#[tokio::test]
async fn a_thousand_users_get_exactly_their_digests_once_per_threshold() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let started = std::time::Instant::now();
    let expected = seed(&env, 1_000, now).await;
    harness::dynamodb_local::progress(&format!(
        "notify: seeded 1,000 users in {:?}",
        started.elapsed()
    ));
    // Users i % 6 = 0 (1 day), 1 (7 days), 3 (both), 4 (7 days): 167 + 167 + 2 x 167 + 166.
    assert_eq!(expected.len(), 834, "the seed's own arithmetic");
    let (name, queue) = bus_and_queue();
    let delivered = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bus = bus(&name);

    env.requests.reset();
    let started = std::time::Instant::now();
    let first = run(&env, &bus, now).await;
    harness::dynamodb_local::progress(&format!(
        "notify: first run {:?}: {first:?}",
        started.elapsed()
    ));
    let requests = env.requests.snapshot();
    assert_eq!(digests(&delivered.drain().await), expected);
    assert_eq!(first.events, expected.len() as u64, "{first:?}");
    assert_eq!(first.announced, in_windows(&expected), "{first:?}");
    // Reads: the window's tokens from the index, and the same tokens read consistently.
    assert_eq!(first.examined, in_windows(&expected), "{first:?}");
    assert_eq!(
        (first.refused, first.claimed_elsewhere, first.dropped),
        (0, 0, 0)
    );
    // One consistent read of each candidate under its claim, 100 keys a call (a round of 100
    // users may take two).
    let batch_gets = requests.get("BatchGetItem").copied().unwrap_or(0);
    assert!(
        batch_gets <= first.examined.div_ceil(100) + 10,
        "{batch_gets} BatchGetItem calls for {} tokens",
        first.examined
    );
    // Writes: one claim per digest, one marker per token.
    assert_eq!(
        requests.get("PutItem").copied(),
        Some(first.events),
        "{requests:?}"
    );
    assert_eq!(
        requests.get("UpdateItem").copied(),
        Some(first.announced),
        "{requests:?}"
    );
    // One Query per day bucket the two windows touch (1 + 2 + ... at most 9 here).
    assert!(
        requests.get("Query").copied().unwrap_or(0) <= 10,
        "{requests:?}"
    );
    assert_eq!(requests.get("Scan"), None);

    // Two more runs: nothing new to say, however often the schedule fires.
    for _ in 0..2 {
        let again = run(&env, &bus, now + Duration::minutes(5)).await;
        assert_eq!((again.events, again.announced), (0, 0), "{again:?}");
        assert_eq!(again.dropped, in_windows(&expected), "{again:?}");
    }
    assert!(delivered.drain().await.is_empty());
    // A repeated run reads the index only (its copy shows the markers), and writes nothing.
    env.requests.reset();
    run(&env, &bus, now + Duration::minutes(10)).await;
    let writes: u64 = [
        "BatchGetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactWriteItems",
    ]
    .iter()
    .map(|op| env.requests.get(op))
    .sum();
    assert_eq!(writes, 0, "{:?}", env.requests.snapshot());

    // Six days later the 7-day tokens are within a day: each is announced once more, at 1 day.
    let later = now + Duration::days(6) + Duration::hours(1);
    let report = run(&env, &bus, later).await;
    let sent = digests(&delivered.drain().await);
    let at = |days: u64, digests: &Digests| -> BTreeSet<Uuid> {
        digests
            .iter()
            .filter(|((_, d), _)| *d == days)
            .flat_map(|(_, sets)| sets.iter().flatten().copied())
            .collect()
    };
    // The 6 d 23 h tokens (users i % 6 = 3) now within a day, announced a second time; the
    // 7 d 2 h ones (i % 6 = 5) now within 7 days, for the first time.
    let one_day = at(1, &sent);
    assert_eq!(one_day.len(), 167, "{sent:?}");
    assert!(one_day.is_subset(&at(7, &expected)));
    assert_eq!(at(7, &sent).len(), 166);
    assert!(at(7, &sent).is_disjoint(&at(7, &expected)));
    assert_eq!(report.announced, 167 + 166);
}

#[tokio::test]
async fn two_concurrent_runs_announce_each_token_once() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let expected = seed(&env, 120, now).await;
    let (name, queue) = bus_and_queue();
    let delivered = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bus = Arc::new(bus(&name));
    let mut runs = JoinSet::new();
    for _ in 0..2 {
        let (env, bus) = (env.clone(), bus.clone());
        runs.spawn(async move { run(&env, &bus, now).await });
    }
    let mut announced = 0;
    while let Some(report) = runs.join_next().await {
        announced += report.expect("run").announced;
    }
    // One event per user and threshold, though both runs read every candidate.
    assert_eq!(digests(&delivered.drain().await), expected);
    assert_eq!(announced, in_windows(&expected));
}

#[tokio::test]
async fn a_refused_publish_marks_nothing_and_the_next_run_sends_it() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let expected = seed(&env, 12, now).await;
    // The bus does not exist yet: PutEvents fails (after the SDK's and our retries).
    let (name, queue) = bus_and_queue();
    let refused = run(&env, &bus(&name), now).await;
    assert_eq!(refused.events, 0, "{refused:?}");
    assert_eq!(refused.refused, expected.len() as u64, "{refused:?}");
    assert_eq!(refused.announced, 0);
    let leftovers: Vec<_> = env
        .scan_everything()
        .await
        .into_iter()
        .filter(|i| {
            i.contains_key("noticed_days")
                || i["sk"].as_s().is_ok_and(|sk| sk.starts_with("NOTICE#"))
        })
        .collect();
    assert!(leftovers.is_empty(), "marked or claimed: {leftovers:?}");

    let delivered = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = run(&env, &bus(&name), now).await;
    assert_eq!(digests(&delivered.drain().await), expected);
    assert_eq!(sent.announced, in_windows(&expected));
}

#[tokio::test]
async fn a_rotation_to_a_new_expiry_is_announced_afresh() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let token = env
        .app
        .store
        .create_token(
            NewToken {
                user_id: "carol".into(),
                uuid: Uuid::new_v4(),
                title: "deploy".into(),
                created: now,
                expires: Some(now + Duration::days(3)),
                scopes: None,
            },
            &Secret::generate().expect("secret").digest(),
            100,
            env.app.config.ttl_grace,
        )
        .await
        .expect("create");
    let (name, queue) = bus_and_queue();
    let queue = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bus = bus(&name);
    assert_eq!(run(&env, &bus, now).await.announced, 1);
    assert_eq!(run(&env, &bus, now).await.announced, 0);
    rotate(&env, "carol", &token.uuid, now + Duration::days(5), now).await;
    // The next daily run (past the first run's claim) announces the new expiry.
    let next = now + shared::notify::CLAIM_FOR + Duration::minutes(1);
    assert_eq!(run(&env, &bus, next).await.announced, 1);
    let sent = digests(&queue.drain().await);
    assert_eq!(sent[&("carol".to_owned(), 7)].len(), 2, "{sent:?}");
}
