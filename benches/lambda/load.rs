//! Item 7: requests per second and latency through the local server (`./scripts/run`): the
//! Unleash list route (and the authorizer when template.yaml puts it in front), each a real
//! `bootstrap` under the runtime emulator, with concurrent keep-alive HTTP/1.1 connections on
//! loopback (hyper's client, which the workspace already builds).

use crate::support::{conditions, percentile, Options, Section, Verdict};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub const PATH: &str = "/api/admin/user/tokens";
const CONNECTIONS: usize = 16;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Target {
    /// `host:port`
    authority: String,
    pub port: u16,
    /// Path prefix of the base URL, without a trailing slash.
    prefix: String,
}

impl Target {
    pub fn parse(base_url: &str) -> Result<Target, String> {
        let uri: Uri = base_url.parse().map_err(|e| format!("{base_url}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{base_url}: only http:// on loopback is supported"));
        }
        let host = uri.host().unwrap_or_default();
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{base_url}: the load test runs against loopback only"
            ));
        }
        let port = uri
            .port_u16()
            .ok_or_else(|| format!("{base_url}: no port"))?;
        Ok(Target {
            authority: format!("{}:{port}", host.replace("localhost", "127.0.0.1")),
            port,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// A request to the list route's path with `Authorization: Bearer <credential>`: `GET`,
    /// or with a JSON body, `POST` (a create).
    pub fn request(
        &self,
        credential: &str,
        body: Option<String>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{PATH}", self.prefix))
            .header("host", &self.authority)
            .header("authorization", format!("Bearer {credential}"))
            .header("accept", "application/json")
            .header("user-agent", "token-service-bench");
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("a request to {PATH}: {e}"))
    }
}

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(7, "Throughput through the local server");
    conditions(&mut section);
    let Some(base_url) = &options.base_url else {
        section.paragraph(
            "Not run: no local server was given (`./scripts/bench` starts `./scripts/run` when \
             it exists and passes its URL and credentials).",
        );
        section.verdicts.push(Verdict::new(
            "throughput, PAT-authenticated list",
            "reported",
            "not run",
            None,
        ));
        return Ok(section);
    };
    let target = Target::parse(base_url)?;
    let request = target.request(&pat(options, &target, "load").await?, None)?;
    let seconds = options.pick(30, 3);
    let warm_up = Duration::from_millis(options.pick(2_000, 500));
    // Warm-up: every emulator instance behind the server has started before the measurement.
    let _ = hammer(&target, &request, warm_up).await;
    let run = hammer(&target, &request, Duration::from_secs(seconds)).await;
    let mut latencies = run.latencies_us;
    latencies.sort_unstable();
    let ok = latencies.len() as u64 - run.not_ok;
    let rate = latencies.len() as f64 / run.elapsed.as_secs_f64();
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
    section.paragraph(format!(
        "`GET {PATH}` with `Authorization: Bearer <PAT>` through `./scripts/run --in-memory` \
         (its default of 2 runtime emulators per function; every request runs {}, DynamoDB \
         Local in memory; the user holds one token). {CONNECTIONS} \
         concurrent keep-alive connections for {seconds} s after {:.1} s of warm-up, from a \
         tokio HTTP/1.1 client in the same machine (it competes for the same {} CPUs). Latency \
         is per request, from writing it to reading the whole answer.",
        what_runs(),
        warm_up.as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
    ));
    section.table(
        &[
            "connections",
            "duration",
            "requests",
            "requests/s",
            "p50",
            "p90",
            "p99",
            "max",
            "non-200",
            "errors",
        ],
        &[vec![
            CONNECTIONS.to_string(),
            format!("{:.1} s", run.elapsed.as_secs_f64()),
            latencies.len().to_string(),
            format!("{rate:.0}"),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 90.0)),
            ms(percentile(&latencies, 99.0)),
            ms(latencies.last().copied().unwrap_or(0)),
            run.not_ok.to_string(),
            run.errors.to_string(),
        ]],
    );
    if let Some(status) = run.first_bad_status {
        section.paragraph(format!("First non-200 answer: {status}."));
    }
    section.verdicts.push(Verdict::new(
        "throughput, PAT-authenticated list, 16 connections",
        "reported (no target)",
        format!(
            "{rate:.0} req/s, p50 {}, p99 {}, {} non-200",
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            run.not_ok
        ),
        None,
    ));
    if ok == 0 {
        return Err(format!(
            "load: no request succeeded ({} non-200, {} errors)",
            run.not_ok, run.errors
        ));
    }
    Ok(section)
}

