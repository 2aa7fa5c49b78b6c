//! The store against DynamoDB Local: atomic token + lookup writes, the cap under concurrency,
//! the live counter's recount, integer ids.

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use shared::store::{NewToken, Revoked, StoreError};
use shared::tokens::Secret;
use uuid::Uuid;

fn new_token(user: &str) -> NewToken {
    let now = Utc::now();
    NewToken {
        user_id: user.into(),
        uuid: Uuid::new_v4(),
        title: "t".into(),
        created: now,
        expires: Some(now + Duration::days(1)),
        scopes: None,
    }
}

#[tokio::test]
async fn a_failed_transaction_leaves_no_half_token() {
    let env = TestEnv::new().await;
    let secret = Secret::generate().unwrap();
    // Occupy the lookup record's key, so the transaction's third action fails its condition.
    env.client
        .put_item()
        .table_name(env.table())
        .item(
            "pk",
            AttributeValue::S(format!("SECRET#{}", secret.digest().to_hex())),
        )
        .item("sk", AttributeValue::S("SECRET".into()))
        .send()
        .await
        .unwrap();

    let attempt = new_token("alice");
    let result = env
        .app
        .store
        .create_token(attempt.clone(), &secret.digest(), 10, Duration::days(1))
        .await;
    assert!(matches!(result, Err(StoreError::Failed(_))), "{result:?}");
    assert_eq!(
        env.app
            .store
            .get_token("alice", &attempt.uuid)
            .await
            .unwrap(),
        None,
        "token written without its lookup"
    );
    assert!(env.app.store.list_tokens("alice").await.unwrap().is_empty());

    // The cap's counter was not bumped either: with a cap of 1, one create still succeeds.
    let ok = env
        .app
        .store
        .create_token(
            new_token("alice"),
            &Secret::generate().unwrap().digest(),
            1,
            Duration::days(1),
        )
        .await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn the_cap_holds_under_twenty_concurrent_creates() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_token(
                        new_token("carol"),
                        &Secret::generate().unwrap().digest(),
                        5,
                        Duration::days(1),
                    )
                    .await
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::CapReached { cap: 5 }) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((created, refused), (5, 15));
    assert_eq!(store.list_tokens("carol").await.unwrap().len(), 5);
    // Every token has its lookup record: 5 tokens + 5 lookups + 1 counter + 1 title count.
    assert_eq!(env.scan_all().await.len(), 12);
}

#[tokio::test]
async fn thirty_concurrent_creates_get_thirty_distinct_numbers() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    let handles: Vec<_> = (0..30)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_token(
                        new_token("dave"),
                        &Secret::generate().unwrap().digest(),
                        100,
                        Duration::days(1),
                    )
                    .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for h in handles {
        numbers.push(h.await.unwrap().expect("create").number);
    }
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 30);
    assert!(numbers.iter().all(|n| (1..=30).contains(n)), "{numbers:?}");
}

#[tokio::test]
async fn numbers_are_never_reused_after_revoke() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let first = store
        .create_token(
            new_token("erin"),
            &Secret::generate().unwrap().digest(),
            10,
            Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke(
                "erin",
                &first.uuid,
                &shared::store::Audit::system(Utc::now())
            )
            .await
            .unwrap(),
        Revoked::Yes
    );
    let second = store
        .create_token(
            new_token("erin"),
            &Secret::generate().unwrap().digest(),
            10,
            Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!((first.number, second.number), (1, 2));
    // Each user counts from 1.
    let other = store
        .create_token(
            new_token("frank"),
            &Secret::generate().unwrap().digest(),
            10,
            Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(other.number, 1);
    assert_eq!(
        store
            .find_by_number("erin", 2)
            .await
            .unwrap()
            .map(|found| found.uuid),
        Some(second.uuid)
    );
    assert_eq!(store.find_by_number("erin", 1).await.unwrap(), None);
    assert_eq!(store.find_by_number("frank", 2).await.unwrap(), None);
}

#[tokio::test]
async fn expired_tokens_stop_counting_against_the_cap() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let now = Utc::now();
    // Two tokens that expired a minute ago (not yet swept) fill a cap of 2...
    for _ in 0..2 {
        let mut t = new_token("gina");
        t.created = now - Duration::hours(2);
        t.expires = Some(now - Duration::minutes(1));
        store
            .create_token(
                t,
                &Secret::generate().unwrap().digest(),
                2,
                Duration::days(1),
            )
            .await
            .unwrap();
    }
    // ...yet a new one is accepted: the full cap triggers a recount of live tokens.
    let third = store
        .create_token(
            new_token("gina"),
            &Secret::generate().unwrap().digest(),
            2,
            Duration::days(1),
        )
        .await;
    assert!(third.is_ok(), "{third:?}");
    let fourth = store
        .create_token(
            new_token("gina"),
            &Secret::generate().unwrap().digest(),
            2,
            Duration::days(1),
        )
        .await;
    assert!(fourth.is_ok(), "{fourth:?}");
    let fifth = store
        .create_token(
            new_token("gina"),
            &Secret::generate().unwrap().digest(),
            2,
            Duration::days(1),
        )
        .await;
    assert!(
        matches!(fifth, Err(StoreError::CapReached { cap: 2 })),
        "{fifth:?}"
    );
}

