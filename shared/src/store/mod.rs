//! Tokens in one DynamoDB table. A token item and its lookup record are always written and
//! deleted in one transaction, so neither exists without the other. The store knows nothing
//! of the dialects; it speaks in `Token`s.

pub mod items;
mod sweep;

pub use sweep::{SweepLimits, SweepReport};

use crate::tokens::{SecretDigest, Token};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use items::{LookupItem, NumberIndexItem, TokenItem};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, or DynamoDB unreachable: the caller may retry later.
    #[error("DynamoDB is unavailable: {0}")]
    Unavailable(String),
    #[error("the limit of {cap} live tokens is reached")]
    CapReached { cap: u32 },
    #[error("malformed item in the table: {0}")]
    Corrupt(String),
    #[error("DynamoDB request failed: {0}")]
    Failed(String),
}

/// What an authorization needs, read from the lookup record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub user_id: String,
    pub token_uuid: Uuid,
    pub digest: SecretDigest,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
}

/// A token found by its Unleash number. The `by_number` index projects the secret's digest and
/// the expiry, so revoking it needs no second read; a table whose index predates that
/// projection gives only the uuid, and the revoke reads the token first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedToken {
    pub uuid: Uuid,
    revoke_keys: Option<RevokeKeys>,
}

/// What a revoke needs besides the token's key: the lookup record's key and whether the token
/// still counts against the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RevokeKeys {
    digest: String,
    expires_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Yes,
    NotFound,
}

/// The fields of a token to create; the store issues its Unleash number.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: String,
    pub uuid: Uuid,
    pub title: String,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
}

