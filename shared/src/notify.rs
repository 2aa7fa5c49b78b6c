//! The scheduled expiry notifications: once a day, the tokens expiring within 1 day and within
//! 7 days are announced to their owners as one EventBridge event per user per threshold
//! (detail-type [`DETAIL_TYPE`]), each token once per threshold however often runs repeat or
//! overlap. A deployer sends the events on by email or chat with a rule (docs/notifications.md).
//!
//! Per threshold: the window's tokens from the sweep index (reads grow with them, never with
//! the table); then, a hundred users at a time: a claim per user (a second run skips users
//! the first holds), a consistent read of their tokens (revoked, rotated or already announced
//! ones drop out), PutEvents (10 entries a call, refused entries retried), and the marker on
//! each token of an accepted event. However the run ends (done, at its deadline, on an error,
//! with refused events) it releases every claim it took, so Lambda's retry or the next run
//! announces what it left unmarked at once; a claim it cannot release runs out after
//! [`CLAIM_FOR`]. A run with refused events marks what was accepted and then fails
//! ([`NotifyError::Refused`]). Delivery is at least once: an accepted event whose marker could
//! not be written is sent again by the next run.
//!
//! Costs per user and threshold: a conditional PutItem (the claim) and a DeleteItem (its
//! release); per token: its share of a Query page, of a consistent BatchGetItem, and a
//! conditional UpdateItem (the marker).

use crate::app::App;
use crate::cleanup::stop_at;
use crate::events::{Event, EventBus};
use crate::store::items::TokenItem;
use crate::store::StoreError;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures_util::future::join_all;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use uuid::Uuid;

pub const DETAIL_TYPE: &str = "Personal Access Tokens Expiring";
/// The thresholds, smallest first. A token is in the digest of the smallest one its expiry is
/// within: a token created with 12 hours left gets the 1-day digest only.
pub const THRESHOLDS_DAYS: [u32; 2] = [1, 7];
/// A claim outlasts the longest run (Lambda's 15-minute limit).
pub const CLAIM_FOR: Duration = Duration::minutes(16);
/// Tokens in one event at most (a user holding more gets several events).
const TOKENS_PER_EVENT: usize = 50;
/// Users handled per round (claims, reads, events, markers).
const USERS_PER_ROUND: usize = 100;
/// Claims, markers and releases in flight at once.
const CONCURRENCY: usize = 16;

/// What one run did (also its log line and the invocation's result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifyReport {
    /// Index items read: the tokens in the windows.
    pub examined: u64,
    /// Index Query pages read.
    pub pages: u64,
    /// Tokens announced and marked by this run.
    pub announced: u64,
    /// Events EventBridge accepted.
    pub events: u64,
    /// Events it refused after the retries (their tokens stay unmarked, for the next run).
    pub refused: u64,
    /// Users another run was announcing (claimed), skipped.
    pub claimed_elsewhere: u64,
    /// TokenItems dropped on the consistent read: revoked, rotated or already announced.
    pub dropped: u64,
    /// True when the run stopped at its deadline; the next run goes on.
    pub stopped_early: bool,
}

/// Why a run failed. Either way its claims were released first.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// EventBridge refused events after the retries: the accepted ones are marked, the refused
    /// ones' tokens are not, and the run fails so that Lambda retries it.
    #[error("EventBridge refused {} of {} events after retries", .0.refused, .0.refused + .0.events)]
    Refused(NotifyReport),
}

/// The handler: accepts any payload (EventBridge's scheduled event, or a direct invocation).
pub async fn notify_expiring(
    app: &App,
    bus: &EventBus,
    event: LambdaEvent<Value>,
) -> Result<Value, NotifyError> {
    let started = Instant::now();
    let stop = stop_at(event.context.deadline, started);
    let out_of_time = move || stop.is_some_and(|at| Instant::now() >= at);
    let result = notify_at(app, bus, Utc::now(), &out_of_time).await;
    if let Ok(report) | Err(NotifyError::Refused(report)) = &result {
        tracing::info!(
            examined = report.examined,
            announced = report.announced,
            events = report.events,
            refused = report.refused,
            claimed_elsewhere = report.claimed_elsewhere,
            dropped = report.dropped,
            stopped_early = report.stopped_early,
            duration_ms = started.elapsed().as_millis() as u64,
            "expiry notifications finished"
        );
    }
    match result {
        Ok(report) => Ok(json!(report)),
        Err(e) => {
            tracing::error!(error = %e, "expiry notifications failed");
            Err(e)
        }
    }
}

