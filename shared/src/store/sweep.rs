//! Removing tokens whose expiry + grace has passed, through the sparse `sweep` index: reads grow
//! with the number of due tokens, never with the table. Deletes are unconditional BatchWriteItem
//! requests, so two overlapping runs, or a re-run after a failure, converge on the same state.

use super::items::{self, SWEEP_INDEX};
use super::{backoff, classify, key, Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::time::Instant;

/// BatchWriteItem takes at most 25 requests; a token and its lookup record are two.
const BATCH_LIMIT: usize = 25;
const UNPROCESSED_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Copy)]
pub struct SweepLimits {
    /// Days of buckets before today to look in. Older items are DynamoDB TTL's to delete.
    pub lookback_days: i64,
    /// Stop starting new work once this instant is reached.
    pub stop_at: Option<Instant>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Tokens deleted (each with its lookup record).
    pub deleted: u64,
    /// Index items read.
    pub examined: u64,
    /// Query pages read.
    pub pages: u64,
    /// Due tokens read but left for the next run because time ran out.
    pub pending: u64,
    /// True when the run stopped before the end of the index; the next run continues.
    pub stopped_early: bool,
}

impl Store {
    pub async fn sweep_expired(
        &self,
        now: DateTime<Utc>,
        limits: SweepLimits,
    ) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let out_of_time = || limits.stop_at.is_some_and(|at| Instant::now() >= at);
        // Deletes waiting for a full batch; a token's two deletes are pushed together, in order.
        let mut queued: Vec<WriteRequest> = Vec::new();
        let mut flushed: u64 = 0;
        for days_ago in (0..=limits.lookback_days.max(0)).rev() {
            let bucket = items::sweep_bucket(now - Duration::days(days_ago));
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                if out_of_time() {
                    return Ok(stopped(report, flushed));
                }
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(SWEEP_INDEX)
                    .key_condition_expression("#bucket = :bucket AND #at <= :now")
                    .expression_attribute_names("#bucket", items::SWEEP_BUCKET)
                    .expression_attribute_names("#at", items::SWEEP_AT)
                    .expression_attribute_values(":bucket", AttributeValue::S(bucket.clone()))
                    .expression_attribute_values(
                        ":now",
                        AttributeValue::N(now.timestamp().to_string()),
                    )
                    .set_limit(self.page_size)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(classify)?;
                report.pages += 1;
                for item in page.items.unwrap_or_default() {
                    report.examined += 1;
                    queued.extend(deletes_for(&item)?);
                }
                while queued.len() >= BATCH_LIMIT {
                    if out_of_time() {
                        return Ok(stopped(report, flushed));
                    }
                    self.delete_all(queued.drain(..BATCH_LIMIT).collect())
                        .await?;
                    flushed += BATCH_LIMIT as u64;
                }
                match page.last_evaluated_key {
                    Some(next) if !next.is_empty() => start = Some(next),
                    _ => break,
                }
            }
        }
        if !queued.is_empty() {
            if out_of_time() {
                return Ok(stopped(report, flushed));
            }
            flushed += queued.len() as u64;
            self.delete_all(queued).await?;
        }
        report.deleted = flushed / 2;
        Ok(report)
    }

    /// BatchWriteItem, resending what DynamoDB left unprocessed with jittered backoff.
    async fn delete_all(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !requests.is_empty() {
            let output = self
                .client
                .batch_write_item()
                .request_items(self.table.clone(), requests)
                .send()
                .await
                .map_err(classify)?;
            requests = output
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if !requests.is_empty() {
                attempt += 1;
                if attempt >= UNPROCESSED_ATTEMPTS {
                    return Err(StoreError::Unavailable(format!(
                        "{} deletes still unprocessed after {attempt} attempts",
                        requests.len()
                    )));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(())
    }
}

/// A report for a run that ran out of time: tokens whose both deletes were sent count as deleted.
fn stopped(mut report: SweepReport, flushed: u64) -> SweepReport {
    report.deleted = flushed / 2;
    report.pending = report.examined - report.deleted;
    report.stopped_early = true;
    report
}

fn deletes_for(
    index_item: &HashMap<String, AttributeValue>,
) -> Result<[WriteRequest; 2], StoreError> {
    let text = |name: &str| {
        index_item
            .get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("sweep index item without {name}")))
    };
    let token_key = key(text(items::PK)?, text(items::SK)?);
    let lookup_key = key(
        format!("SECRET#{}", text(items::DIGEST)?),
        items::SECRET_SK.to_owned(),
    );
    let delete = |k| {
        DeleteRequest::builder()
            .set_key(Some(k))
            .build()
            .map(|d| WriteRequest::builder().delete_request(d).build())
            .map_err(|e| StoreError::Failed(e.to_string()))
    };
    Ok([delete(token_key)?, delete(lookup_key)?])
}
