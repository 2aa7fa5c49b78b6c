//! The runtime emulator instances of one function: each serves one invocation at a time, as
//! one Lambda execution environment does; a first invocation is a cold start.

use super::INTEGRATION_TIMEOUT;
use crate::rie::{Emulator, INVOKE_PATH};
use crate::template::FunctionDef;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore};

/// The result of one invocation.
#[derive(Debug)]
pub struct Invocation {
    pub outcome: Outcome,
    pub cold: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// The function returned this JSON.
    Answer(Value),
    /// The function failed (`errorType`, `errorMessage`).
    FunctionError(Value),
    /// The emulator could not be reached or took too long.
    Unavailable(String),
}

/// Emulator instances of one function. Each runtime emulator serves one invocation at a time,
/// as one Lambda execution environment does; more instances serve concurrent requests.
pub struct FunctionPool {
    pub logical_id: String,
    pub binary: String,
    instances: Vec<Instance>,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

struct Instance {
    emulator: Emulator,
    /// Whether the function process is up (a first invocation starts it: a cold start).
    warm: Mutex<bool>,
}

/// One instance held for one invocation; the lock is released before the permit.
struct Held<'a> {
    warm: MutexGuard<'a, bool>,
    instance: &'a Instance,
    _permit: OwnedSemaphorePermit,
}

pub(super) type InvokeClient = Client<HttpConnector, Full<Bytes>>;

impl FunctionPool {
    /// Starts `size` emulators for the function (blocking; each waits for its port).
    pub fn start(
        function: &FunctionDef,
        bootstrap: &Path,
        environment: &[(String, String)],
        size: usize,
        log_dir: &Path,
    ) -> Result<FunctionPool, String> {
        let mut instances = Vec::with_capacity(size);
        for n in 1..=size.max(1) {
            let log = log_dir.join(format!("{}-{n}.log", function.logical_id));
            let emulator = Emulator::start_with_log(bootstrap, environment, &log)
                .map_err(|e| format!("{}: {e}", function.logical_id))?;
            instances.push(Instance {
                emulator,
                warm: Mutex::new(false),
            });
        }
        Ok(FunctionPool {
            logical_id: function.logical_id.clone(),
            binary: function.binary.clone(),
            permits: Arc::new(Semaphore::new(instances.len())),
            instances,
            timeout: Duration::from_secs(function.timeout_seconds),
        })
    }

    pub fn size(&self) -> usize {
        self.instances.len()
    }

    pub fn logs(&self) -> Vec<PathBuf> {
        self.instances
            .iter()
            .map(|i| i.emulator.log.clone())
            .collect()
    }

    /// A free instance, a warm one when there is one (as Lambda reuses a warm environment).
    async fn acquire(&self) -> Option<Held<'_>> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            for want_warm in [true, false] {
                for instance in &self.instances {
                    if let Ok(warm) = instance.warm.try_lock() {
                        if *warm == want_warm {
                            return Some(Held {
                                warm,
                                instance,
                                _permit: permit,
                            });
                        }
                    }
                }
            }
            // Another holder is between dropping its lock and its permit.
            tokio::task::yield_now().await;
        }
    }

    /// Invokes the function with `event` as API Gateway's integration does.
    pub async fn invoke(&self, client: &InvokeClient, event: &Value) -> Invocation {
        let Some(mut held) = self.acquire().await else {
            return Invocation {
                outcome: Outcome::Unavailable("the pool is closed".into()),
                cold: false,
            };
        };
        let cold = !*held.warm;
        let port = held.instance.emulator.invoke_port;
        // The emulator enforces the function's timeout; this only guards against a hung emulator.
        let limit = self.timeout.min(INTEGRATION_TIMEOUT) + Duration::from_secs(5);
        let outcome = match tokio::time::timeout(limit, post(client, port, event)).await {
            Err(_) => Outcome::Unavailable(format!("no answer within {} s", limit.as_secs())),
            Ok(Err(e)) => Outcome::Unavailable(e),
            Ok(Ok(answer)) if is_function_error(&answer) => Outcome::FunctionError(answer),
            Ok(Ok(answer)) => Outcome::Answer(answer),
        };
        // A runtime that exited, crashed or timed out starts again on the next invocation.
        *held.warm = match &outcome {
            Outcome::Answer(_) => true,
            Outcome::FunctionError(e) => !e["errorType"]
                .as_str()
                .is_some_and(|t| t.starts_with("Runtime.") || t.starts_with("Sandbox.")),
            Outcome::Unavailable(_) => false,
        };
        Invocation { outcome, cold }
    }

    pub fn stop(self) {
        for instance in self.instances {
            instance.emulator.stop();
        }
    }
}

async fn post(client: &InvokeClient, port: u16, event: &Value) -> Result<Value, String> {
    let request = hyper::Request::post(format!("http://127.0.0.1:{port}{INVOKE_PATH}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(event.to_string())))
        .map_err(|e| format!("request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("emulator on {port}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("emulator on {port}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "emulator on {port} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("the function answered non-JSON ({e})"))
}

fn is_function_error(answer: &Value) -> bool {
    answer.get("errorType").is_some()
        && answer.get("statusCode").is_none()
        && answer.get("isAuthorized").is_none()
}
