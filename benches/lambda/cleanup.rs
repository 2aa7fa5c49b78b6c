//! Item 6: cleanup scaling. Tables of N expired tokens among 5N that are not due, seeded as raw
//! items with BatchWriteItem (the items `Store::create_token` writes, without its counter and
//! transaction, which would take DynamoDB Local far longer for 300,000 tokens); then one
//! cleanup run, timed, with the items it read and the requests it sent.

use crate::support::{conditions, event, fresh_env, Env, Options, Section, Verdict};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, Select, WriteRequest};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use harness::dynamodb_local::progress;
use lambda_runtime::{Context, LambdaEvent};
use serde_dynamo::aws_sdk_dynamodb_1::to_item;
use shared::store::items::{self, TokenItem};
use shared::tokens::{Secret, Token};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};
use uuid::Uuid;

/// Tokens per BatchWriteItem: each is a token item, its lookup record and its title's count
/// (25 items at most).
const TOKENS_PER_BATCH: usize = 8;

/// The tokens due later today fall due no sooner than this after `now`: later than seeding,
/// settling and both sweeps end at the largest size (about 6 minutes), so neither reads them.
const DUE_LATER_MARGIN_S: i64 = 1_800;

/// What a table holds: `expired` tokens due for removal, spread over `expired_days` of sweep
/// buckets, and `not_due` others: 2/5 never expire, 2/5 expire in the coming month, 1/5 expired
/// within the grace period and are due later today when the day allows it (today's bucket,
/// the one the sweep reads, excluded by its range condition).
pub struct Population {
    pub expired: usize,
    pub not_due: usize,
    pub expired_days: i64,
    pub now: DateTime<Utc>,
    grace: Duration,
}

impl Population {
    pub fn new(expired: usize, not_due: usize, now: DateTime<Utc>) -> Population {
        Population {
            expired,
            not_due,
            expired_days: 5,
            now,
            grace: Duration::days(1),
        }
    }

    fn total(&self) -> usize {
        self.expired + self.not_due
    }

    /// When token `i` becomes due for removal (expiry + grace), or `None` if it never expires.
    fn due(&self, i: usize) -> Option<DateTime<Utc>> {
        let spread = |i: usize, range: i64| (i as i64).wrapping_mul(7919).rem_euclid(range.max(1));
        if i < self.expired {
            let offset = spread(i, self.expired_days * 86_400);
            return Some(self.now - Duration::hours(1) - Duration::seconds(offset));
        }
        let j = i - self.expired;
        match j % 5 {
            0 | 1 => None,
            2 | 3 => Some(
                self.now
                    + self.grace
                    + Duration::days(1)
                    + Duration::seconds(spread(j, 30 * 86_400)),
            ),
            _ => {
                let midnight = (self.now.date_naive() + Duration::days(1))
                    .and_time(NaiveTime::MIN)
                    .and_utc();
                let left = (midnight - self.now).num_seconds() - 600 - DUE_LATER_MARGIN_S;
                if left > 60 {
                    Some(self.now + Duration::seconds(DUE_LATER_MARGIN_S + spread(j, left)))
                } else {
                    Some(self.now + Duration::days(2))
                }
            }
        }
    }

    fn token_items(&self, i: usize) -> Result<[WriteRequest; 3], String> {
        let due = self.due(i);
        let token = Token {
            user_id: format!("user-{}", i % 5_000),
            uuid: Uuid::new_v4(),
            number: i as u64 + 1,
            title: format!("bench token {i}"),
            created: self.now - Duration::days(40),
            expires: due.map(|at| at - self.grace),
            last_used: None,
            scopes: None,
        };
        let digest = Secret::generate().map_err(|e| e.to_string())?.digest();
        let mut item = TokenItem::new(&token, &digest, self.grace);
        // DynamoDB Local runs TTL deletion (about one item a second): without `ttl` it cannot
        // race the sweep being measured. The sweep reads `sweep_bucket` and `sweep_at` only.
        item.ttl = None;
        let put = |item: std::collections::HashMap<String, AttributeValue>| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build())
                .map_err(|e| e.to_string())
        };
        let mut title = items::title_key(&token.user_id, &token.title);
        title.insert(items::REFS.to_owned(), AttributeValue::N("1".into()));
        Ok([
            put(to_item(&item).map_err(|e| e.to_string())?)?,
            put(to_item(item.lookup()).map_err(|e| e.to_string())?)?,
            put(title)?,
        ])
    }
}

