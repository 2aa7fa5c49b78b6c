//! Expiry notifications against DynamoDB Local and moto as EventBridge: the events a rule
//! delivers to an SQS queue are exactly the right digests, each token once per threshold
//! across repeated and concurrent runs; a refused publish marks nothing but what was accepted
//! and fails the run; a failed or stopped run leaves no claim; reads are the window's.

use crate::support::*;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{DateTime, Duration, Utc};
use harness::moto::{EventQueue, Moto};
use serde_dynamo::aws_sdk_dynamodb_1::to_item;
use serde_json::Value;
use shared::events::EventBus;
use shared::notify::{notify_at, NotifyError, NotifyReport, DETAIL_TYPE};
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

/// A bus of this test's own with a queue its events are delivered to: its name and the queue.
async fn delivering_bus() -> (String, EventQueue) {
    let (name, queue) = bus_and_queue();
    let delivered = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (name, delivered)
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
        if i % 6 == 4 {
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

/// Users of the scale test: three rounds of the run's 100 users, every kind of the seed 40 times
/// (the 100-user cost is counted by `./scripts/bench`, item 5).
const USERS: u32 = 240;

#[tokio::test]
async fn users_over_several_rounds_get_exactly_their_digests_once_per_threshold() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let started = std::time::Instant::now();
    let expected = seed(&env, USERS, now).await;
    harness::dynamodb_local::progress(&format!(
        "notify: seeded {USERS} users in {:?}",
        started.elapsed()
    ));
    // Users i % 6 = 0 (1 day), 1 (7 days), 3 (both), 4 (7 days): 40 + 40 + 2 x 40 + 40.
    let sixth = (USERS / 6) as usize;
    assert_eq!(expected.len(), 5 * sixth, "the seed's own arithmetic");
    let (name, delivered) = delivering_bus().await;
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
    assert_eq!(one_day.len(), sixth, "{sent:?}");
    assert!(one_day.is_subset(&at(7, &expected)));
    assert_eq!(at(7, &sent).len(), sixth);
    assert!(at(7, &sent).is_disjoint(&at(7, &expected)));
    assert_eq!(report.announced, 2 * sixth as u64);
}

#[tokio::test]
async fn two_concurrent_runs_announce_each_token_once() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let expected = seed(&env, 120, now).await;
    let (name, delivered) = delivering_bus().await;
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

/// The claims (`NOTICE#...`) left in the table, as (user, sort key).
async fn claims(env: &TestEnv) -> Vec<(String, String)> {
    env.scan_everything()
        .await
        .into_iter()
        .filter_map(|item| {
            let sk = item.get("sk")?.as_s().ok()?.clone();
            let pk = item.get("pk")?.as_s().ok()?.clone();
            sk.starts_with("NOTICE#").then_some((pk, sk))
        })
        .collect()
}

/// The tokens carrying a marker (`noticed_days`).
async fn marked(env: &TestEnv) -> BTreeSet<Uuid> {
    env.scan_all()
        .await
        .into_iter()
        .filter(|item| item.contains_key("noticed_days"))
        .filter_map(|item| {
            let sk = item.get("sk")?.as_s().ok()?.clone();
            Uuid::parse_str(sk.strip_prefix("TOKEN#")?).ok()
        })
        .collect()
}

#[tokio::test]
async fn a_refused_publish_fails_the_run_marks_nothing_and_the_next_run_sends_it() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let expected = seed(&env, 12, now).await;
    // The bus does not exist yet: PutEvents fails (after the SDK's and our retries).
    let (name, queue) = bus_and_queue();
    let refused = match notify_at(&env.app, &bus(&name), now, &|| false).await {
        Err(NotifyError::Refused(report)) => report,
        other => panic!("a refused publish must fail the run: {other:?}"),
    };
    assert_eq!(refused.events, 0, "{refused:?}");
    assert_eq!(refused.refused, expected.len() as u64, "{refused:?}");
    assert_eq!(refused.announced, 0);
    assert_eq!(claims(&env).await, vec![], "claims left by a failed run");
    assert_eq!(
        marked(&env).await,
        BTreeSet::new(),
        "marked by a failed run"
    );

    let delivered = Moto::shared()
        .bus_to_queue(&name, &queue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sent = run(&env, &bus(&name), now).await;
    assert_eq!(digests(&delivered.drain().await), expected);
    assert_eq!(sent.announced, in_windows(&expected));
}

/// An EventBridge that refuses every entry whose detail mentions `user` and accepts the rest.
fn refusing(user: &'static str) -> EventBus {
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    let put = aws_smithy_mocks::mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(
        move |input| {
            let needle = format!("\"user_id\":\"{user}\"");
            let results: Vec<PutEventsResultEntry> = input
                .entries()
                .iter()
                .map(|entry| {
                    if entry.detail().unwrap_or_default().contains(&needle) {
                        PutEventsResultEntry::builder()
                            .error_code("InternalFailure")
                            .error_message("injected")
                            .build()
                    } else {
                        PutEventsResultEntry::builder()
                            .event_id(Uuid::new_v4().to_string())
                            .build()
                    }
                })
                .collect();
            let failed = results.iter().filter(|r| r.error_code.is_some()).count();
            PutEventsOutput::builder()
                .failed_entry_count(failed as i32)
                .set_entries(Some(results))
                .build()
        },
    );
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(aws_smithy_mocks::MockResponseInterceptor::new().with_rule(&put))
        .build();
    EventBus::new(aws_sdk_eventbridge::Client::from_conf(config), "mocked")
}

/// Creates a token of `user` expiring at `expires`.
async fn create(env: &TestEnv, user: &str, expires: DateTime<Utc>, now: DateTime<Utc>) -> Uuid {
    let new = NewToken {
        user_id: user.into(),
        uuid: Uuid::new_v4(),
        title: format!("expiring {}", Uuid::new_v4()),
        created: now,
        expires: Some(expires),
        scopes: None,
    };
    let secret = Secret::generate().expect("secret");
    env.app
        .store
        .create_token(new, &secret.digest(), 100, env.app.config.ttl_grace)
        .await
        .expect("create")
        .uuid
}

#[tokio::test]
async fn a_partly_refused_publish_marks_what_was_accepted_and_fails_the_run() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let mut accepted = BTreeSet::new();
    for user in ["alice", "carol"] {
        accepted.insert(create(&env, user, now + Duration::hours(10), now).await);
        accepted.insert(create(&env, user, now + Duration::days(3), now).await);
    }
    let bob = create(&env, "bob", now + Duration::days(3), now).await;
    crate::cleanup::wait_for_index(&env, 5).await;

    let report = match notify_at(&env.app, &refusing("bob"), now, &|| false).await {
        Err(NotifyError::Refused(report)) => report,
        other => panic!("refused entries must fail the run: {other:?}"),
    };
    assert_eq!((report.events, report.refused), (4, 1), "{report:?}");
    assert_eq!(report.announced, 4, "{report:?}");
    assert_eq!(
        marked(&env).await,
        accepted,
        "the accepted events' tokens are marked"
    );
    assert_eq!(claims(&env).await, vec![], "claims left by a failed run");

    // At once (Lambda's retry): only bob's event is left to send.
    let (name, delivered) = delivering_bus().await;
    let retry = run(&env, &bus(&name), now + Duration::seconds(5)).await;
    let sent = digests(&delivered.drain().await);
    assert_eq!(
        sent,
        Digests::from([(("bob".to_owned(), 7), vec![BTreeSet::from([bob])])]),
        "{retry:?}"
    );
    assert_eq!(
        (retry.announced, retry.claimed_elsewhere),
        (1, 0),
        "{retry:?}"
    );
}

