//! The scheduled cleanup: removes tokens whose expiry + grace has passed, with their
//! lookup records, through the sparse sweep index. DynamoDB TTL would get there "within days";
//! this makes it prompt. Stops before the Lambda deadline and leaves the rest to the next run.
//! A token whose removal fails is skipped and counted (`failed`); the run goes on with the
//! others. Costs: see `Store::sweep_expired`.

use crate::app::App;
use crate::store::{StoreError, SweepLimits, SweepReport};
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stop starting new batches this long before the Lambda deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(1_000);
/// Days of sweep buckets before today to look in; older ones are DynamoDB TTL's.
pub const LOOKBACK_DAYS: i64 = 7;

/// Accepts any payload: EventBridge's "Scheduled Event" envelope or a Scheduler's own input.
/// Returns (and logs as one JSON line) the run's summary.
pub async fn cleanup(app: &App, event: LambdaEvent<Value>) -> Result<Value, StoreError> {
    let started = Instant::now();
    let (payload, context) = event.into_parts();
    let limits = SweepLimits {
        lookback_days: LOOKBACK_DAYS,
        stop: stop_at(context.deadline, started)
            .map(|at| std::sync::Arc::new(move || Instant::now() >= at) as _),
    };
    let trigger = payload
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("direct invocation")
        .to_owned();
    match app.store.sweep_expired(Utc::now(), limits).await {
        Ok(report) => {
            let summary = summary(&report, started.elapsed());
            tracing::info!(
                trigger,
                deleted = report.deleted,
                failed = report.failed,
                examined = report.examined,
                remaining = report.pending,
                stopped_early = report.stopped_early,
                duration_ms = started.elapsed().as_millis() as u64,
                "cleanup finished"
            );
            Ok(summary)
        }
        Err(e) => {
            tracing::error!(trigger, error = %e, duration_ms = started.elapsed().as_millis() as u64, "cleanup failed");
            Err(e)
        }
    }
}

fn summary(report: &SweepReport, elapsed: Duration) -> Value {
    json!({
        "deleted": report.deleted,
        "failed": report.failed,
        "examined": report.examined,
        "remaining": report.pending,
        "stopped_early": report.stopped_early,
        "duration_ms": elapsed.as_millis() as u64,
    })
}

/// The instant to stop at: the invocation's deadline (epoch milliseconds) less the margin.
/// A zero deadline means none was given (a context built by hand).
pub(crate) fn stop_at(deadline_ms: u64, now: Instant) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(now + left.saturating_sub(DEADLINE_MARGIN))
}
