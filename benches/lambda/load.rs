//! Item 7: requests per second and latency through the local server (`./scripts/run`): the
//! Unleash list route (and the authorizer when template.yaml puts it in front), each a real
//! `bootstrap` under the runtime emulator, with concurrent keep-alive HTTP/1.1 clients on
//! loopback. A small client of our own (tokio,
//! raw HTTP/1.1), so the benchmark needs nothing installed.

use crate::support::{conditions, percentile, Options, Section, Verdict};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PATH: &str = "/api/admin/user/tokens";
const CONNECTIONS: usize = 16;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Target {
    /// `host:port`
    pub authority: String,
    /// Path prefix of the base URL, without a trailing slash.
    pub prefix: String,
}

impl Target {
    pub fn parse(base_url: &str) -> Result<Target, String> {
        let rest = base_url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base_url}: only http:// on loopback is supported"))?;
        let (authority, prefix) = match rest.split_once('/') {
            Some((a, p)) => (a, format!("/{}", p.trim_end_matches('/'))),
            None => (rest, String::new()),
        };
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!(
                "{base_url}: the load test runs against loopback only"
            ));
        }
        Ok(Target {
            authority: authority.replace("localhost", "127.0.0.1"),
            prefix: if prefix == "/" { String::new() } else { prefix },
        })
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
    let pat = match (&options.pat, &options.jwt) {
        (Some(pat), _) => pat.clone(),
        (None, Some(jwt)) => create_pat(&target, jwt, "bench load").await?,
        (None, None) => return Err("load: give --pat or --jwt with --base-url".into()),
    };
    let request = Arc::new(
        format!(
            "GET {}{PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {pat}\r\n\
             Accept: application/json\r\nUser-Agent: token-service-bench\r\n\r\n",
            target.prefix, target.authority
        )
        .into_bytes(),
    );
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

/// Creates a PAT (described `<what> <now in ms>`) through the server with a session JWT, and
/// returns its secret.
pub async fn create_pat(target: &Target, jwt: &str, what: &str) -> Result<String, String> {
    let expires = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let body = json!({
        "description": format!("{what} {}", chrono::Utc::now().timestamp_millis()),
        "expiresAt": expires,
    })
    .to_string();
    let request = format!(
        "POST {}{PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {jwt}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.prefix,
        target.authority,
        body.len()
    );
    let mut stream = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("load: connect {}: {e}", target.authority))?;
    let mut buffer = Vec::new();
    let answer = tokio::time::timeout(REQUEST_TIMEOUT * 3, async {
        stream.write_all(request.as_bytes()).await?;
        read_response(&mut stream, &mut buffer).await
    })
    .await
    .map_err(|_| "load: creating a PAT timed out".to_owned())?
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

struct Run {
    latencies_us: Vec<u64>,
    not_ok: u64,
    errors: u64,
    first_bad_status: Option<String>,
    elapsed: Duration,
}

async fn hammer(target: &Target, request: &Arc<Vec<u8>>, duration: Duration) -> Run {
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let authority = target.authority.clone();
        let request = request.clone();
        tasks.spawn(async move { connection(authority, request, until).await });
    }
    let mut run = Run {
        latencies_us: Vec::new(),
        not_ok: 0,
        errors: 0,
        first_bad_status: None,
        elapsed: Duration::ZERO,
    };
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

/// One keep-alive connection sending the request until `until`, reconnecting after errors.
async fn connection(authority: String, request: Arc<Vec<u8>>, until: Instant) -> Run {
    let mut run = Run {
        latencies_us: Vec::new(),
        not_ok: 0,
        errors: 0,
        first_bad_status: None,
        elapsed: Duration::ZERO,
    };
    let mut stream: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(16 * 1024);
    while Instant::now() < until {
        let started = Instant::now();
        let attempt = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if stream.is_none() {
                let connected = TcpStream::connect(&authority).await?;
                connected.set_nodelay(true)?;
                stream = Some(connected);
                buffer.clear();
            }
            let Some(s) = stream.as_mut() else {
                return Err(std::io::Error::other("no connection"));
            };
            s.write_all(&request).await?;
            read_response(s, &mut buffer).await
        })
        .await;
        match attempt {
            Ok(Ok(answer)) => {
                run.latencies_us.push(started.elapsed().as_micros() as u64);
                if answer.status != 200 {
                    run.not_ok += 1;
                    if run.first_bad_status.is_none() {
                        run.first_bad_status = Some(format!(
                            "{} {}",
                            answer.status,
                            String::from_utf8_lossy(&answer.body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        ));
                    }
                }
                if !answer.keep_alive {
                    stream = None;
                }
            }
            _ => {
                run.errors += 1;
                stream = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    run
}

pub struct Answer {
    pub status: u16,
    pub keep_alive: bool,
    pub body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until close).
pub async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Answer> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if fill(stream, buffer).await? == 0 {
            return Err(bad("connection closed before the headers"));
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => keep_alive = !value.contains("close"),
            _ => {}
        }
    }
    buffer.drain(..head_end);
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(buffer, b"\r\n") {
                    break at;
                }
                if fill(stream, buffer).await? == 0 {
                    return Err(bad("connection closed inside a chunk"));
                }
            };
            let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            buffer.drain(..line_end + 2);
            while buffer.len() < size + 2 {
                if fill(stream, buffer).await? == 0 {
                    return Err(bad("connection closed inside a chunk"));
                }
            }
            body.extend_from_slice(&buffer[..size]);
            buffer.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else if let Some(length) = length {
        while buffer.len() < length {
            if fill(stream, buffer).await? == 0 {
                return Err(bad("connection closed inside the body"));
            }
        }
        buffer.drain(..length).collect()
    } else if status == 204 || status == 304 {
        Vec::new()
    } else {
        while fill(stream, buffer).await? > 0 {}
        keep_alive = false;
        std::mem::take(buffer)
    };
    Ok(Answer {
        status,
        keep_alive,
        body,
    })
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
