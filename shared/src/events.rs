//! Events this bundle publishes to Amazon EventBridge (expiry digests, leak reports): the bus
//! from `EVENT_BUS_NAME`, source [`SOURCE`]. A deployer routes them to email, SNS or Slack with
//! rules on the bus (docs/notifications.md). Locally the endpoint comes from
//! `AWS_ENDPOINT_URL_EVENTBRIDGE`, exactly as DynamoDB's does.

use crate::app::dynamodb_timeouts;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use futures_util::future::join_all;
use serde_json::Value;
use std::time::Duration;

/// The `source` of every event this bundle publishes.
pub const SOURCE: &str = "token-service";
/// PutEvents takes at most this many entries a call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// ... and at most 256 KiB in all; a call is filled to this many bytes (EventBridge's own count).
pub const MAX_BYTES_PER_CALL: usize = 240 * 1024;
/// Failed entries are sent again this many times, after 100, 200, 400 ms.
pub const RETRIES: u32 = 3;
/// PutEvents calls in flight at once.
const CALLS_IN_FLIGHT: usize = 4;

/// One event: its `detail-type` and `detail` (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub detail_type: &'static str,
    pub detail: Value,
}

impl Event {
    /// The entry's size as EventBridge counts it (source, detail-type, detail, bus name).
    fn size(&self, bus: &str) -> usize {
        SOURCE.len() + self.detail_type.len() + self.detail.to_string().len() + bus.len()
    }
}

#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> EventBus {
        EventBus {
            client,
            bus: bus.into(),
        }
    }

    /// The client from the environment (region, credentials, endpoint), with the same limits
    /// as DynamoDB's calls, for the bus `bus`.
    pub async fn from_env(bus: &str) -> EventBus {
        let config = aws_config::from_env()
            .timeout_config(dynamodb_timeouts())
            .load()
            .await;
        EventBus::new(aws_sdk_eventbridge::Client::new(&config), bus)
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Publishes `events`, at most 10 and 240 KiB a call; entries EventBridge refuses (throttled,
    /// internal failure) are sent again up to [`RETRIES`] times. Returns, for each event in
    /// order, whether EventBridge accepted it. A call that fails as a whole (after the SDK's own
    /// retries) counts its entries as refused: the caller marks only what was accepted.
    pub async fn publish(&self, events: &[Event]) -> Vec<bool> {
        let mut accepted = vec![false; events.len()];
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for attempt in 0..=RETRIES {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << (attempt - 1))).await;
            }
            let mut refused = Vec::new();
            let calls = self.calls(events, &pending);
            for group in calls.chunks(CALLS_IN_FLIGHT) {
                let results = join_all(group.iter().map(|call| self.put(events, call))).await;
                for (got_in, left_out) in results {
                    for index in got_in {
                        accepted[index] = true;
                    }
                    refused.extend(left_out);
                }
            }
            pending = refused;
        }
        if !pending.is_empty() {
            tracing::warn!(
                bus = %self.bus,
                refused = pending.len(),
                "EventBridge refused events after retries; they are not marked and go out with a later run"
            );
        }
        accepted
    }

    /// `pending` split into PutEvents calls by count and size.
    fn calls(&self, events: &[Event], pending: &[usize]) -> Vec<Vec<usize>> {
        let mut calls: Vec<Vec<usize>> = Vec::new();
        let mut bytes = 0;
        for &index in pending {
            let size = events[index].size(&self.bus);
            match calls.last_mut() {
                Some(call)
                    if call.len() < MAX_ENTRIES_PER_CALL && bytes + size <= MAX_BYTES_PER_CALL =>
                {
                    call.push(index);
                    bytes += size;
                }
                _ => {
                    calls.push(vec![index]);
                    bytes = size;
                }
            }
        }
        calls
    }

    /// One PutEvents call; returns the indexes of the entries it got in, and of those it did not.
    async fn put(&self, events: &[Event], call: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let entries = call
            .iter()
            .map(|&index| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(events[index].detail_type)
                    .detail(events[index].detail.to_string())
                    .build()
            })
            .collect::<Vec<_>>();
        match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                let results = output.entries.unwrap_or_default();
                let (mut got_in, mut refused) = (Vec::new(), Vec::new());
                for (position, &index) in call.iter().enumerate() {
                    // An entry with an event id got in; one with an error code, or missing, did not.
                    match results.get(position) {
                        Some(result)
                            if result.event_id.is_some() && result.error_code.is_none() =>
                        {
                            got_in.push(index)
                        }
                        result => {
                            tracing::warn!(
                                code = result
                                    .and_then(|r| r.error_code.as_deref())
                                    .unwrap_or("none"),
                                "EventBridge refused an entry"
                            );
                            refused.push(index);
                        }
                    }
                }
                (got_in, refused)
            }
            Err(error) => {
                let error = aws_sdk_eventbridge::error::DisplayErrorContext(&error);
                tracing::warn!(bus = %self.bus, %error, "PutEvents failed");
                (Vec::new(), call.to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use serde_json::json;

    fn event(n: usize) -> Event {
        Event {
            detail_type: "Test",
            detail: json!({ "n": n }),
        }
    }

    fn ok(id: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id(id).build()
    }

    fn throttled() -> PutEventsResultEntry {
        PutEventsResultEntry::builder()
            .error_code("ThrottlingException")
            .error_message("slow down")
            .build()
    }

    #[tokio::test]
    async fn a_refused_entry_is_sent_again_and_only_it() {
        let first = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| r.entries().len() == 3)
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(1)
                    .entries(ok("a"))
                    .entries(throttled())
                    .entries(ok("c"))
                    .build()
            });
        let retry = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| {
                r.entries().len() == 1 && r.entries()[0].detail() == Some(r#"{"n":1}"#)
            })
            .then_output(|| PutEventsOutput::builder().entries(ok("b")).build());
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, [&first, &retry]);
        let bus = EventBus::new(client, "tokens");
        assert_eq!(
            bus.publish(&[event(0), event(1), event(2)]).await,
            [true, true, true]
        );
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn an_entry_refused_every_time_is_reported_refused() {
        let always = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
            PutEventsOutput::builder()
                .failed_entry_count(1)
                .entries(throttled())
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&always]);
        let bus = EventBus::new(client, "tokens");
        assert_eq!(bus.publish(&[event(0)]).await, [false]);
        assert_eq!(always.num_calls(), 1 + RETRIES as usize);
    }

    #[test]
    fn calls_hold_at_most_ten_entries_and_240_kib() {
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .build(),
        );
        let bus = EventBus::new(client, "tokens");
        let small: Vec<Event> = (0..25).map(event).collect();
        let sizes: Vec<usize> = bus
            .calls(&small, &(0..25).collect::<Vec<_>>())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [10, 10, 5]);
        let big: Vec<Event> = (0..4)
            .map(|_| Event {
                detail_type: "Test",
                detail: json!({ "text": "x".repeat(100 * 1024) }),
            })
            .collect();
        let sizes: Vec<usize> = bus
            .calls(&big, &[0, 1, 2, 3])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [2, 2]);
    }
}
