//! The item reader against serde_dynamo (`super::items`).

use super::*;
use crate::tokens::Secret;
use proptest::prelude::*;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

fn token(title: String, expires: Option<i64>, last_used: Option<i64>, number: u64) -> Token {
    let scopes = match number % 3 {
        0 => None,
        1 => Some(vec![]),
        _ => Some(vec!["repo:read".into(), "ä b".into()]),
    };
    Token {
        scopes,
        user_id: "user-ä \"q\"".into(),
        uuid: Uuid::new_v4(),
        number,
        title,
        created: from_millis(1_700_000_000_123),
        expires: expires.map(from_millis),
        last_used: last_used.map(from_millis),
    }
}

proptest! {
    #[test]
    fn reads_what_serde_dynamo_writes_and_reads(
        title in "\\PC{0,40}",
        expires in proptest::option::of(0i64..4_000_000_000_000),
        last_used in proptest::option::of(0i64..4_000_000_000_000),
        number in 1u64..u64::from(u32::MAX),
    ) {
        let item = TokenItem::new(
            &token(title, expires, last_used, number),
            &Secret::generate().unwrap().digest(),
            Duration::days(1),
        );
        let attributes: HashMap<String, AttributeValue> = to_item(&item).unwrap();
        let by_serde_dynamo: TokenItem = from_item(attributes.clone()).unwrap();
        let by_hand = TokenItem::try_from(attributes).unwrap();
        prop_assert_eq!(&by_hand, &item);
        prop_assert_eq!(&by_hand, &by_serde_dynamo);
    }
}

#[test]
fn refuses_what_is_not_a_token_item() {
    let item = TokenItem::new(
        &token("t".into(), Some(1_800_000_000_000), None, 3),
        &Secret::generate().unwrap().digest(),
        Duration::days(1),
    );
    let good: HashMap<String, AttributeValue> = to_item(&item).unwrap();
    let mut missing = good.clone();
    missing.remove("title");
    assert_eq!(
        TokenItem::try_from(missing).unwrap_err(),
        "missing attribute title"
    );
    let mut bad_uuid = good.clone();
    bad_uuid.insert("token_uuid".into(), AttributeValue::S("nope".into()));
    assert!(TokenItem::try_from(bad_uuid)
        .unwrap_err()
        .contains("not a uuid"));
    let mut text_number = good.clone();
    text_number.insert("number".into(), AttributeValue::S("3".into()));
    assert!(TokenItem::try_from(text_number)
        .unwrap_err()
        .contains("not a number"));
    let mut negative = good;
    negative.insert("number".into(), AttributeValue::N("-3".into()));
    assert!(TokenItem::try_from(negative)
        .unwrap_err()
        .contains("negative"));
}
