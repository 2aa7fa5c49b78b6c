//! `local-api`: the whole token service on `http://127.0.0.1:<port>`, as `./scripts/run` starts
//! it. DynamoDB Local (on disk in the data directory, or in memory), the table from
//! template.yaml, the Lambda runtime emulator running every function binary behind an
//! API Gateway emulation (routes and authorizer from template.yaml), and a local OIDC issuer
//! whose sessions the authorizer accepts. Ctrl-C or SIGTERM stops everything it started.

mod banner;

use bytes::Bytes;
use harness::gateway::{self, Gateway, GatewayConfig, Served};
use harness::github::{self, GithubSigner};
use harness::moto::Moto;
use harness::oidc::{KeyOrigin, LocalIssuer, DISCOVERY_PATH, JWKS_PATH};
use harness::signin::SignIn;
use harness::template::Template;
use harness::{workspace_root, DynamoLocal};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

const TABLE: &str = "tokens";
const AUDIENCE: &str = "token-service-local";
/// The settings page's client id at the local issuer (`OidcClientId`).
const CLIENT_ID: &str = "token-settings-page";
/// Where `./scripts/run` prints the settings page, and the sign-in sends the browser back to.
const PAGE_PATH: &str = "/tokens";
const LOCAL_USER: &str = "local-user";
const LOCAL_SCOPE: &str = "openid user:admin";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// `GET /_local/session?sub=<user>&scope=<scopes>`: a session JWT for another local user.
const SESSION_PATH: &str = "/_local/session";
const KEY_FILE: &str = "oidc-es256.pk8";
/// The local EventBridge bus, and the queue a rule on it delivers the bundle's events to.
const EVENT_BUS: &str = "tokens";
const EVENT_QUEUE: &str = "token-events";

const USAGE: &str =
    "usage: local-api [--port N] [--data-dir DIR | --in-memory] [--functions-dir DIR] [--pool N]
  --port N           listen on 127.0.0.1:N (default 3000; 0 picks a free port)
  --data-dir DIR     keep DynamoDB Local's data and the issuer's key here (default .local-data/)
  --in-memory        keep nothing: DynamoDB Local in memory, a fresh signing key
  --functions-dir D  the built functions: D/<binary>/bootstrap or D/<LogicalId>/bootstrap
                     (default $CARGO_TARGET_DIR/lambda, where cargo lambda build puts them)
  --pool N           emulator instances per function (default 2)
Normally started by ./scripts/run, which builds the functions first.";

