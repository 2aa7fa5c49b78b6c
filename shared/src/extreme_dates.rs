//! Property test: no requested expiry, however extreme, can make a create panic (a panic aborts
//! the warm instance and API Gateway answers 500). Every value answers 201 or a 400 naming the
//! field, in both dialects, under every lifetime configuration, with DynamoDB answered by mocks.

use crate::config::Config;
use crate::store::Store;
use crate::App;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use lambda_http::{Body, Request};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Every valid combination of default lifetime, maximum and removal grace, extremes included.
fn configurations() -> Vec<Config> {
    let mut configs = Vec::new();
    for default in ["never", "1s", "90d", "100y"] {
        for max in ["none", "1s", "366d", "100y"] {
            for grace in ["0s", "1d", "100y"] {
                let vars: HashMap<String, String> = [
                    ("TABLE_NAME", "tokens"),
                    ("DEFAULT_TOKEN_LIFETIME", default),
                    ("MAX_TOKEN_LIFETIME", max),
                    ("TOKEN_TTL_GRACE", grace),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
                configs.extend(Config::from_map(&vars).ok());
            }
        }
    }
    configs
}

fn app(config: Config) -> App {
    let number = mock!(Client::update_item).then_output(|| {
        UpdateItemOutput::builder()
            .attributes("last_number", AttributeValue::N("1".into()))
            .build()
    });
    let query = mock!(Client::query).then_output(|| QueryOutput::builder().build());
    let transaction = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&number, &query, &transaction],
        |c| c.retry_config(RetryConfig::disabled())
    );
    App::new(Store::new(client, "tokens"), config, None)
}

fn post(path: &str, body: &Value) -> Request {
    let event = json!({
        "version": "2.0", "routeKey": format!("POST {path}"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"}, "isBase64Encoded": false,
        "body": body.to_string(),
        "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "h", "domainPrefix": "h",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": format!("POST {path}"), "stage": "$default",
            "time": "01/Jan/2025:00:00:00 +0000", "timeEpoch": 0,
            "authorizer": {"lambda": {"user_id": "u", "auth": "jwt", "scopes": "user:admin"}}
        }
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid event")
}

/// 201, or a 400 whose body names the field.
fn assert_created_or_refused(response: lambda_http::Response<Body>, field: &str) {
    let status = response.status().as_u16();
    let text = match response.body() {
        Body::Text(text) => text.clone(),
        _ => String::new(),
    };
    assert!(
        status == 201 || (status == 400 && text.contains(field)),
        "{status}: {text}"
    );
}

/// RFC 3339 date-times from year 0 to 9999, with offsets up to ±23:59.
fn date_time() -> impl Strategy<Value = String> {
    (
        0u32..=9999,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        prop_oneof![
            Just(String::from("Z")),
            (-23i32..=23, 0u32..60).prop_map(|(h, m)| format!(
                "{}{:02}:{m:02}",
                if h < 0 { '-' } else { '+' },
                h.abs()
            ))
        ],
    )
        .prop_map(|(y, mo, d, h, mi, offset)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:59.999{offset}")
        })
}

fn seconds() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        (-4_000_000_000_000i64..4_000_000_000_000).prop_map(|n| json!(n)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_expiry_value_makes_a_create_panic(seconds in seconds(), date in date_time()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for config in configurations() {
            let app = app(config);
            runtime.block_on(async {
                for expiration in [seconds.clone(), json!(date.clone())] {
                    let body = json!({"title": "t", "expiration": expiration});
                    let quay = crate::quay::create_app_token(&app, post("/api/v1/user/apptoken", &body)).await;
                    assert_created_or_refused(quay, "expiration");
                }
                let body = json!({"description": "d", "expiresAt": date.clone()});
                let unleash = crate::unleash::create_pat(&app, post("/api/admin/user/tokens", &body)).await;
                assert_created_or_refused(unleash, "expiresAt");
            });
        }
    }
}

#[tokio::test]
async fn an_expiry_within_the_grace_of_the_last_date_is_a_400() {
    let vars: HashMap<String, String> = [
        ("TABLE_NAME", "tokens"),
        ("DEFAULT_TOKEN_LIFETIME", "never"),
        ("MAX_TOKEN_LIFETIME", "none"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let app = app(Config::from_map(&vars).unwrap());
    let now = chrono::Utc::now().timestamp();
    // chrono's last instant is in year 262143; this lands a few hours before it.
    let near_max = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp() - now - 3_600;
    for seconds in [near_max, i64::MAX / 1_000, i64::MAX] {
        let body = json!({"title": "t", "expiration": seconds});
        let response =
            crate::quay::create_app_token(&app, post("/api/v1/user/apptoken", &body)).await;
        assert_eq!(response.status().as_u16(), 400, "{seconds}");
    }
    let body = json!({"title": "t", "expiration": "9999-12-31T23:59:59.999Z"});
    let response = crate::quay::create_app_token(&app, post("/api/v1/user/apptoken", &body)).await;
    assert_eq!(response.status().as_u16(), 201);
}