/// One run at `now`; `out_of_time` is asked before each round. Every claim the run took is
/// released before it returns, whatever the outcome; refused events make it `Err` after that.
pub async fn notify_at(
    app: &App,
    bus: &EventBus,
    now: DateTime<Utc>,
    out_of_time: &(dyn Fn() -> bool + Sync),
) -> Result<NotifyReport, NotifyError> {
    let run = Uuid::new_v4();
    let mut held: Vec<(String, u32)> = Vec::new();
    // Boxed: nested in the handler, the rounds' futures overflow rustc's layout query depth.
    let result = Box::pin(rounds(app, bus, now, out_of_time, run, &mut held)).await;
    release(app, &run, &held).await;
    let report = result?;
    if report.refused > 0 {
        return Err(NotifyError::Refused(report));
    }
    Ok(report)
}

/// Releases `run`'s claims on `held` (user, threshold). One that cannot be released is logged;
/// it runs out after [`CLAIM_FOR`].
async fn release(app: &App, run: &Uuid, held: &[(String, u32)]) {
    for group in held.chunks(CONCURRENCY) {
        let releases = group
            .iter()
            .map(|(user, days)| app.store.release_notice(user, *days, run));
        for ((user, days), released) in group.iter().zip(join_all(releases).await) {
            if let Err(error) = released {
                tracing::warn!(%error, user_id = user, days, "cannot release a notice claim; it runs out by itself");
            }
        }
    }
}

/// The thresholds' windows, a round of users at a time; each claim taken is added to `held`.
async fn rounds(
    app: &App,
    bus: &EventBus,
    now: DateTime<Utc>,
    out_of_time: &(dyn Fn() -> bool + Sync),
    run: Uuid,
    held: &mut Vec<(String, u32)>,
) -> Result<NotifyReport, StoreError> {
    let mut report = NotifyReport::default();
    let mut after = now;
    for days in THRESHOLDS_DAYS {
        let until = now + Duration::days(i64::from(days));
        let (candidates, read) = app
            .store
            .expiring_between(after, until, app.config.ttl_grace)
            .await?;
        report.examined += read.items;
        report.pages += read.pages;
        let round = Round {
            app,
            bus,
            run,
            days,
            after,
            until,
            now,
        };
        // The index's copy (it projects the whole item) drops what is already announced, so a
        // repeated run reads the index and writes nothing; the read under the claim decides.
        let mut by_user: BTreeMap<String, Vec<TokenItem>> = BTreeMap::new();
        for item in candidates {
            if round.is_due(&item, &item) {
                by_user.entry(item.user_id.clone()).or_default().push(item);
            } else {
                report.dropped += 1;
            }
        }
        let users: Vec<(String, Vec<TokenItem>)> = by_user.into_iter().collect();
        for users in users.chunks(USERS_PER_ROUND) {
            if out_of_time() {
                report.stopped_early = true;
                return Ok(report);
            }
            round.announce(users, &mut report, held).await?;
        }
        after = until;
    }
    Ok(report)
}

struct Round<'a> {
    app: &'a App,
    bus: &'a EventBus,
    run: Uuid,
    days: u32,
    /// The window of expiries: after `after`, up to and including `until`.
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
}

