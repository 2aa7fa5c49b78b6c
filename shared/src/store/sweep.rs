//! Removing tokens whose expiry + grace has passed, through the sparse `sweep` index: reads grow
//! with the number of due tokens, never with the table. Each token is removed by its own
//! transaction (the same one a revoke sends), so a run that stops, fails or overlaps another
//! never leaves a token without its lookup record or the reverse, and never counts a removal
//! twice. A token whose removal fails (or whose item cannot be read) is logged, counted in
//! `failed` and skipped: one bad token never stops the sweep of the others, and stays in the
//! index for the next run. Only a failed index Query ends a run with an error.
//!
//! Costs: one Query page per 1 MB of due index items (per day bucket); one TransactWriteItems
//! per due token (its token, lookup records, title count and audit entry, 2 write units per
//! item per KB); a removal that loses a race adds one consistent GetItem (the token read
//! again).

use super::audit::{Audit, LogKind};
use super::items::{self, TokenItem, SWEEP_INDEX};
use super::{Revoked, Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use std::sync::Arc;

/// Removals in flight at once.
const CONCURRENCY: usize = 8;

/// Says when to stop starting new work (the Lambda deadline, less a margin).
pub type StopSignal = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub struct SweepLimits {
    /// Days of buckets before today to look in. Older items are DynamoDB TTL's to delete.
    pub lookback_days: i64,
    /// Asked before each page and each group of removals; `None` runs to the end.
    pub stop: Option<StopSignal>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Tokens removed by this run (each with its lookup record).
    pub deleted: u64,
    /// Index items read.
    pub examined: u64,
    /// Query pages read.
    pub pages: u64,
    /// Due tokens read but left for the next run because time ran out.
    pub pending: u64,
    /// Due tokens whose removal failed (or whose item could not be read): logged, skipped,
    /// left in the index for the next run.
    pub failed: u64,
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
        let audit = Audit::system(now);
        let mut gone: u64 = 0;
        let out_of_time = || limits.stop.as_ref().is_some_and(|stop| stop());
        let stopped = |mut report: SweepReport, gone: u64| {
            report.pending = report.examined - report.deleted - gone - report.failed;
            report.stopped_early = true;
            report
        };
        for days_ago in (0..=limits.lookback_days.max(0)).rev() {
            let bucket = items::sweep_bucket(now - Duration::days(days_ago));
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(SWEEP_INDEX)
                .key_condition_expression("#bucket = :bucket AND #at <= :now")
                .expression_attribute_names("#bucket", items::SWEEP_BUCKET)
                .expression_attribute_names("#at", items::SWEEP_AT)
                .expression_attribute_values(":bucket", AttributeValue::S(bucket))
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .set_limit(self.page_size)
                .into_paginator()
                .send();
            loop {
                if out_of_time() {
                    return Ok(stopped(report, gone));
                }
                let Some(page) = pages.next().await else {
                    break;
                };
                report.pages += 1;
                let mut due = Vec::new();
                for raw in page
                    .map_err(super::dynamo::classify)?
                    .items
                    .unwrap_or_default()
                {
                    report.examined += 1;
                    match TokenItem::read(raw) {
                        Ok(item) => due.push(item),
                        Err(error) => {
                            report.failed += 1;
                            tracing::error!(%error, "a due item cannot be read; skipped");
                        }
                    }
                }
                for group in due.chunks(CONCURRENCY) {
                    if out_of_time() {
                        return Ok(stopped(report, gone));
                    }
                    let removals = group
                        .iter()
                        .map(|item| self.remove(item, LogKind::Expire, &audit));
                    for (item, removed) in group.iter().zip(join_all(removals).await) {
                        match removed {
                            Ok(Revoked::Yes) => report.deleted += 1,
                            // Revoked, or removed by an overlapping run, since the page was read.
                            Ok(Revoked::NotFound) => gone += 1,
                            Err(error) => {
                                report.failed += 1;
                                tracing::error!(
                                    %error,
                                    user_id = item.user_id,
                                    token_uuid = %item.token_uuid,
                                    "cannot remove an expired token; skipped, the next run tries again"
                                );
                            }
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}
