//! The Lambda Runtime Interface Emulator that `sam local invoke` runs inside its container,
//! run on the host (installed with aws-sam-cli by `scripts/bootstrap`). Each instance gets its
//! own two ports and exactly the environment it is given, and is killed when this process exits.

use crate::dynamodb_local::{free_port, wait_for_port};
use crate::{tools_dir, workspace_root, INSTALL_HINT};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Emulator {
    pub invoke_port: u16,
    pub log: PathBuf,
    _watchdog: Mutex<Child>,
}

pub const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

impl Emulator {
    /// Starts the emulator for `bootstrap` with exactly `env` (plus PATH). The function process
    /// itself starts on the first invocation, as Lambda's cold start does.
    pub fn start(bootstrap: &Path, env: &[(String, String)]) -> Result<Emulator, String> {
        Emulator::launch(bootstrap, env, None)
    }

    /// As `start`, with the emulator's and the function's output written to `log`.
    pub fn start_with_log(
        bootstrap: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Emulator, String> {
        Emulator::launch(bootstrap, env, Some(log.to_path_buf()))
    }

    fn launch(
        bootstrap: &Path,
        env: &[(String, String)],
        log: Option<PathBuf>,
    ) -> Result<Emulator, String> {
        let rie = tools_dir().join("aws-lambda-rie");
        if !rie.is_file() {
            return Err(format!(
                "the Lambda runtime emulator is not installed ({} is missing): {INSTALL_HINT}",
                rie.display()
            ));
        }
        if !bootstrap.is_file() {
            return Err(format!(
                "no function binary at {}: run `sam build` (./scripts/test does)",
                bootstrap.display()
            ));
        }
        // Ports come from `crate::ports`, which never hands one out twice; should a program
        // outside the harness take one first anyway, the emulator is started again on others.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let invoke_port = free_port();
            let runtime_port = free_port();
            let log = log.clone().unwrap_or_else(|| {
                workspace_root()
                    .join("target")
                    .join(format!("rie-{invoke_port}.log"))
            });
            if let Some(dir) = log.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let server = format!(
                "'{rie}' --runtime-interface-emulator-address 127.0.0.1:{invoke_port} \
                 --runtime-api-address 127.0.0.1:{runtime_port} '{bootstrap}'",
                rie = rie.display(),
                bootstrap = bootstrap.display(),
            );
            let mut command = crate::watchdog::command(&server, &log);
            command.env_clear();
            command.env("PATH", std::env::var("PATH").unwrap_or_default());
            for (key, value) in env {
                command.env(key, value);
            }
            let watchdog = command
                .spawn()
                .map_err(|e| format!("cannot start the runtime emulator: {e}"))?;
            let emulator = Emulator {
                invoke_port,
                log: log.clone(),
                _watchdog: Mutex::new(watchdog),
            };
            if wait_for_port(invoke_port, Duration::from_secs(20)) {
                return Ok(emulator);
            }
            let text = emulator.log_text();
            emulator.stop();
            if !(text.contains("address already in use") && attempt < 3) {
                return Err(format!(
                    "the runtime emulator did not listen on {invoke_port}; see {}",
                    log.display()
                ));
            }
        }
    }

    /// POSTs the event as `sam local invoke` does and returns the function's JSON answer.
    pub async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let (status, body) = post_json(self.invoke_port, INVOKE_PATH, &event.to_string()).await?;
        if status != 200 {
            return Err(format!(
                "emulator answered {status}: {body}; log: {}",
                self.log.display()
            ));
        }
        serde_json::from_str(&body).map_err(|e| format!("function answered non-JSON ({e}): {body}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(self) {
        if let Ok(mut child) = self._watchdog.into_inner() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// A minimal HTTP/1.0 POST (one request per connection, no chunking): all the emulator needs.
pub async fn post_json(port: u16, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect {port}: {e}"))?;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP answer: {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head}"))?;
    Ok((status, body.to_owned()))
}