/// Attempts for a transaction that DynamoDB cancels because another one held the same item.
const CONFLICT_ATTEMPTS: u32 = 10;

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    /// `Limit` of list and sweep Queries; `None` reads DynamoDB's whole 1 MB pages (about
    /// 3,000 tokens), so a user's list is one Query.
    page_size: Option<i32>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
            page_size: None,
        }
    }

    /// Items per Query page (default: as many as fit DynamoDB's 1 MB page). Lists and sweeps
    /// always follow every page; this only sets their size, for tests of the paging.
    pub fn with_page_size(mut self, page_size: i32) -> Store {
        self.page_size = Some(page_size.max(1));
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates a token and its lookup record in one transaction that also counts it against the
    /// user's cap. Calls: UpdateItem (issue the number) + TransactWriteItems; on a full cap, one
    /// recount of the user's tokens (GetItem + Query pages) and one more transaction.
    pub async fn create_token(
        &self,
        new: NewToken,
        digest: &SecretDigest,
        cap: u32,
        grace: Duration,
    ) -> Result<Token, StoreError> {
        let number = self.issue_number(&new.user_id).await?;
        let token = Token {
            user_id: new.user_id,
            uuid: new.uuid,
            number,
            title: new.title,
            created: new.created,
            expires: new.expires,
            last_used: None,
        };
        let item = TokenItem::new(&token, digest, grace);
        match self.insert(&item, cap).await {
            Err(StoreError::CapReached { .. })
                if self.recount_live(&token.user_id, token.created).await? =>
            {
                self.insert(&item, cap).await?
            }
            other => other?,
        }
        Ok(token)
    }

    async fn issue_number(&self, user_id: &str) -> Result<u64, StoreError> {
        let key = counter_key(user_id);
        let output = retry_on_conflict(|| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", items::LAST_NUMBER)
                .expression_attribute_values(":one", num(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
        })
        .await?;
        output
            .attributes()
            .and_then(|a| a.get(items::LAST_NUMBER))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("counter returned no number".into()))
    }

    async fn insert(&self, item: &TokenItem, cap: u32) -> Result<(), StoreError> {
        let token_item = to_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let lookup_item = to_item(item.lookup()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(counter_key(&item.user_id)))
            .update_expression("SET #live = if_not_exists(#live, :zero) + :one")
            .condition_expression("attribute_not_exists(#live) OR #live < :cap")
            .expression_attribute_names("#live", items::LIVE)
            .expression_attribute_values(":zero", num(0))
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":cap", num(cap))
            .build()
            .map_err(build_error)?;
        let put_token = Put::builder()
            .table_name(&self.table)
            .set_item(Some(token_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .build()
            .map_err(build_error)?;
        let put_lookup = Put::builder()
            .table_name(&self.table)
            .set_item(Some(lookup_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().put(put_token).build(),
            TransactWriteItem::builder().put(put_lookup).build(),
        ];
        match self.transact(actions).await? {
            Transacted::Done => Ok(()),
            Transacted::ConditionFailed(0) => Err(StoreError::CapReached { cap }),
            Transacted::ConditionFailed(_) => Err(StoreError::Failed(
                "token uuid or secret digest already in use".into(),
            )),
        }
    }

    /// The live counter is an upper bound: tokens that expire, or that cleanup and DynamoDB TTL
    /// delete, are not subtracted. When the cap is hit, count the user's unexpired tokens and
    /// lower the counter to that, conditional on it being unchanged since it was read (read
    /// before the tokens, so a create or revoke in between makes the condition fail).
    /// Returns whether the counter was lowered.
    pub async fn recount_live(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let counter = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(counter_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(observed) = counter
            .item()
            .and_then(|i| i.get(items::LIVE))
            .and_then(|v| v.as_n().ok())
            .cloned()
        else {
            return Ok(false);
        };
        let observed_count: u64 = observed
            .parse()
            .map_err(|_| StoreError::Corrupt("live counter".into()))?;
        let live = self
            .list_tokens(user_id)
            .await?
            .iter()
            .filter(|t| !t.is_expired(now))
            .count() as u64;
        if live >= observed_count {
            return Ok(false);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(counter_key(user_id)))
            .update_expression("SET #live = :live")
            .condition_expression("#live = :observed")
            .expression_attribute_names("#live", items::LIVE)
            .expression_attribute_values(":live", num(live))
            .expression_attribute_values(":observed", AttributeValue::N(observed))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    /// One strongly consistent GetItem.
    pub async fn get_token(&self, user_id: &str, uuid: &Uuid) -> Result<Option<Token>, StoreError> {
        Ok(self
            .get_token_item(user_id, uuid)
            .await?
            .map(TokenItem::into_token))
    }

    async fn get_token_item(
        &self,
        user_id: &str,
        uuid: &Uuid,
    ) -> Result<Option<TokenItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(items::user_pk(user_id), items::token_sk(uuid))))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        output.item.map(parse_token_item).transpose()
    }

    /// Every token of the user, expired ones included (callers filter: TTL is lazy).
    /// One strongly consistent Query per page, following `LastEvaluatedKey` to the end.
    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<Token>, StoreError> {
        let mut tokens = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", items::PK)
                .expression_attribute_names("#sk", items::SK)
                .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user_id)))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(items::TOKEN_SK_PREFIX.into()),
                )
                .consistent_read(true)
                .set_limit(self.page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            for item in page.items.unwrap_or_default() {
                tokens.push(parse_token_item(item)?.into_token());
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(tokens),
            }
        }
    }

    /// The user's token with this Unleash id: one strongly consistent Query on the local index.
    pub async fn find_by_number(
        &self,
        user_id: &str,
        number: u64,
    ) -> Result<Option<NumberedToken>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(items::NUMBER_INDEX)
            .key_condition_expression("#pk = :pk AND #n = :n")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#n", items::NUMBER)
            .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user_id)))
            .expression_attribute_values(":n", num(number))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = output.items.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let index: NumberIndexItem = parse_item(item)?;
        let uuid = index
            .sk
            .strip_prefix(items::TOKEN_SK_PREFIX)
            .and_then(|u| Uuid::parse_str(u).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("bad token sort key {:?}", index.sk)))?;
        let revoke_keys = index.digest.map(|digest| RevokeKeys {
            digest,
            expires_ms: index.expires_ms,
        });
        Ok(Some(NumberedToken { uuid, revoke_keys }))
    }

    /// Revokes a token found by `find_by_number`: one TransactWriteItems when the index carried
    /// the digest and expiry, else as `revoke`.
    pub async fn revoke_numbered(
        &self,
        user_id: &str,
        token: &NumberedToken,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        match &token.revoke_keys {
            Some(keys) => self.revoke_with(user_id, &token.uuid, keys, now).await,
            None => self.revoke(user_id, &token.uuid, now).await,
        }
    }

    /// Deletes the token, its lookup record and (if it was still live) its place under the cap,
    /// in one transaction, after one strongly consistent GetItem for the secret's digest.
    /// Expired tokens not yet swept are revoked too; absent ones are `NotFound`.
    pub async fn revoke(
        &self,
        user_id: &str,
        uuid: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let Some(item) = self.get_token_item(user_id, uuid).await? else {
            return Ok(Revoked::NotFound);
        };
        let keys = RevokeKeys {
            digest: item.digest,
            expires_ms: item.expires_ms,
        };
        self.revoke_with(user_id, uuid, &keys, now).await
    }

    /// The revoke's transaction: delete the token (it must still exist), its lookup record and,
    /// if it had not expired, its place under the cap.
    async fn revoke_with(
        &self,
        user_id: &str,
        uuid: &Uuid,
        keys: &RevokeKeys,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let delete_token = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::user_pk(user_id), items::token_sk(uuid))))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .build()
            .map_err(build_error)?;
        let delete_lookup = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("SECRET#{}", keys.digest),
                items::SECRET_SK.into(),
            )))
            .build()
            .map_err(build_error)?;
        let mut actions = vec![
            TransactWriteItem::builder().delete(delete_token).build(),
            TransactWriteItem::builder().delete(delete_lookup).build(),
        ];
        let expired = keys
            .expires_ms
            .is_some_and(|ms| items::from_millis(ms) <= now);
        if !expired {
            let uncount = Update::builder()
                .table_name(&self.table)
                .set_key(Some(counter_key(user_id)))
                .update_expression("ADD #live :minus_one")
                .condition_expression("#live > :zero")
                .expression_attribute_names("#live", items::LIVE)
                .expression_attribute_values(":minus_one", num(-1))
                .expression_attribute_values(":zero", num(0))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().update(uncount).build());
        }
        match self.transact(actions).await? {
            Transacted::Done => Ok(Revoked::Yes),
            // Revoked concurrently by another call.
            Transacted::ConditionFailed(0) => Ok(Revoked::NotFound),
            Transacted::ConditionFailed(_) => {
                Err(StoreError::Corrupt("live counter already at zero".into()))
            }
        }
    }

    /// One strongly consistent GetItem, so a token revoked before this call never authenticates.
    pub async fn find_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(items::secret_pk(digest), items::SECRET_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let lookup: LookupItem = parse_item(item)?;
        let stored = SecretDigest::from_hex(&lookup.digest)
            .ok_or_else(|| StoreError::Corrupt("lookup digest".into()))?;
        if !stored.matches(digest) {
            return Ok(None);
        }
        Ok(Some(SecretRecord {
            user_id: lookup.user_id,
            token_uuid: lookup.token_uuid,
            digest: stored,
            expires: lookup.expires_ms.map(items::from_millis),
            last_used: lookup.last_used_ms.map(items::from_millis),
        }))
    }

    /// Records a use, at most once per `throttle` window: nothing is sent when the record's
    /// `last used` is within the window; otherwise one transaction updates the lookup record
    /// (only if still stale, so concurrent uses write once) and the token (only if it still
    /// exists, so a revoked token is never recreated). A stored time in the future counts as
    /// stale, so a clock that ran ahead cannot freeze the field. Returns whether it wrote.
    pub async fn record_use(
        &self,
        record: &SecretRecord,
        now: DateTime<Utc>,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        if let Some(last) = record.last_used {
            if last <= now && now - last < throttle {
                return Ok(false);
            }
        }
        let now_ms = num(now.timestamp_millis());
        let cutoff_ms = num((now - throttle).timestamp_millis());
        let touch_lookup = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(items::secret_pk(&record.digest), items::SECRET_SK.into())))
            .update_expression("SET #used = :now")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#used) OR #used <= :cutoff OR #used > :now)",
            )
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#used", items::LAST_USED_MS)
            .expression_attribute_values(":now", now_ms.clone())
            .expression_attribute_values(":cutoff", cutoff_ms)
            .build()
            .map_err(build_error)?;
        let touch_token = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                items::user_pk(&record.user_id),
                items::token_sk(&record.token_uuid),
            )))
            .update_expression("SET #used = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#used", items::LAST_USED_MS)
            .expression_attribute_values(":now", now_ms)
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().update(touch_lookup).build(),
            TransactWriteItem::builder().update(touch_token).build(),
        ];
        Ok(matches!(
            self.transact_once(actions).await?,
            Transacted::Done
        ))
    }

    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<Transacted, StoreError> {
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

    async fn transact_once(
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
                    if let Some(index) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
                        Ok(Transacted::ConditionFailed(index))
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

const TRANSACTION_CONFLICT: &str = "transaction conflict";

enum Transacted {
    Done,
    /// The index of the action whose condition failed.
    ConditionFailed(usize),
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
async fn retry_on_conflict<T, E, F, Fut>(mut call: F) -> Result<T, StoreError>
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

fn counter_key(user_id: &str) -> HashMap<String, AttributeValue> {
    key(items::user_pk(user_id), items::COUNTER_SK.into())
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (items::PK.to_owned(), AttributeValue::S(pk)),
        (items::SK.to_owned(), AttributeValue::S(sk)),
    ])
}

fn num(n: impl ToString) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn parse_item<T: serde::de::DeserializeOwned>(
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_token_item(item: HashMap<String, AttributeValue>) -> Result<TokenItem, StoreError> {
    TokenItem::try_from(item).map_err(StoreError::Corrupt)
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

/// Throttling, server-side faults and transport failures are "try again later"; the rest fail.
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