struct Options {
    port: u16,
    data_dir: Option<PathBuf>,
    functions_dir: PathBuf,
    pool: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        port: 3000,
        data_dir: Some(workspace_root().join(".local-data")),
        functions_dir: std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("lambda"),
        pool: 2,
    };
    let mut in_memory = false;
    let mut data_dir_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                options.port = v.parse().map_err(|_| format!("--port {v}: not a port"))?;
            }
            "--data-dir" => {
                options.data_dir = Some(PathBuf::from(value("--data-dir")?));
                data_dir_given = true;
            }
            "--in-memory" => in_memory = true,
            "--functions-dir" => options.functions_dir = PathBuf::from(value("--functions-dir")?),
            "--pool" => {
                let v = value("--pool")?;
                options.pool = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=16).contains(n))
                    .ok_or_else(|| format!("--pool {v}: expected 1 to 16"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if in_memory && data_dir_given {
        return Err("--in-memory and --data-dir exclude each other".into());
    }
    if in_memory {
        options.data_dir = None;
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("local-api: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(options));
    // Emulators still starting after an interrupt are stopped by their watchdogs when this
    // process exits; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Progress while starting, with the time each step took.
fn step(message: impl AsRef<str>, since: Instant) {
    println!(
        "[local-api] {} ({:.1} s)",
        message.as_ref(),
        since.elapsed().as_secs_f64()
    );
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let listen = |kind: SignalKind| signal(kind).map_err(|e| format!("signal handler: {e}"));
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// Everything the server started, stopped in reverse order.
struct Running {
    app: Arc<App>,
    dynamo: DynamoLocal,
    /// The local EventBridge; stops with this process.
    _moto: Moto,
    _data_lock: Option<File>,
}

struct App {
    gateway: Gateway,
    issuer: LocalIssuer,
    /// The SQS queue (on moto) the bundle's events are delivered to.
    events_queue: String,
    signin: SignIn,
}

async fn run(options: Options) -> ExitCode {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("local-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", options.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "local-api: cannot listen on 127.0.0.1:{}: {e} (another ./scripts/run? choose a port with --port N)",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let port = match listener.local_addr() {
        Ok(address) => address.port(),
        Err(e) => {
            eprintln!("local-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let running = tokio::select! {
        running = start(&options, port) => match running {
            Ok(running) => running,
            Err(e) => {
                eprintln!("local-api: {e}");
                return ExitCode::FAILURE;
            }
        },
        name = signals.next() => {
            println!("[local-api] {name} during start-up: stopping");
            return ExitCode::from(130);
        }
    };
    banner::print(&running.app, &options, port, started);

    let name = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(running.app.clone(), stream, peer));
                }
                Err(e) => {
                    eprintln!("[local-api] accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            name = signals.next() => break name,
        }
    };
    drop(listener);
    let stopping = Instant::now();
    println!("[local-api] {name}: stopping the emulators and DynamoDB Local");
    let Running {
        app,
        dynamo,
        _moto,
        _data_lock,
    } = running;
    // Connections still open hold the app; their requests fail once the emulators are gone.
    let stopped = tokio::task::spawn_blocking(move || {
        if let Ok(app) = Arc::try_unwrap(app) {
            app.gateway.stop();
        }
        dynamo.stop();
    })
    .await;
    if stopped.is_err() {
        eprintln!("[local-api] stopping failed; the watchdogs stop the rest when this exits");
    }
    step("stopped", stopping);
    ExitCode::SUCCESS
}

async fn start(options: &Options, port: u16) -> Result<Running, String> {
    let base = format!("http://127.0.0.1:{port}");
    let data_lock = match &options.data_dir {
        Some(dir) => Some(lock_data_dir(dir)?),
        None => None,
    };

    let t = Instant::now();
    let key_file = options.data_dir.as_ref().map(|d| d.join(KEY_FILE));
    let (issuer, origin) = LocalIssuer::new(&base, AUDIENCE, key_file.as_deref())?;
    step(
        match (origin, &key_file) {
            (KeyOrigin::Loaded, Some(f)) => {
                format!("issuer key {} read from {}", issuer.kid(), f.display())
            }
            (KeyOrigin::Generated, Some(f)) => format!(
                "issuer key {} made and kept in {}",
                issuer.kid(),
                f.display()
            ),
            _ => format!(
                "issuer key {} made (in memory: sessions end with this run)",
                issuer.kid()
            ),
        },
        t,
    );

    let t = Instant::now();
    println!("[local-api] starting DynamoDB Local...");
    let dynamo_dir = options.data_dir.as_ref().map(|d| d.join("dynamodb"));
    if let Some(dir) = &dynamo_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let dynamo = tokio::task::spawn_blocking(move || DynamoLocal::start(dynamo_dir))
        .await
        .map_err(|e| format!("DynamoDB Local start-up failed: {e}"))??;
    step(
        format!(
            "DynamoDB Local on {} ({})",
            dynamo.endpoint,
            match &options.data_dir {
                Some(d) => format!("data in {}", d.join("dynamodb").display()),
                None => "in memory".into(),
            }
        ),
        t,
    );

    let t = Instant::now();
    let template = Template::load();
    let (client, _) = dynamo.client().await;
    let created = template.ensure_table(&client, TABLE).await?;
    step(
        if created {
            format!("table {TABLE} created from template.yaml")
        } else {
            format!("table {TABLE} found (data from an earlier run)")
        },
        t,
    );

    let t = Instant::now();
    let moto = tokio::task::spawn_blocking(Moto::start)
        .await
        .map_err(|e| format!("moto start-up failed: {e}"))??;
    let events = moto.bus_to_queue(EVENT_BUS, EVENT_QUEUE).await?;
    step(
        format!(
            "EventBridge (moto) on {}: bus {EVENT_BUS} delivers to the queue {}",
            moto.endpoint, events.url
        ),
        t,
    );

    let t = Instant::now();
    let overrides: BTreeMap<String, String> = [
        ("OidcIssuer", issuer.issuer.clone()),
        ("OidcAudience", issuer.audience.clone()),
        ("OidcJwksUrl", issuer.jwks_url()),
        (
            "GithubPublicKeysUrl",
            format!("{base}{}", github::KEYS_PATH),
        ),
        ("OidcClientId", CLIENT_ID.to_owned()),
        ("LocalDynamoDbEndpoint", dynamo.endpoint.clone()),
        ("EventBusName", EVENT_BUS.to_owned()),
        ("LocalEventBridgeEndpoint", moto.endpoint.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let log_dir = workspace_root()
        .join("target")
        .join("local-api")
        .join(port.to_string());
    let gateway = Gateway::start(GatewayConfig {
        template,
        table: TABLE.into(),
        parameter_overrides: overrides,
        extra_environment: dynamo.environment(),
        functions_dir: options.functions_dir.clone(),
        pool_size: options.pool,
        log_dir: log_dir.clone(),
        domain: format!("127.0.0.1:{port}"),
    })
    .await?;
    let functions = gateway.pools().count();
    let instances: usize = gateway.pools().map(|p| p.size()).sum();
    step(
        format!(
            "{instances} runtime emulators for {functions} functions ({} each; each function starts on its first request); logs in {}",
            options.pool,
            log_dir.display()
        ),
        t,
    );
    Ok(Running {
        app: Arc::new(App {
            gateway,
            issuer,
            events_queue: events.url,
            signin: SignIn::new(CLIENT_ID, &base, SESSION_LIFETIME),
        }),
        dynamo,
        _moto: moto,
        _data_lock: data_lock,
    })
}

/// One server per data directory: DynamoDB Local must not share its files.
fn lock_data_dir(dir: &std::path::Path) -> Result<File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.try_lock().map_err(|_| {
        format!(
            "{} is in use by another local-api; stop it, or use --data-dir DIR or --in-memory",
            dir.display()
        )
    })?;
    Ok(file)
}

async fn serve_connection(app: Arc<App>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.serve(request, peer).await) }
    });
    // A client that goes away mid-request is not worth a log line.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl App {
    async fn serve(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Full<Bytes>> {
        let started = Instant::now();
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();

        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let protocol = format!("{:?}", request.version());
        let body = match Limited::new(request.into_body(), gateway::MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                let answer = gateway::Response::message(413, "Request Entity Too Large");
                log_line(&method, &path, 413, started, "body over 10 MB");
                return to_hyper(answer);
            }
        };
        if let Some(answer) = self.issuer_endpoint(&method, &path, &query, &body) {
            log_line(&method, &path, answer.status, started, "local issuer");
            return to_hyper(answer);
        }
        let request = gateway::Request {
            method: method.clone(),
            raw_path: path.clone(),
            raw_query: query,
            headers,
            body,
            source_ip: peer.ip().to_string(),
            protocol,
        };
        // On its own task: a client that hangs up must not abandon an invocation half-way, with
        // its emulator still busy while the pool thinks it free.
        let app = self.clone();
        let served = tokio::spawn(async move { app.gateway.handle(request).await }).await;
        let Served {
            response,
            invoked,
            note,
        } = served.unwrap_or_else(|e| Served {
            response: gateway::Response::message(500, "Internal Server Error"),
            invoked: Vec::new(),
            note: Some(format!("the request task failed: {e}")),
        });
        let mut detail = Vec::new();
        let cold: Vec<&str> = invoked
            .iter()
            .filter(|(_, cold)| *cold)
            .map(|(name, _)| name.as_str())
            .collect();
        if !cold.is_empty() {
            detail.push(format!("cold: {}", cold.join(", ")));
        } else if !invoked.is_empty() {
            detail.push("warm".to_owned());
        }
        detail.extend(note);
        log_line(&method, &path, response.status, started, &detail.join("; "));
        to_hyper(response)
    }

    /// The issuer's own endpoints, served without the authorizer as an identity provider is.
    fn issuer_endpoint(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Option<gateway::Response> {
        if let Some(answer) = self.signin.serve(&self.issuer, method, path, query, body) {
            return Some(answer);
        }
        if method != "GET" {
            return None;
        }
        let json = |status: u16, value: Value| gateway::Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(value.to_string()),
        };
        match path {
            JWKS_PATH => Some(json(200, self.issuer.jwks())),
            // The stand-in for GitHub's secret scanning keys: the shipped event is signed by it.
            github::KEYS_PATH => Some(json(
                200,
                GithubSigner::document(&[&GithubSigner::test_key()]),
            )),
            DISCOVERY_PATH => Some(json(200, self.issuer.discovery())),
            SESSION_PATH => {
                let mut sub = LOCAL_USER.to_owned();
                let mut scope = LOCAL_SCOPE.to_owned();
                for pair in query.split('&') {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = gateway::percent_decode(&value.replace('+', " "));
                    match name {
                        "sub" if !value.is_empty() => sub = value,
                        "scope" => scope = value,
                        _ => {}
                    }
                }
                Some(match self.issuer.session(&sub, &scope, SESSION_LIFETIME) {
                    Ok(token) => json(
                        200,
                        json!({"token": token, "sub": sub, "scope": scope, "expires_in": SESSION_LIFETIME.as_secs()}),
                    ),
                    Err(e) => json(500, json!({ "message": e })),
                })
            }
            _ => None,
        }
    }
}

/// One line per request; never headers, bodies or query strings (they can carry secrets).
fn log_line(method: &str, path: &str, status: u16, started: Instant, detail: &str) {
    let ms = started.elapsed().as_millis();
    if detail.is_empty() {
        println!("{method} {path} -> {status} in {ms} ms");
    } else {
        println!("{method} {path} -> {status} in {ms} ms ({detail})");
    }
}

fn to_hyper(response: gateway::Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && hyper::header::HeaderValue::from_str(value).is_ok()
        {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    builder.body(Full::new(response.body)).unwrap_or_else(|_| {
        let mut failed = hyper::Response::new(Full::new(Bytes::new()));
        *failed.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        failed
    })
}
