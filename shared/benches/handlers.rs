//! Handler CPU per request: the route handlers and the authorizer over a DynamoDB client whose
//! answers come from `aws_smithy_mocks` in-process, so no network or database time is measured.
//! The client still serializes and signs every request, so `sdk_mock/*` times those SDK calls
//! alone; a handler's own cost is its figure minus the SDK calls it makes.
//! Run through `./scripts/bench` (which publishes the figures), or
//! `cargo bench -p shared --bench handlers`.

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lambda_http::http::StatusCode;
use lambda_http::Request;
use serde_dynamo::aws_sdk_dynamodb_1::to_item;
use shared::authorizer::authorize;
use shared::config::Config;
use shared::store::items::{self, TokenItem};
use shared::store::Store;
use shared::tokens::{Secret, Token};
use shared::{quay, unleash, App};
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::runtime::Runtime;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

const TABLE: &str = "tokens";
const USER: &str = "alice";

/// An event from `events/`, adjusted as JSON. Requests are not `Clone`, so each iteration
/// parses its own copy of the text in criterion's untimed setup.
fn event(name: &str, adjust: impl FnOnce(&mut serde_json::Value)) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text = std::fs::read_to_string(&path);
    let text = text.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    adjust(&mut value);
    value.to_string()
}

fn request(text: &str) -> Request {
    lambda_http::request::from_str(text).expect("an HTTP API event")
}

fn config() -> Config {
    let vars = HashMap::from([("TABLE_NAME".to_owned(), TABLE.to_owned())]);
    Config::from_map(&vars).expect("config")
}

/// A live token item of alice's, as the table holds it.
fn token_item(uuid: Uuid, number: u64, now: DateTime<Utc>) -> (TokenItem, Secret) {
    let secret = Secret::generate().expect("secret");
    let token = Token {
        user_id: USER.into(),
        uuid,
        number,
        title: format!("token {number}"),
        created: now - Duration::days(3),
        expires: Some(now + Duration::days(30)),
        last_used: Some(now - Duration::seconds(10)),
        scopes: Some(vec!["repo:read".into(), "user:read".into()]),
    };
    let item = TokenItem::new(&token, &secret.digest(), Duration::days(1));
    (item, secret)
}

fn to_attributes<T: serde::Serialize>(value: T) -> Item {
    to_item(value).expect("item")
}

/// Answers every call a handler makes: GetItem with `get`, Query with `items`, UpdateItem with a
/// fresh Unleash number, TransactWriteItems with success.
struct Mocked {
    client: Client,
    rules: Vec<Rule>,
}

fn mocked(get: Option<Item>, items: Vec<Item>) -> Mocked {
    let get_rule = mock!(Client::get_item)
        .then_output(move || GetItemOutput::builder().set_item(get.clone()).build());
    let query_rule = mock!(Client::query).then_output(move || {
        QueryOutput::builder()
            .set_items(Some(items.clone()))
            .count(items.len() as i32)
            .build()
    });
    let update_rule = mock!(Client::update_item).then_output(|| {
        UpdateItemOutput::builder()
            .attributes(items::LAST_NUMBER, AttributeValue::N("7".into()))
            .build()
    });
    let write_rule = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let rules = vec![get_rule, query_rule, update_rule, write_rule];
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &rules);
    Mocked { client, rules }
}

impl Mocked {
    fn app(&self) -> App {
        App::new(Store::new(self.client.clone(), TABLE), config(), None)
    }

    /// DynamoDB calls answered so far: GetItem, Query, UpdateItem, TransactWriteItems.
    fn calls(&self) -> [usize; 4] {
        [0, 1, 2, 3].map(|i| self.rules[i].num_calls())
    }
}