/// What a request to the list runs, as template.yaml routes it.
fn what_runs() -> &'static str {
    let behind_authorizer = harness::template::Template::load()
        .http_routes()
        .iter()
        .any(|r| r.method == "GET" && r.path == PATH && r.authorizer.is_some());
    if behind_authorizer {
        "the authorizer's `bootstrap`, then the list route's"
    } else {
        "the list route's `bootstrap`, which authenticates the PAT itself"
    }
}

/// The PAT a step lists with: `--pat`, or one created with `--jwt` (described `bench <step>`).
pub async fn pat(options: &Options, target: &Target, step: &str) -> Result<String, String> {
    match (&options.pat, &options.jwt) {
        (Some(pat), _) => Ok(pat.clone()),
        (None, Some(jwt)) => create_pat(target, jwt, &format!("bench {step}")).await,
        (None, None) => Err(format!("{step}: give --pat or --jwt with --base-url")),
    }
}

/// Creates a PAT (described `<what> <now in ms>`) through the server with a session JWT, and
/// returns its secret.
async fn create_pat(target: &Target, jwt: &str, what: &str) -> Result<String, String> {
    let expires = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let body = json!({
        "description": format!("{what} {}", chrono::Utc::now().timestamp_millis()),
        "expiresAt": expires,
    })
    .to_string();
    let answer = Connection::new(target, REQUEST_TIMEOUT * 3)
        .send(target.request(jwt, Some(body))?)
        .await
        .map_err(|e| format!("load: creating a PAT: {e}"))?;
    if answer.status != 201 {
        return Err(format!(
            "load: creating a PAT answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let created: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    created["secret"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("load: no secret in {created}"))
}

#[derive(Default)]
struct Run {
    latencies_us: Vec<u64>,
    not_ok: u64,
    errors: u64,
    first_bad_status: Option<String>,
    elapsed: Duration,
}

/// `CONNECTIONS` keep-alive connections, each sending `request` one after another until
/// `duration` has passed (after an error: a new connection, 20 ms later).
async fn hammer(target: &Target, request: &Request<Full<Bytes>>, duration: Duration) -> Run {
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let mut connection = Connection::new(target, REQUEST_TIMEOUT);
        let request = request.clone();
        tasks.spawn(async move {
            let mut run = Run::default();
            while Instant::now() < until {
                let sent = Instant::now();
                match connection.send(request.clone()).await {
                    Ok(answer) => {
                        run.latencies_us.push(sent.elapsed().as_micros() as u64);
                        if answer.status != 200 {
                            run.not_ok += 1;
                            if run.first_bad_status.is_none() {
                                let body = String::from_utf8_lossy(&answer.body);
                                let body: String = body.chars().take(200).collect();
                                run.first_bad_status = Some(format!("{} {body}", answer.status));
                            }
                        }
                    }
                    Err(_) => {
                        run.errors += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            run
        });
    }
    let mut run = Run::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(one) = done {
            run.latencies_us.extend(one.latencies_us);
            run.not_ok += one.not_ok;
            run.errors += one.errors;
            run.first_bad_status = run.first_bad_status.or(one.first_bad_status);
        } else {
            run.errors += 1;
        }
    }
    run.elapsed = started.elapsed();
    run
}

pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// One keep-alive HTTP/1.1 connection (hyper's), opened on first use and again after an error
/// or the server's `Connection: close`; one request at a time.
pub struct Connection {
    authority: String,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(target: &Target, timeout: Duration) -> Connection {
        Connection {
            authority: target.authority.clone(),
            timeout,
            sender: None,
        }
    }

    /// Sends `request` and reads the whole answer, within the timeout.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let answer = tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", self.timeout.as_secs())));
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }

    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let stream = TcpStream::connect(&self.authority)
                    .await
                    .map_err(|e| format!("connect {}: {e}", self.authority))?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(|e| e.to_string())?;
                // Serves the connection until the sender is dropped or the server closes it.
                tokio::spawn(connection);
                sender
            }
        };
        let sender = self.sender.insert(sender);
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let closing = response
            .headers()
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if closing {
            self.sender = None;
        }
        Ok(Answer { status, body })
    }
}
