//! DynamoDB faults injected in-process (aws-smithy-mocks) and a DynamoDB that accepts
//! connections and never answers: throttling, outages and stalls answer 503 with `Retry-After`
//! in the route's dialect, never a 500, a failed create writes nothing, and the authorizer
//! fails its invocation (API Gateway's retryable 500) instead of denying.

use crate::support::*;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::{InternalServerError, ProvisionedThroughputExceededException};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use shared::config::Config;
use shared::store::Store;
use shared::App;
use std::collections::HashMap;

fn app(client: Client) -> App {
    let vars: HashMap<String, String> = [("TABLE_NAME".to_owned(), "tokens".to_owned())].into();
    App::new(
        Store::new(client, "tokens"),
        Config::from_map(&vars).unwrap(),
        None,
    )
}

/// A client answered by the rules, without the SDK's own retries (they would only slow the test).
macro_rules! client {
    ($($rule:expr),+) => {
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [$($rule),+], |config| config.retry_config(RetryConfig::disabled()))
    };
}

/// Errors as the SDK deserializes them from DynamoDB's answers: the code is in the metadata.
fn wire(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn throttled() -> ProvisionedThroughputExceededException {
    let message = "Rate of requests exceeds the allowed throughput";
    ProvisionedThroughputExceededException::builder()
        .message(message)
        .meta(wire("ProvisionedThroughputExceededException", message))
        .build()
}

#[tokio::test]
async fn throttled_reads_answer_503_with_retry_after_in_both_dialects() {
    let get = mock!(Client::get_item)
        .then_error(|| GetItemError::ProvisionedThroughputExceededException(throttled()));
    let query = mock!(Client::query)
        .then_error(|| QueryError::ProvisionedThroughputExceededException(throttled()));
    let app = app(client!(&get, &query));

    let quay =
        answer(shared::quay::get_app_token(&app, request(&event("get-app-token.json"))).await);
    assert_quay_error(&quay, 503, "service_unavailable");
    assert_eq!(quay.header("retry-after"), Some("1"));

    let unleash = answer(shared::unleash::list_pats(&app, request(&event("list-pats.json"))).await);
    assert_eq!(unleash.status, 503, "{}", unleash.text);
    assert_eq!(unleash.json()["name"], "ServiceUnavailableError");
    assert_eq!(unleash.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn an_outage_during_create_answers_503_and_writes_no_token() {
    // The id is issued, then the transaction that would write the token and its lookup fails.
    let number = mock!(Client::update_item).then_output(|| {
        UpdateItemOutput::builder()
            .attributes("last_number", AttributeValue::N("1".into()))
            .build()
    });
    let transaction = mock!(Client::transact_write_items).then_error(|| {
        TransactWriteItemsError::InternalServerError(
            InternalServerError::builder()
                .message("down")
                .meta(wire("InternalServerError", "down"))
                .build(),
        )
    });
    let puts = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let app = app(client!(&number, &transaction, &puts));

    let created = answer(
        shared::quay::create_app_token(&app, request(&event("create-app-token.json"))).await,
    );
    assert_quay_error(&created, 503, "service_unavailable");
    assert_eq!(created.header("retry-after"), Some("1"));
    assert_eq!(transaction.num_calls(), 1);
    assert_eq!(
        puts.num_calls(),
        0,
        "a token or lookup record was written outside the transaction"
    );
}

#[tokio::test]
async fn an_unavailable_counter_answers_503_in_unleash() {
    let number = mock!(Client::update_item)
        .then_error(|| UpdateItemError::ProvisionedThroughputExceededException(throttled()));
    let query = mock!(Client::query).then_output(|| QueryOutput::builder().build());
    let app = app(client!(&number, &query));
    let created =
        answer(shared::unleash::create_pat(&app, request(&event("create-pat.json"))).await);
    assert_eq!(created.status, 503, "{}", created.text);
    assert_eq!(created.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn the_authorizer_fails_its_invocation_when_dynamodb_is_down() {
    let get = mock!(Client::get_item).then_error(|| {
        GetItemError::InternalServerError(
            InternalServerError::builder()
                .message("down")
                .meta(wire("InternalServerError", "down"))
                .build(),
        )
    });
    let app = app(client!(&get));
    let authorizer = shared::App::new(app.store.clone(), app.config.clone(), None);
    let secret = shared::tokens::Secret::generate().unwrap();
    let mut request = event("authorizer.json");
    request["headers"]["authorization"] = format!("Bearer {}", secret.expose()).into();
    let request = serde_json::from_value(request).unwrap();
    let failed = shared::authorizer::authorize(&authorizer, request).await;
    let error = failed.expect_err("a DynamoDB outage must not be a deny (403) or an allow");
    assert!(error.to_string().contains("store_unavailable"), "{error}");
    assert_eq!(get.num_calls(), 1);
}

/// A "DynamoDB" that accepts connections and never answers. Its sockets live as long as it does.
async fn stalled_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_stalled_dynamodb_answers_503_before_the_function_timeout() {
    let (url, server) = stalled_endpoint().await;
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(&url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .timeout_config(shared::app::dynamodb_timeouts())
        .build();
    let app = app(Client::from_conf(config));
    let started = std::time::Instant::now();
    let (quay, unleash) = tokio::join!(
        shared::quay::get_app_token(&app, request(&event("get-app-token.json"))),
        shared::unleash::list_pats(&app, request(&event("list-pats.json")))
    );
    let elapsed = started.elapsed();
    let quay = answer(quay);
    assert_quay_error(&quay, 503, "service_unavailable");
    assert_eq!(quay.header("retry-after"), Some("1"));
    let unleash = answer(unleash);
    assert_eq!(unleash.status, 503, "{}", unleash.text);
    assert_eq!(unleash.header("retry-after"), Some("1"));
    // The configured operation timeout bounds it, far inside the functions' 10 s.
    assert!(
        elapsed < std::time::Duration::from_secs(9),
        "took {elapsed:?}"
    );
    server.abort();
}

/// Fails, before it is sent, every request of one DynamoDB operation whose body contains a
/// string (a token's uuid, a user's id): a fault for one item of a real DynamoDB Local table.
/// Counts the requests it failed.
#[derive(Debug, Clone)]
pub(crate) struct FailRequests {
    operation: &'static str,
    needle: String,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FailRequests {
    /// A client like `client` (same endpoint and interceptors) with this fault added.
    pub(crate) fn on(
        client: &Client,
        operation: &'static str,
        needle: impl Into<String>,
    ) -> (Client, FailRequests) {
        let fault = FailRequests {
            operation,
            needle: needle.into(),
            failed: Default::default(),
        };
        let config = client
            .config()
            .to_builder()
            .interceptor(fault.clone())
            .build();
        (Client::from_conf(config), fault)
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_sdk_dynamodb::config::Intercept for FailRequests {
    fn name(&self) -> &'static str {
        "FailRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1));
        let body = request.body().bytes().unwrap_or_default();
        if operation == Some(self.operation) && String::from_utf8_lossy(body).contains(&self.needle)
        {
            self.failed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(format!("injected fault: {} on {}", self.operation, self.needle).into());
        }
        Ok(())
    }
}