/// The production log format (one JSON object a line at `info`), written to nowhere: a log line
/// a handler writes is part of its cost.
fn install_json_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::sink)
        .try_init();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn routes(c: &mut Criterion) {
    install_json_logging();
    let rt = runtime();
    let now = Utc::now();
    let uuid = Uuid::parse_str("6b5aa827-cee5-4fbe-a434-4b7b8a245ca7").expect("uuid");
    let (one, _) = token_item(uuid, 1, now);
    let hundred: Vec<Item> = (1..=100)
        .map(|n| to_attributes(token_item(Uuid::new_v4(), n, now).0))
        .collect();
    let mock = mocked(Some(to_attributes(&one)), hundred);
    let app = mock.app();

    // Every request is checked once, outside the timing, so a bench never times an error path.
    let create = event("create-app-token.json", |_| {});
    let list = event("list-app-tokens.json", |e| {
        e["rawQueryString"] = "".into();
        e.as_object_mut()
            .expect("object")
            .remove("queryStringParameters");
    });
    // The handler's own cost, as for the other routes: the caller in the context (a gateway
    // authorizer's), not the shipped event's header, whose lookup the invocation step measures.
    let list_pats = event("list-pats.json", |e| {
        e["requestContext"]["authorizer"] = serde_json::json!({"lambda": {
            "user_id": "alice", "auth": "pat",
            "token_uuid": "0b6f3c1e-5d2a-4f8e-9c7b-1a2b3c4d5e6f", "scopes": "user:admin"}});
    });
    let get = event("get-app-token.json", |_| {});
    let revoke = event("revoke-app-token.json", |_| {});
    rt.block_on(async {
        let check = |response: lambda_http::Response<lambda_http::Body>, status: StatusCode| {
            assert_eq!(response.status(), status, "{:?}", response.body());
            response
        };
        check(
            quay::create_app_token(&app, request(&create)).await,
            StatusCode::CREATED,
        );
        let listed = check(
            quay::list_app_tokens(&app, request(&list)).await,
            StatusCode::OK,
        );
        let body: serde_json::Value = serde_json::from_slice(listed.body().as_ref()).expect("JSON");
        assert_eq!(body["tokens"].as_array().map(Vec::len), Some(100));
        check(
            unleash::list_pats(&app, request(&list_pats)).await,
            StatusCode::OK,
        );
        check(
            quay::get_app_token(&app, request(&get)).await,
            StatusCode::OK,
        );
        check(
            quay::revoke_app_token(&app, request(&revoke)).await,
            StatusCode::NO_CONTENT,
        );
    });
    // create: UpdateItem + TransactWriteItems; list: 1 Query each; get: GetItem;
    // revoke: GetItem + TransactWriteItems.
    assert_eq!(
        mock.calls(),
        [2, 2, 1, 2],
        "DynamoDB calls per route changed"
    );

    let mut group = c.benchmark_group("routes");
    let mut bench = |name: &str, text: &str, handler: Handler| {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || request(text),
                |request| handler(&app, request),
                BatchSize::SmallInput,
            )
        });
    };
    bench("create", &create, |app, r| {
        Box::pin(quay::create_app_token(app, r))
    });
    bench("list_100", &list, |app, r| {
        Box::pin(quay::list_app_tokens(app, r))
    });
    bench("list_pats_100", &list_pats, |app, r| {
        Box::pin(unleash::list_pats(app, r))
    });
    bench("get", &get, |app, r| Box::pin(quay::get_app_token(app, r)));
    bench("revoke", &revoke, |app, r| {
        Box::pin(quay::revoke_app_token(app, r))
    });
    group.finish();
}

type Response = lambda_http::Response<lambda_http::Body>;
type Handler = for<'a> fn(
    &'a App,
    Request,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + 'a>>;

