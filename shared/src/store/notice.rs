//! What expiry notifications read and write (`crate::notify` runs them): the tokens expiring in
//! a window, from the sparse `sweep` index (so reads grow with the tokens in the window, never
//! with the table); the claim a run holds on a user while it announces them; a consistent
//! read of the candidates; and the marker a token gets once its announcement was accepted.

use super::dynamo::{backoff, build_error, classify, is_condition_failure, num, retry_on_conflict};
use super::items::{self, Key, TokenItem, SWEEP_INDEX};
use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// BatchGetItem reads at most this many keys a call.
const BATCH_GET_KEYS: usize = 100;
/// Unprocessed keys are asked for again this many times.
const BATCH_GET_ATTEMPTS: u32 = 8;

/// What reading a window cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowRead {
    /// Index items read: the tokens in the window.
    pub items: u64,
    /// Query pages read (one or more per day bucket the window touches).
    pub pages: u64,
}

impl Store {
    /// Tokens expiring after `after` and at or before `until`, from the `sweep` index, which
    /// keys tokens by expiry + `grace`: one Query per day bucket the window touches (every page
    /// followed), each reading only the window's items, whole (the index projects them all).
    /// The index is eventually consistent: callers read them again (`token_items`) to act.
    pub async fn expiring_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        grace: Duration,
    ) -> Result<(Vec<TokenItem>, WindowRead), StoreError> {
        let low = items::sweep_due(after, grace).timestamp().saturating_add(1);
        let high = items::sweep_due(until, grace).timestamp();
        let mut found = Vec::new();
        let mut read = WindowRead::default();
        let mut day = items::sweep_due(after, grace).date_naive();
        let last = items::sweep_due(until, grace).date_naive();
        while day <= last {
            let bucket = items::sweep_bucket(day.and_time(chrono::NaiveTime::MIN).and_utc());
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .key_condition_expression("#bucket = :bucket AND #at BETWEEN :low AND :high")
                .expression_attribute_names("#bucket", items::SWEEP_BUCKET)
                .expression_attribute_names("#at", items::SWEEP_AT)
                .expression_attribute_values(":bucket", AttributeValue::S(bucket))
                .expression_attribute_values(":low", num(low))
                .expression_attribute_values(":high", num(high))
                .set_limit(self.page_size)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                read.pages += 1;
                for item in page.map_err(classify)?.items.unwrap_or_default() {
                    read.items += 1;
                    found.push(TokenItem::read(item)?);
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        Ok((found, read))
    }

    /// Claims announcing `user_id`'s tokens for the `days` threshold, for `run`, until `until`:
    /// `false` when another run holds a claim that has not run out. One conditional PutItem.
    pub async fn claim_notice(
        &self,
        user_id: &str,
        days: u32,
        run: &Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut item = items::notice_claim_key(user_id, days);
        item.insert(items::NOTICE_RUN.into(), AttributeValue::S(run.to_string()));
        item.insert(items::NOTICE_UNTIL_MS.into(), num(until.timestamp_millis()));
        let expires = until.checked_add_signed(Duration::days(1)).unwrap_or(until);
        item.insert(items::TTL.into(), num(expires.timestamp()));
        let put = || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(#pk) OR #until < :now")
                .expression_attribute_names("#pk", items::PK)
                .expression_attribute_names("#until", items::NOTICE_UNTIL_MS)
                .expression_attribute_values(":now", num(now.timestamp_millis()))
                .send()
        };
        match put().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    /// Gives up `run`'s claim (a claim another run took over since is left alone).
    pub async fn release_notice(
        &self,
        user_id: &str,
        days: u32,
        run: &Uuid,
    ) -> Result<(), StoreError> {
        let key = items::notice_claim_key(user_id, days);
        let delete = || {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .condition_expression("#run = :run")
                .expression_attribute_names("#run", items::NOTICE_RUN)
                .expression_attribute_values(":run", AttributeValue::S(run.to_string()))
                .send()
        };
        match delete().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// The token items of `tokens` (owner, uuid) that still exist, read strongly consistent:
    /// BatchGetItem, 100 keys a call, unprocessed keys asked for again with backoff.
    pub async fn token_items(
        &self,
        tokens: &[(String, Uuid)],
    ) -> Result<Vec<TokenItem>, StoreError> {
        let mut found = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(BATCH_GET_KEYS) {
            let mut keys: Vec<Key> = chunk
                .iter()
                .map(|(user_id, uuid)| items::token_key(user_id, uuid))
                .collect();
            let mut attempt = 0;
            while !keys.is_empty() {
                if attempt >= BATCH_GET_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem left keys unprocessed".into(),
                    ));
                }
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(classify)?;
                for item in output
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.push(TokenItem::read(item)?);
                }
                keys = output
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                    .map(|rest| rest.keys)
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }

    /// Marks the token announced for `days`, on the condition that it still carries `digest`
    /// (neither revoked nor rotated since it was read) and no threshold as small was marked:
    /// `false` when that no longer holds. One conditional UpdateItem.
    pub async fn mark_noticed(
        &self,
        user_id: &str,
        uuid: &Uuid,
        digest: &str,
        days: u32,
    ) -> Result<bool, StoreError> {
        let key = items::token_key(user_id, uuid);
        let update = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("SET #noticed = :days")
                .condition_expression(
                    "#digest = :digest AND (attribute_not_exists(#noticed) OR #noticed > :days)",
                )
                .expression_attribute_names("#noticed", items::NOTICED_DAYS)
                .expression_attribute_names("#digest", items::DIGEST)
                .expression_attribute_values(":digest", AttributeValue::S(digest.to_owned()))
                .expression_attribute_values(":days", num(days))
                .send()
        };
        match retry_on_conflict(update).await {
            Ok(_) => Ok(true),
            Err(StoreError::Failed(reason)) if reason.starts_with("ConditionalCheckFailed") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