#[tokio::test]
async fn ttl_and_sweep_keys_are_set_only_on_expiring_tokens() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let grace = Duration::hours(6);
    let expiring = new_token("hal");
    let expires = expiring.expires.unwrap();
    store
        .create_token(
            expiring.clone(),
            &Secret::generate().unwrap().digest(),
            10,
            grace,
        )
        .await
        .unwrap();
    let mut forever = new_token("hal");
    forever.expires = None;
    store
        .create_token(
            forever.clone(),
            &Secret::generate().unwrap().digest(),
            10,
            grace,
        )
        .await
        .unwrap();

    let items = env.scan_all().await;
    let by_uuid = |uuid: Uuid| {
        items
            .iter()
            .filter(|i| i.get("token_uuid").and_then(|v| v.as_s().ok()) == Some(&uuid.to_string()))
            .collect::<Vec<_>>()
    };
    let due = (expires + grace).timestamp().to_string();
    for item in by_uuid(expiring.uuid) {
        assert_eq!(
            item.get("ttl"),
            Some(&AttributeValue::N(due.clone())),
            "{item:?}"
        );
    }
    let token_item = by_uuid(expiring.uuid)
        .into_iter()
        .find(|i| i.get("number").is_some())
        .unwrap()
        .clone();
    assert_eq!(
        token_item.get("sweep_at"),
        Some(&AttributeValue::N(due.clone()))
    );
    assert_eq!(
        token_item.get("sweep_bucket"),
        Some(&AttributeValue::S(format!(
            "SWEEP#{}",
            (expires + grace).format("%Y-%m-%d")
        )))
    );
    for item in by_uuid(forever.uuid) {
        assert!(
            item.get("ttl").is_none() && item.get("sweep_bucket").is_none(),
            "{item:?}"
        );
    }
}

#[tokio::test]
async fn a_revoke_succeeds_whatever_the_counter_says_and_repairs_it() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let mut made = Vec::new();
    for _ in 0..3 {
        let token = store
            .create_token(
                new_token("hana"),
                &Secret::generate().unwrap().digest(),
                10,
                Duration::days(1),
            )
            .await
            .unwrap();
        made.push(token);
    }
    // An undercount, however it came about: the counter says no token is live.
    env.client
        .update_item()
        .table_name(env.table())
        .key("pk", AttributeValue::S("USER#hana".into()))
        .key("sk", AttributeValue::S("COUNTER".into()))
        .update_expression("SET live = :zero")
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke(
                "hana",
                &made[0].uuid,
                &shared::store::Audit::system(Utc::now())
            )
            .await
            .unwrap(),
        Revoked::Yes
    );
    assert_eq!(store.get_token("hana", &made[0].uuid).await.unwrap(), None);
    // Repaired to the truth: two live tokens.
    let counter = env
        .client
        .get_item()
        .table_name(env.table())
        .key("pk", AttributeValue::S("USER#hana".into()))
        .key("sk", AttributeValue::S("COUNTER".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        counter.item().unwrap()["live"],
        AttributeValue::N("2".into())
    );
    assert_eq!(
        store
            .revoke(
                "hana",
                &made[1].uuid,
                &shared::store::Audit::system(Utc::now())
            )
            .await
            .unwrap(),
        Revoked::Yes
    );
}