fn authorizer(c: &mut Criterion) {
    install_json_logging();
    let rt = runtime();
    let now = Utc::now();
    let (item, secret) = token_item(Uuid::new_v4(), 1, now);
    let mock = mocked(Some(to_attributes(item.lookup())), Vec::new());
    let authorizer = App::new(Store::new(mock.client.clone(), TABLE), config(), None);

    let accept: ApiGatewayV2CustomAuthorizerV2Request =
        serde_json::from_str(&event("authorizer.json", |e| {
            e["headers"]["authorization"] = format!("Bearer {}", secret.expose()).into()
        }))
        .expect("an authorizer request");
    // A wrong checksum: the last character changed.
    let mut malformed = accept.clone();
    let mut text = secret.expose().to_owned();
    let last = if text.ends_with('A') { "B" } else { "A" };
    text.replace_range(text.len() - 1.., last);
    malformed.headers.insert(
        "authorization",
        format!("Bearer {text}").parse().expect("header"),
    );

    rt.block_on(async {
        for (request, allowed) in [(&accept, true), (&malformed, false)] {
            let decision = authorize(&authorizer, request.clone()).await;
            assert_eq!(decision.expect("a decision").is_authorized, allowed);
        }
    });
    // One GetItem for the accepted token, no `last used` write (used 10 s ago, within the
    // window), nothing for the malformed one.
    assert_eq!(mock.calls(), [1, 0, 0, 0]);

    let mut group = c.benchmark_group("authorizer");
    for (name, request) in [("accept", &accept), ("reject_malformed", &malformed)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || request.clone(),
                |request| authorize(&authorizer, request),
                BatchSize::SmallInput,
            )
        });
    }
    // The whole handler with its log line switched off: what the log line costs.
    group.bench_function("reject_malformed_unlogged", |b| {
        b.to_async(&rt).iter_batched(
            || malformed.clone(),
            |request| {
                authorize(&authorizer, request)
                    .with_subscriber(tracing::subscriber::NoSubscriber::default())
            },
            BatchSize::SmallInput,
        )
    });
    // The decision alone, without the log line and the response: what the handler adds to it.
    group.bench_function("decide_malformed_unlogged", |b| {
        b.to_async(&rt)
            .iter(|| authorizer.decide(&malformed.headers, now))
    });
    group.finish();
    assert_eq!(mock.calls()[3], 0, "the accept path wrote `last used`");
}

/// The SDK's share: the same calls the handlers make, through the same mocked client, with no
/// handler around them (request building, serialization, signing, the mock's answer).
fn sdk_mock(c: &mut Criterion) {
    let rt = runtime();
    let now = Utc::now();
    let (one, _) = token_item(Uuid::new_v4(), 1, now);
    let hundred: Vec<Item> = (1..=100)
        .map(|n| to_attributes(token_item(Uuid::new_v4(), n, now).0))
        .collect();
    let mock = mocked(Some(to_attributes(&one)), hundred);
    let client = mock.client.clone();
    let key = || {
        HashMap::from([
            (
                items::PK.to_owned(),
                AttributeValue::S(items::user_pk(USER)),
            ),
            (
                items::SK.to_owned(),
                AttributeValue::S(items::token_sk(&Uuid::new_v4())),
            ),
        ])
    };
    let mut group = c.benchmark_group("sdk_mock");
    group.bench_function("get_item", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .get_item()
                .table_name(TABLE)
                .set_key(Some(key()))
                .consistent_read(true)
                .send()
                .await
                .expect("get")
        })
    });
    group.bench_function("update_item", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .update_item()
                .table_name(TABLE)
                .set_key(Some(key()))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", items::LAST_NUMBER)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await
                .expect("update")
        })
    });
    group.bench_function("query_100", |b| {
        b.to_async(&rt).iter(|| async {
            client
                .query()
                .table_name(TABLE)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", items::PK)
                .expression_attribute_names("#sk", items::SK)
                .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(USER)))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(items::TOKEN_SK_PREFIX.into()),
                )
                .consistent_read(true)
                .send()
                .await
                .expect("query")
        })
    });
    group.bench_function("transact_write_3", |b| {
        b.to_async(&rt).iter(|| async {
            let put = |item: Item| {
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(
                        aws_sdk_dynamodb::types::Put::builder()
                            .table_name(TABLE)
                            .set_item(Some(item))
                            .condition_expression("attribute_not_exists(#pk)")
                            .expression_attribute_names("#pk", items::PK)
                            .build()
                            .expect("put"),
                    )
                    .build()
            };
            client
                .transact_write_items()
                .transact_items(put(key()))
                .transact_items(put(to_attributes(&one)))
                .transact_items(put(to_attributes(one.lookup())))
                .send()
                .await
                .expect("transact")
        })
    });
    group.finish();
}

criterion_group!(benches, routes, authorizer, sdk_mock);
criterion_main!(benches);
