//! AWS's DynamoDB Local, started from the jar `scripts/bootstrap` installs. One instance per
//! process, on a free port; a watchdog shell kills it when this process exits (its stdin is a
//! pipe this process holds open and never writes).

use crate::{tools_dir, INSTALL_HINT};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct DynamoLocal {
    pub endpoint: String,
    pub port: u16,
    /// Holds the watchdog's stdin open for as long as this value lives.
    _watchdog: Mutex<Child>,
}

static SHARED: OnceLock<DynamoLocal> = OnceLock::new();

impl DynamoLocal {
    /// The instance for this process, started on first use.
    pub fn shared() -> &'static DynamoLocal {
        SHARED.get_or_init(|| DynamoLocal::start(None).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts DynamoDB Local in memory, or on disk in `data_dir`.
    pub fn start(data_dir: Option<PathBuf>) -> Result<DynamoLocal, String> {
        let jar_dir = tools_dir().join("dynamodb-local");
        let jar = jar_dir.join("DynamoDBLocal.jar");
        if !jar.is_file() {
            return Err(format!(
                "DynamoDB Local is not installed ({} is missing): {INSTALL_HINT}",
                jar.display()
            ));
        }
        if Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(format!("Java is not installed (DynamoDB Local needs Java 17): apt-get install openjdk-17-jre-headless, then {INSTALL_HINT}"));
        }
        let port = free_port();
        let storage = match &data_dir {
            Some(dir) => format!("-dbPath '{}'", dir.display()),
            None => "-inMemory".to_owned(),
        };
        let log = crate::workspace_root()
            .join("target")
            .join(format!("dynamodb-local-{port}.log"));
        let server = format!(
            "java -Xms64m -Djava.library.path='{lib}' -jar '{jar}' {storage} -port {port} -disableTelemetry",
            lib = jar_dir.join("DynamoDBLocal_lib").display(),
            jar = jar.display(),
        );
        let _ = std::fs::create_dir_all(crate::workspace_root().join("target"));
        let watchdog = crate::watchdog::command(&server, &log)
            .spawn()
            .map_err(|e| format!("cannot start DynamoDB Local: {e}"))?;
        if !wait_for_port(port, Duration::from_secs(60)) {
            return Err(format!(
                "DynamoDB Local did not listen on port {port} within 60 s; see {}",
                log.display()
            ));
        }
        Ok(DynamoLocal {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _watchdog: Mutex::new(watchdog),
        })
    }

    /// Stops the instance now (the watchdog sees its stdin close).
    pub fn stop(self) {
        if let Ok(mut child) = self._watchdog.into_inner() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// A DynamoDB client for this instance, counting the requests it sends.
    pub async fn client(&self) -> (aws_sdk_dynamodb::Client, RequestCounter) {
        let counter = RequestCounter::default();
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "dynamodb-local",
            ))
            .interceptor(counter.clone())
            .build();
        (aws_sdk_dynamodb::Client::from_conf(config), counter)
    }

    /// The environment a function process needs to reach this instance.
    pub fn environment(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), self.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "local".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
        ]
    }
}

/// DynamoDB requests sent, by operation (`Query`, `GetItem`, ...), retries included.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1))
            .unwrap_or("unknown")
            .to_owned();
        if let Ok(mut m) = self.0.lock() {
            *m.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

pub use crate::ports::free_port;

/// Whether something listens on the port before the limit.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Writes to stderr without the test harness capturing it (progress for long runs).
pub fn progress(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}
