//! DynamoDB plumbing the store's calls share: transactions and their cancellation reasons,
//! retries of conflicts with jittered backoff, and which errors mean "try again later".

use super::{Store, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use std::collections::HashMap;
use std::time::Duration as StdDuration;

/// Attempts for a transaction that DynamoDB cancels because another one held the same item.
const CONFLICT_ATTEMPTS: u32 = 10;
const TRANSACTION_CONFLICT: &str = "transaction conflict";

pub(crate) enum Transacted {
    Done,
    /// The indexes of the actions whose conditions failed, in order.
    ConditionFailed(Vec<usize>),
}

impl Store {
    /// One TransactWriteItems, sent again (with backoff) while another transaction holds an item.
    pub(crate) async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        let mut attempt = 0;
        loop {
            match self.transact_once(actions.clone()).await {
                Err(StoreError::Unavailable(reason))
                    if reason == TRANSACTION_CONFLICT && attempt + 1 < CONFLICT_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn transact_once(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Transacted, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Transacted::Done),
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    let codes: Vec<&str> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().unwrap_or("None"))
                        .collect();
                    let failed: Vec<usize> = codes
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c == "ConditionalCheckFailed")
                        .map(|(i, _)| i)
                        .collect();
                    if !failed.is_empty() {
                        Ok(Transacted::ConditionFailed(failed))
                    } else if codes.contains(&"TransactionConflict") {
                        Err(StoreError::Unavailable(TRANSACTION_CONFLICT.into()))
                    } else {
                        Err(StoreError::Unavailable(format!(
                            "transaction cancelled: {}",
                            codes.join(", ")
                        )))
                    }
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(StoreError::Unavailable(TRANSACTION_CONFLICT.into()))
                }
                _ => Err(classify(SdkError::ServiceError(service))),
            },
            Err(other) => Err(classify(other)),
        }
    }
}

/// Jittered exponential backoff: 5 ms, 10 ms, 20 ms, ... capped at 500 ms, with up to 50% jitter.
pub(crate) fn backoff(attempt: u32) -> StdDuration {
    let base = 5u64.saturating_mul(1 << attempt.min(7)).min(500);
    let mut byte = [0u8; 1];
    let jitter = match getrandom::fill(&mut byte) {
        Ok(()) => base * u64::from(byte[0]) / 510,
        Err(_) => 0,
    };
    StdDuration::from_millis(base + jitter)
}

/// Runs a plain (non-transactional) write, retrying when a transaction holds the item.
pub(crate) async fn retry_on_conflict<T, E, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<T, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    >,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e)
                if e.code() == Some("TransactionConflictException")
                    && attempt + 1 < CONFLICT_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(classify(e)),
        }
    }
}

pub(crate) fn num(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(crate) fn parse_item<T: serde::de::DeserializeOwned>(
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn to_item<T: serde::Serialize>(
    value: &T,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(e.to_string())
}

pub(crate) fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

/// Throttling, server-side faults, timeouts and transport failures are "try again later"; the
/// rest fail.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    const TRANSIENT: [&str; 7] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "LimitExceededException",
    ];
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(describe(&err))
        }
        _ if err.code().is_some_and(|code| TRANSIENT.contains(&code)) => {
            StoreError::Unavailable(describe(&err))
        }
        _ => StoreError::Failed(describe(&err)),
    }
}

fn describe<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
>(
    err: &SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string(),
    }
}
