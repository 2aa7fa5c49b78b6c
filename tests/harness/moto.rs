//! The local EventBridge: moto in server mode (`scripts/bootstrap` installs it pinned into
//! `.tools/moto-venv`), one instance per process on a free port, killed when this process
//! exits. A rule on a bus with an SQS target delivers what PutEvents accepted to a queue the
//! tests (and `./scripts/run`'s users) read, so events are observed end to end.

use crate::dynamodb_local::{free_port, wait_for_port};
use crate::{tools_dir, INSTALL_HINT};
use aws_sdk_eventbridge::config::{Credentials, Region};
use aws_sdk_eventbridge::types::Target;
use serde_json::{json, Value};
use std::process::Child;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub struct Moto {
    pub endpoint: String,
    pub port: u16,
    _watchdog: Mutex<Child>,
}

static SHARED: OnceLock<Moto> = OnceLock::new();

/// The account moto answers as (queue URLs and ARNs carry it).
pub const ACCOUNT: &str = "123456789012";

impl Moto {
    /// The instance for this process, started on first use.
    pub fn shared() -> &'static Moto {
        SHARED.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("{e}")))
    }

    pub fn start() -> Result<Moto, String> {
        let server = tools_dir()
            .join("moto-venv")
            .join("bin")
            .join("moto_server");
        if !server.is_file() {
            return Err(format!(
                "moto (the local EventBridge) is not installed ({} is missing): {INSTALL_HINT}",
                server.display()
            ));
        }
        let port = free_port();
        let log = crate::workspace_root()
            .join("target")
            .join(format!("moto-{port}.log"));
        let _ = std::fs::create_dir_all(crate::workspace_root().join("target"));
        let watchdog = crate::watchdog::command(
            &format!("'{}' -H 127.0.0.1 -p {port}", server.display()),
            &log,
        )
        .spawn()
        .map_err(|e| format!("cannot start moto: {e}"))?;
        if !wait_for_port(port, Duration::from_secs(60)) {
            return Err(format!(
                "moto did not listen on port {port} within 60 s; see {}",
                log.display()
            ));
        }
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _watchdog: Mutex::new(watchdog),
        })
    }

    /// The environment a function process needs to publish to this instance.
    pub fn environment(&self) -> Vec<(String, String)> {
        vec![("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), self.endpoint.clone())]
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("local", "local", None, None, "moto"))
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "moto",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// Creates the bus `bus` (unless it is `default`) and a queue named `queue` that receives
    /// every event of this bundle's source on it.
    pub async fn bus_to_queue(&self, bus: &str, queue: &str) -> Result<EventQueue, String> {
        let events = self.eventbridge();
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("moto: {what}: {e}");
        if bus != "default" {
            events
                .create_event_bus()
                .name(bus)
                .send()
                .await
                .map_err(|e| {
                    fail(
                        "CreateEventBus",
                        &aws_sdk_eventbridge::error::DisplayErrorContext(e),
                    )
                })?;
        }
        let sqs = self.sqs();
        let url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| fail("CreateQueue", &aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .queue_url
            .ok_or("moto: CreateQueue returned no URL")?;
        let arn = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}");
        let rule = format!("{queue}-rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(bus)
            .event_pattern(json!({ "source": [shared::events::SOURCE] }).to_string())
            .send()
            .await
            .map_err(|e| {
                fail(
                    "PutRule",
                    &aws_sdk_eventbridge::error::DisplayErrorContext(e),
                )
            })?;
        let target = Target::builder()
            .id("queue")
            .arn(arn)
            .build()
            .map_err(|e| fail("Target", &e))?;
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| {
                fail(
                    "PutTargets",
                    &aws_sdk_eventbridge::error::DisplayErrorContext(e),
                )
            })?;
        Ok(EventQueue { sqs, url })
    }
}

/// The queue a rule delivers a bus's events to.
pub struct EventQueue {
    sqs: aws_sdk_sqs::Client,
    pub url: String,
}

impl EventQueue {
    /// Every event delivered so far (EventBridge's envelope, `detail` parsed), each once: read
    /// and deleted until the queue answers empty. moto delivers during PutEvents, so what a
    /// run published is here when the run returns.
    pub async fn drain(&self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                let body = message.body.unwrap_or_default();
                events.push(serde_json::from_str(&body).expect("an EventBridge event"));
                if let Some(handle) = message.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("DeleteMessage");
                }
            }
        }
    }
}
