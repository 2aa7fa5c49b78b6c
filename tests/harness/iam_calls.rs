//! Records what a function's code asks of AWS as the IAM actions and resources AWS would check:
//! an SDK interceptor on the DynamoDB and EventBridge clients a test builds the function's `App`
//! (and bus) with reads each request's operation (`x-amz-target`) and its body's table, index
//! and bus names. Transactions and batches are checked per item by AWS, so they are recorded
//! as the item actions ([`iam_actions`]).

use crate::iam::{bus_arn, table_arn};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// One call as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// `dynamodb:GetItem`, `events:PutEvents`, ...
    pub action: String,
    /// The table's, index's or bus's ARN.
    pub resource: String,
    /// The API operation that needed it (`TransactWriteItems` for its `dynamodb:PutItem`).
    pub operation: String,
}

type Hook = Box<dyn FnOnce() + Send>;

/// The calls of one function, from every client built with [`CallRecorder::dynamodb`] and
/// [`CallRecorder::eventbridge`].
#[derive(Clone, Default)]
pub struct CallRecorder {
    calls: Arc<Mutex<BTreeSet<Call>>>,
    hooks: Arc<Mutex<Vec<(String, Hook)>>>,
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecorder")
            .field("calls", &self.calls())
            .finish()
    }
}

impl CallRecorder {
    pub fn calls(&self) -> BTreeSet<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Runs `hook` (blocking this client) just before the next request of `operation` goes out:
    /// how a test makes another writer win a race at an exact point.
    pub fn before_next(&self, operation: &str, hook: impl FnOnce() + Send + 'static) {
        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.push((operation.to_owned(), Box::new(hook)));
        }
    }

    /// A DynamoDB client for `endpoint` that records every request.
    pub fn dynamodb(&self, endpoint: &str) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(Region::new(crate::iam::REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("local", "local", None, None, "iam-test"))
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// An EventBridge client for `endpoint` that records every request.
    pub fn eventbridge(&self, endpoint: &str) -> aws_sdk_eventbridge::Client {
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(aws_sdk_eventbridge::config::Region::new(crate::iam::REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "local", "local", None, None, "iam-test",
            ))
            .interceptor(self.clone())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let calls = iam_actions(&target, &body);
        let operation = target.split('.').nth(1).unwrap_or_default().to_owned();
        if let Ok(mut recorded) = self.calls.lock() {
            recorded.extend(calls);
        }
        let hook = self.hooks.lock().ok().and_then(|mut hooks| {
            let at = hooks.iter().position(|(op, _)| *op == operation)?;
            Some(hooks.remove(at).1)
        });
        if let Some(hook) = hook {
            hook();
        }
        Ok(())
    }
}

/// The IAM actions and resources one request needs, from its `x-amz-target`
/// (`DynamoDB_20120810.GetItem`, `AWSEvents.PutEvents`) and its JSON body. As AWS documents:
/// TransactWriteItems needs `dynamodb:PutItem`, `UpdateItem`, `DeleteItem` or
/// `ConditionCheckItem` for each item by its kind, TransactGetItems `dynamodb:GetItem`;
/// BatchGetItem and BatchWriteItem need their own action on each table; Query and Scan of an
/// index need the index's ARN (`table/<name>/index/<index>`).
pub fn iam_actions(target: &str, body: &Value) -> Vec<Call> {
    let (service, operation) = target.split_once('.').unwrap_or(("", target));
    let call = |action: String, resource: String| Call {
        action,
        resource,
        operation: operation.to_owned(),
    };
    let table = |v: &Value| {
        let name = v.as_str().unwrap_or("*");
        if name.starts_with("arn:") {
            name.to_owned()
        } else {
            table_arn(name)
        }
    };
    if service == "AWSEvents" {
        let entries = body["Entries"].as_array().cloned().unwrap_or_default();
        return entries
            .iter()
            .map(|e| {
                let bus = e["EventBusName"].as_str().unwrap_or("default");
                call(format!("events:{operation}"), bus_arn(bus))
            })
            .collect();
    }
    if !service.starts_with("DynamoDB") {
        return vec![call(format!("unknown:{target}"), "*".into())];
    }
    match operation {
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .flat_map(|item| item.iter())
            .map(|(kind, request)| {
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => other,
                };
                call(format!("dynamodb:{action}"), table(&request["TableName"]))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.keys())
            .map(|name| {
                call(
                    format!("dynamodb:{operation}"),
                    table(&Value::from(name.as_str())),
                )
            })
            .collect(),
        _ => {
            let mut resource = table(&body["TableName"]);
            if let Some(index) = body["IndexName"].as_str() {
                resource = format!("{resource}/index/{index}");
            }
            vec![call(format!("dynamodb:{operation}"), resource)]
        }
    }
}