impl Round<'_> {
    async fn announce(
        &self,
        users: &[(String, Vec<TokenItem>)],
        report: &mut NotifyReport,
        held: &mut Vec<(String, u32)>,
    ) -> Result<(), StoreError> {
        let store = &self.app.store;
        let claim_until = self.now + CLAIM_FOR;
        let mut claimed: Vec<&(String, Vec<TokenItem>)> = Vec::new();
        for group in users.chunks(CONCURRENCY) {
            let results = join_all(group.iter().map(|(user, _)| {
                store.claim_notice(user, self.days, &self.run, self.now, claim_until)
            }))
            .await;
            let mut failure = None;
            for (entry, result) in group.iter().zip(results) {
                match result {
                    Ok(true) => {
                        held.push((entry.0.clone(), self.days));
                        claimed.push(entry);
                    }
                    Ok(false) => report.claimed_elsewhere += 1,
                    // The claim may have been written all the same: released with the others
                    // (the release is conditional on this run's id).
                    Err(error) => {
                        held.push((entry.0.clone(), self.days));
                        failure.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
        }
        let mut current: HashMap<Uuid, TokenItem> = self
            .due(claimed.iter().copied())
            .await?
            .into_iter()
            .map(|item| (item.token_uuid, item))
            .collect();
        let candidates: usize = claimed.iter().map(|(_, c)| c.len()).sum();
        report.dropped += (candidates - current.len()) as u64;

        let mut events = Vec::new();
        let mut announced: Vec<Vec<TokenItem>> = Vec::new();
        for (user, candidates) in &claimed {
            // In the index's order; what went since the index was read is not announced.
            let due: Vec<TokenItem> = candidates
                .iter()
                .filter_map(|c| current.remove(&c.token_uuid))
                .collect();
            for tokens in due.chunks(TOKENS_PER_EVENT) {
                events.push(self.event(user, tokens));
                announced.push(tokens.to_vec());
            }
        }
        let accepted = self.bus.publish(&events).await;
        let mut to_mark: Vec<&TokenItem> = Vec::new();
        for (tokens, accepted) in announced.iter().zip(accepted) {
            if accepted {
                report.events += 1;
                to_mark.extend(tokens);
            } else {
                report.refused += 1;
            }
        }
        // Every accepted token is marked even when one marker fails, so that as few events as
        // possible go out twice; the first failure is the round's error.
        let mut failure = None;
        for group in to_mark.chunks(CONCURRENCY) {
            for marked in join_all(group.iter().map(|item| {
                store.mark_noticed(&item.user_id, &item.token_uuid, &item.digest, self.days)
            }))
            .await
            {
                match marked {
                    Ok(true) => report.announced += 1,
                    // Not marked: revoked or rotated while the event went out.
                    Ok(false) => {}
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// `users`' candidates as they are now (read strongly consistent), those still due.
    async fn due<'u>(
        &self,
        users: impl Iterator<Item = &'u (String, Vec<TokenItem>)>,
    ) -> Result<Vec<TokenItem>, StoreError> {
        let seen: HashMap<Uuid, &TokenItem> = users
            .flat_map(|(_, candidates)| candidates.iter().map(|c| (c.token_uuid, c)))
            .collect();
        let keys: Vec<(String, Uuid)> = seen
            .values()
            .map(|c| (c.user_id.clone(), c.token_uuid))
            .collect();
        let items = self.app.store.token_items(&keys).await?;
        Ok(items
            .into_iter()
            .filter(|item| {
                seen.get(&item.token_uuid)
                    .is_some_and(|c| self.is_due(item, c))
            })
            .collect())
    }

    /// Still the token the index saw (same secret: not rotated), still expiring in the window,
    /// and not yet announced for this threshold or a smaller one.
    fn is_due(&self, item: &TokenItem, seen: &TokenItem) -> bool {
        let in_window = item.expires_ms.is_some_and(|ms| {
            ms > self.after.timestamp_millis() && ms <= self.until.timestamp_millis()
        });
        item.digest == seen.digest
            && in_window
            && item.noticed_days.is_none_or(|n| n > i64::from(self.days))
    }

    /// The digest event: the user, the threshold and each token's uuid, title and expiry.
    fn event(&self, user: &str, tokens: &[TokenItem]) -> Event {
        let tokens: Vec<Value> = tokens
            .iter()
            .map(|item| {
                let expires = item
                    .expires_ms
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true));
                json!({ "uuid": item.token_uuid, "title": item.title, "expires_at": expires })
            })
            .collect();
        Event {
            detail_type: DETAIL_TYPE,
            detail: json!({ "user_id": user, "within_days": self.days, "tokens": tokens }),
        }
    }
}