#[tokio::test]
async fn a_run_failing_midway_leaves_no_claim_and_an_immediate_retry_sends_the_events() {
    let env = Arc::new(TestEnv::new().await);
    let now = Utc::now();
    let expected = seed(&env, 12, now).await;
    let (name, delivered) = delivering_bus().await;
    // DynamoDB fails the consistent read under the claims: the claims are taken, nothing sent.
    let (client, fault) = crate::faults::FailRequests::on(&env.client, "BatchGetItem", "");
    let mut faulty = env.app.clone();
    faulty.store = shared::store::Store::new(client, env.table());
    let failed = notify_at(&faulty, &bus(&name), now, &|| false).await;
    assert!(matches!(failed, Err(NotifyError::Store(_))), "{failed:?}");
    assert!(fault.failed() >= 1);
    assert_eq!(claims(&env).await, vec![], "claims left by a failed run");
    assert!(delivered.drain().await.is_empty());

    let retry = run(&env, &bus(&name), now + Duration::seconds(5)).await;
    assert_eq!(retry.claimed_elsewhere, 0, "{retry:?}");
    assert_eq!(digests(&delivered.drain().await), expected);
    assert_eq!(retry.announced, in_windows(&expected));
    assert_eq!(claims(&env).await, vec![]);
}

#[tokio::test]
async fn a_run_stopped_at_its_deadline_leaves_no_claim() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let soon = create(&env, "dana", now + Duration::hours(10), now).await;
    let later = create(&env, "dana", now + Duration::days(3), now).await;
    crate::cleanup::wait_for_index(&env, 2).await;
    let (name, delivered) = delivering_bus().await;
    // Time runs out after the 1-day round, before the 7-day one.
    let asked = AtomicU32::new(0);
    let out_of_time = || asked.fetch_add(1, Ordering::SeqCst) >= 1;
    let stopped = notify_at(&env.app, &bus(&name), now, &out_of_time)
        .await
        .expect("a stopped run");
    assert!(stopped.stopped_early, "{stopped:?}");
    assert_eq!(stopped.announced, 1, "{stopped:?}");
    assert_eq!(claims(&env).await, vec![], "claims left by a stopped run");
    assert_eq!(marked(&env).await, BTreeSet::from([soon]));

    let next = run(&env, &bus(&name), now + Duration::seconds(5)).await;
    assert_eq!(next.announced, 1, "{next:?}");
    let sent = digests(&delivered.drain().await);
    assert_eq!(sent[&("dana".to_owned(), 7)], vec![BTreeSet::from([later])]);
    assert_eq!(sent[&("dana".to_owned(), 1)], vec![BTreeSet::from([soon])]);
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
    let (name, queue) = delivering_bus().await;
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