/// Writes the population with `workers` concurrent BatchWriteItem loops. Returns the time taken.
pub async fn seed_population(
    env: &Env,
    population: &Population,
    workers: usize,
) -> Result<StdDuration, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let total = population.total();
    let report_every = (total / 10).max(1);
    let reported = Arc::new(AtomicUsize::new(0));
    let loops = (0..workers).map(|_| {
        let next = next.clone();
        let reported = reported.clone();
        let client = env.client.clone();
        let table = env.table().to_owned();
        async move {
            loop {
                let first = next.fetch_add(TOKENS_PER_BATCH, Ordering::SeqCst);
                if first >= total {
                    return Ok::<(), String>(());
                }
                let mut requests = Vec::with_capacity(3 * TOKENS_PER_BATCH);
                for i in first..(first + TOKENS_PER_BATCH).min(total) {
                    requests.extend(population.token_items(i)?);
                }
                let mut attempt = 0;
                while !requests.is_empty() {
                    let output = client
                        .batch_write_item()
                        .request_items(&table, requests)
                        .send()
                        .await
                        .map_err(|e| {
                            format!(
                                "seeding: {}",
                                aws_sdk_dynamodb::error::DisplayErrorContext(e)
                            )
                        })?;
                    requests = output
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                    attempt += 1;
                    if !requests.is_empty() {
                        if attempt > 20 {
                            return Err("seeding: items stay unprocessed".into());
                        }
                        tokio::time::sleep(StdDuration::from_millis(20 * attempt)).await;
                    }
                }
                let done = (first + TOKENS_PER_BATCH).min(total);
                let step = done / report_every;
                if step > reported.fetch_max(step, Ordering::SeqCst) && total >= 10_000 {
                    progress(&format!(
                        "bench: seeded {done} of {total} tokens ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    ));
                }
            }
        }
    });
    // Concurrently on this task (the loops borrow the population).
    futures_util::future::try_join_all(loops).await?;
    Ok(started.elapsed())
}

/// Global indexes are eventually consistent: waits until the sweep index holds every expiring
/// token seeded, bucket by bucket, so the run is measured on a settled index.
pub async fn wait_for_index(env: &Env, population: &Population) -> Result<(), String> {
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..population.total() {
        if let Some(due) = population.due(i) {
            *expected.entry(items::sweep_bucket(due)).or_default() += 1;
        }
    }
    let started = Instant::now();
    let mut last_change = (Instant::now(), BTreeMap::new());
    loop {
        let mut counted: BTreeMap<String, i64> = BTreeMap::new();
        for bucket in expected.keys() {
            counted.insert(bucket.clone(), count_bucket(env, bucket).await?);
        }
        if counted == expected {
            return Ok(());
        }
        if counted != last_change.1 {
            last_change = (Instant::now(), counted.clone());
        }
        if last_change.0.elapsed() > StdDuration::from_secs(30)
            || started.elapsed() > StdDuration::from_secs(300)
        {
            let mut differing = Vec::new();
            for (bucket, n) in &expected {
                let indexed = counted.get(bucket).copied().unwrap_or(0);
                if indexed != *n {
                    differing.push(format!(
                        "{bucket}: {indexed} in the index, {} in the table, of {n}",
                        count_in_table(env, bucket).await?
                    ));
                }
            }
            return Err(format!(
                "the sweep index did not settle in {:.0} s; buckets that differ: {}",
                started.elapsed().as_secs_f64(),
                differing.join(", ")
            ));
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
}

/// Items of the table in this sweep bucket (a Scan with a filter: the index's truth to compare,
/// for diagnostics only).
async fn count_in_table(env: &Env, bucket: &str) -> Result<i64, String> {
    let scan = env.client.scan().table_name(env.table());
    let mut pages = scan
        .filter_expression("#b = :b")
        .expression_attribute_names("#b", items::SWEEP_BUCKET)
        .expression_attribute_values(":b", AttributeValue::S(bucket.to_owned()))
        .select(Select::Count)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += i64::from(page.map_err(|e| format!("counting the table: {e}"))?.count);
    }
    Ok(count)
}

/// Entries of the sweep index in this bucket.
async fn count_bucket(env: &Env, bucket: &str) -> Result<i64, String> {
    let query = env.client.query().table_name(env.table());
    let mut pages = query
        .index_name(items::SWEEP_INDEX)
        .key_condition_expression("#b = :b")
        .expression_attribute_names("#b", items::SWEEP_BUCKET)
        .expression_attribute_values(":b", AttributeValue::S(bucket.to_owned()))
        .select(Select::Count)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += i64::from(page.map_err(|e| format!("counting the index: {e}"))?.count);
    }
    Ok(count)
}

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(6, "Cleanup scaling");
    conditions(&mut section);
    let sizes: Vec<usize> = options
        .cleanup_sizes
        .clone()
        .unwrap_or_else(|| options.pick(vec![1_000, 5_000, 25_000], vec![100, 200]));
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let workers = 8;
    // Why raw items: the rate of seeding through the store, one transaction per token.
    let probe = fresh_env(&[]).await;
    let users: Vec<String> = (0..40).map(|u| format!("probe-{u}")).collect();
    let probe_started = Instant::now();
    crate::support::seed_many(&probe.app.store, &users, 10, Duration::days(30), None).await?;
    let store_rate = 400.0 / probe_started.elapsed().as_secs_f64();
    probe.drop_table().await;
    let (mut rows, mut proportional, mut per_thousand) = (Vec::new(), true, Vec::new());
    for expired in sizes {
        let not_due = 5 * expired;
        let env = fresh_env(&[]).await;
        let population = Population::new(expired, not_due, Utc::now());
        progress(&format!(
            "bench: cleanup: seeding {expired} expired + {not_due} not due tokens"
        ));
        let seeding = seed_population(&env, &population, workers).await?;
        wait_for_index(&env, &population).await?;
        let sweep = async || {
            let cleanup = LambdaEvent::new(event("cleanup.json"), Context::default());
            let summary = shared::cleanup::cleanup(&env.app, cleanup).await;
            summary.map_err(|e| e.to_string())
        };
        env.requests.reset();
        let started = Instant::now();
        let summary = sweep().await?;
        let took = started.elapsed();
        let counts = env.requests.snapshot();
        let examined = summary["examined"].as_u64().unwrap_or(0);
        let deleted = summary["deleted"].as_u64().unwrap_or(0);
        let again = sweep().await?;
        let ok = examined == expired as u64
            && deleted == expired as u64
            && again["examined"] == 0
            && !counts.contains_key("Scan");
        proportional &= ok;
        let items = 3 * population.total();
        let per_thousand_ms = took.as_secs_f64() * 1000.0 / expired as f64 * 1000.0;
        per_thousand.push(per_thousand_ms);
        rows.push(vec![
            expired.to_string(),
            not_due.to_string(),
            items.to_string(),
            format!(
                "{:.1} s ({:.0} items/s)",
                seeding.as_secs_f64(),
                items as f64 / seeding.as_secs_f64()
            ),
            format!("{:.2} s", took.as_secs_f64()),
            format!("{per_thousand_ms:.1} ms"),
            examined.to_string(),
            format!("{:.2}", examined as f64 / expired as f64),
            deleted.to_string(),
            counts.get("Query").copied().unwrap_or(0).to_string(),
            counts
                .get("TransactWriteItems")
                .copied()
                .unwrap_or(0)
                .to_string(),
            again["examined"].to_string(),
            crate::support::met(Some(ok)).to_owned(),
        ]);
        env.drop_table().await;
    }
    section.paragraph(format!(
        "For each size N: a fresh table from template.yaml on DynamoDB Local (in memory), N \
         tokens due for removal (expiry + 1 day's grace passed, spread over {} days of sweep \
         buckets) among 5N that are not: 2N that never expire (not in the sweep index), 2N that \
         expire in the coming month (later buckets) and N expired within the grace period, due \
         later today, {} minutes on at the earliest (in today's bucket, which the sweep reads, \
         excluded by its `sweep_at <= now` condition; in two days when the day is too short). Each token is its item and its lookup record, written with BatchWriteItem \
         ({workers} concurrent loops) as raw items built by `TokenItem::new` and `.lookup()`: \
         the items `Store::create_token` writes, without its UpdateItem and transaction per \
         token: through the store DynamoDB Local took {store_rate:.0} tokens/s here (measured \
         on 400), {:.0} minutes for the {} tokens of the largest size; and without their `ttl` attribute: \
         DynamoDB Local does delete expired items by TTL (about one a second), which would race \
         the run being measured; the sweep never reads `ttl`. Then one run of \
         `shared::cleanup::cleanup` (the handler the function runs, in-process, no deadline), \
         timed; *items read* is the number of index items the sweep read; then a second run, \
         which must read nothing. Target: items read proportional to the expired count (here \
         exactly N), never to the table. The deployed function has a 120 s timeout and stops \
         1 s before it, leaving the rest to the next hourly run.",
        Population::new(0, 0, Utc::now()).expired_days,
        DUE_LATER_MARGIN_S / 60,
        6.0 * largest as f64 / store_rate / 60.0,
        6 * largest
    ));
    section.table(
        &[
            "expired (N)",
            "not due (5N)",
            "items in the table",
            "seeding",
            "cleanup run",
            "per 1,000 expired",
            "items read",
            "read ÷ N",
            "deleted",
            "Query",
            "TransactWriteItems",
            "second run read",
            "",
        ],
        &rows,
    );
    let spread = if per_thousand.len() > 1 {
        let max = per_thousand.iter().cloned().fold(f64::MIN, f64::max);
        let min = per_thousand.iter().cloned().fold(f64::MAX, f64::min);
        format!("; time per 1,000 expired from {min:.0} to {max:.0} ms")
    } else {
        String::new()
    };
    section.verdicts.push(Verdict::new(
        "cleanup: items read",
        "proportional to the expired count",
        if proportional {
            format!("items read = N at every size{spread}")
        } else {
            "items read ≠ N at some size: see item 6".to_owned()
        },
        Some(proportional),
    ));
    Ok(section)
}
