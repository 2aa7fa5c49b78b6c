//! The README's run command, end to end: `./scripts/run` started as a user starts it, the curl
//! flow it prints run exactly as printed (create with the session, list, list with the new
//! token, revoke, the token refused), then Ctrl-C: nothing it started may remain. A second
//! test restarts on the same data directory: tokens and earlier sessions survive.

use harness::dynamodb_local::{free_port, progress};
use harness::workspace_root;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::LOCAL_API_READY as READY;
/// Long enough for a first build of every binary on two cores; seconds when they are built.
const START_LIMIT: Duration = Duration::from_secs(25 * 60);

/// `./scripts/run` as a user starts it (the browser tests start it so too).
pub(crate) struct LocalRun {
    child: Child,
    pub(crate) port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LocalRun {
    /// `./scripts/run <args> --port <port>`, from the repository root, as the README says.
    pub(crate) fn start(args: &[&str], port: u16) -> LocalRun {
        let mut child = Command::new(workspace_root().join("scripts").join("run"))
            .args(args)
            .args(["--port", &port.to_string()])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, as a shell's foreground job: Ctrl-C signals the group.
            .process_group(0)
            .spawn()
            .expect("start ./scripts/run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        collect(stdout, lines.clone());
        collect(stderr, lines.clone());
        let mut run = LocalRun { child, port, lines };
        run.wait_until_ready();
        run
    }

    pub(crate) fn output(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        let mut shown = 0;
        loop {
            let lines = self.output();
            // Progress of a long first build is worth seeing in CI's log.
            for line in &lines[shown..] {
                if line.starts_with("[run]") || line.starts_with("[local-api]") {
                    progress(&format!("local_run: {line}"));
                }
            }
            shown = lines.len();
            if lines.iter().any(|l| l.starts_with(READY)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "./scripts/run exited ({status}) before it was ready:\n{}",
                    lines.join("\n")
                );
            }
            if started.elapsed() > START_LIMIT {
                panic!(
                    "./scripts/run was not ready within {START_LIMIT:?}:\n{}",
                    lines.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The commands printed between the `API=` line and the ready line.
    fn printed_flow(&self) -> String {
        let lines = self.output();
        let first = lines
            .iter()
            .position(|l| l.starts_with("API="))
            .expect("the banner prints API=");
        let ready = lines
            .iter()
            .position(|l| l.starts_with(READY))
            .expect("ready line");
        lines[first..ready].join("\n").trim().to_owned()
    }

    fn printed_jwt(&self) -> String {
        self.output()
            .iter()
            .find_map(|l| l.strip_prefix("JWT="))
            .expect("the banner prints JWT=")
            .to_owned()
    }

    /// Every process below the server, now.
    fn descendants(&self) -> BTreeMap<u32, String> {
        descendants(self.child.id())
    }

    /// Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    pub(crate) fn ctrl_c(&mut self) -> ExitStatus {
        self.signal(&["-INT", "--", &format!("-{}", self.child.id())])
    }

    /// `kill <pid>`: SIGTERM to the server alone.
    fn terminate(&mut self) -> ExitStatus {
        self.signal(&["-TERM", &self.child.id().to_string()])
    }

    fn signal(&mut self, kill_args: &[&str]) -> ExitStatus {
        let sent = Command::new("kill").args(kill_args).status().expect("kill");
        assert!(sent.success(), "kill {kill_args:?} failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not stop within 30 s of kill {kill_args:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalRun {
    /// A failed test must not leave the server behind (its watchdogs stop the rest).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line);
            }
        }
    });
}

/// pid -> name of every live (not zombie) process below `root`, from /proc.
fn descendants(root: u32) -> BTreeMap<u32, String> {
    let mut parents: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, name, state)) = stat(pid) {
            if state != 'Z' {
                parents.push((pid, ppid, name));
            }
        }
    }
    let mut found = BTreeMap::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, name) in &parents {
            if *ppid == parent && !found.contains_key(pid) {
                found.insert(*pid, name.clone());
                frontier.push(*pid);
            }
        }
    }
    found
}

/// (parent pid, name, state) of a process, or None when it is gone.
fn stat(pid: u32) -> Option<(u32, String, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text[open + 1..close].to_owned();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, name, state))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, _, state)| state != 'Z')
}

/// Waits until none of `pids` is alive; the ones still alive after the limit.
fn still_alive_after(pids: &BTreeMap<u32, String>, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let alive: Vec<String> = pids
            .iter()
            .filter(|(pid, _)| alive(**pid))
            .map(|(pid, name)| format!("{pid} {name}"))
            .collect();
        if alive.is_empty() || started.elapsed() > limit {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_with_limit(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// `curl` as a user types it: (status, body).
pub(crate) fn curl(args: &[&str]) -> (u16, String) {
    let output = run_with_limit(
        Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}"])
            .args(args),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A directory removed when the test ends, passed or failed.
struct TemporaryDir(PathBuf);

impl TemporaryDir {
    fn new(name: &str) -> TemporaryDir {
        let dir =
            std::env::temp_dir().join(format!("{name}-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_dir_all(&dir);
        TemporaryDir(dir)
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        // DynamoDB Local may still be closing its files for a moment after the server is gone.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_run_command_serves_the_printed_flow_and_ctrl_c_stops_everything() {
    let started = Instant::now();
    let mut run = LocalRun::start(&["--in-memory"], free_port());
    let api = format!("http://127.0.0.1:{}", run.port);
    progress(&format!(
        "local_run: ready in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // The flow exactly as printed, pasted into a POSIX shell.
    let flow = run.printed_flow();
    assert!(flow.contains(&format!("API={api}")), "{flow}");
    let output = run_with_limit(
        Command::new("sh").arg("-c").arg(&flow),
        Duration::from_secs(60),
    );
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "the printed flow failed ({}):\n{printed}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.len(),
        10,
        "one heading and one answer per step:\n{printed}"
    );

    let created = json(lines[1]);
    let secret = created["token"]["token_code"].as_str().unwrap_or_default();
    assert!(secret.starts_with("pat_"), "create answered {created}");
    assert_eq!(created["token"]["title"], "my laptop");

    let by_session = json(lines[3]);
    let by_token = json(lines[5]);
    for list in [&by_session, &by_token] {
        let pats = list["pats"].as_array().expect("pats");
        assert_eq!(pats.len(), 1, "{list}");
        assert_eq!(pats[0]["description"], "my laptop");
        assert!(pats[0].get("secret").is_none(), "a list shows no secret");
    }
    assert_eq!(by_session["pats"][0]["id"], by_token["pats"][0]["id"]);
    assert!(
        by_token["pats"][0]["seenAt"].is_string(),
        "using the token records its last use: {by_token}"
    );
    assert_eq!(lines[7], "204", "revoke:\n{printed}");
    // The route itself refuses it, in its dialect (no authorizer in front of it).
    let (refused, status) = lines[9].rsplit_once(' ').unwrap_or_default();
    assert_eq!(status, "401", "the revoked token:\n{printed}");
    assert_eq!(json(refused)["name"], "AuthenticationRequired", "{printed}");

    // No credentials: the route's 401, with its challenges.
    let (status, body) = curl(&[&format!("{api}/api/v1/user/apptoken")]);
    assert_eq!(
        (status, json(&body)["error_type"].clone()),
        (401, "invalid_token".into()),
        "{body}"
    );
    // The example of a deployer's route: behind the authorizer, as API Gateway runs it.
    let (status, body) = curl(&[&format!("{api}/example/whoami")]);
    assert_eq!(
        (status, json(&body)),
        (401, json(r#"{"message":"Unauthorized"}"#))
    );
    let jwt = run.printed_jwt();
    let (status, body) = curl(&[
        &format!("{api}/example/whoami"),
        "-H",
        &format!("Authorization: Bearer {jwt}"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["auth"], "jwt", "{body}");
    let (status, body) = curl(&[
        &format!("{api}/example/whoami"),
        "-H",
        "Authorization: Bearer pat_not_a_token",
    ]);
    assert_eq!(
        (status, json(&body)),
        (403, json(r#"{"message":"Forbidden"}"#))
    );
    // The $default route: an unknown path under a dialect's prefix is that dialect's 404...
    let (status, body) = curl(&[
        &format!("{api}/api/v1/no/such/route"),
        "-H",
        &format!("Authorization: Bearer {jwt}"),
    ]);
    assert_eq!(
        (status, json(&body)["error_type"].clone()),
        (404, "not_found".into()),
        "{body}"
    );
    // ...a known path with another method is a 405 naming the methods it has...
    let (status, body) = curl(&[
        "-X",
        "PUT",
        &format!("{api}/api/admin/user/tokens"),
        "-H",
        &format!("Authorization: Bearer {jwt}"),
    ]);
    assert_eq!(
        (status, json(&body)["name"].clone()),
        (405, "MethodNotAllowedError".into()),
        "{body}"
    );
    // ...and anything else is API Gateway's own 404 body.
    let (status, body) = curl(&[&format!("{api}/no/such/route")]);
    assert_eq!(
        (status, json(&body)),
        (404, json(r#"{"message":"Not Found"}"#))
    );
    let (status, body) = curl(&[&format!("{api}/.well-known/jwks.json")]);
    assert_eq!(status, 200);
    assert_eq!(json(&body)["keys"][0]["alg"], "ES256");

    // One log line per request, cold starts visible, secrets never.
    let log = run.output().join("\n");
    assert!(
        log.contains("POST /api/v1/user/apptoken -> 201 in ")
            && log.contains("(cold: create-app-token)"),
        "{log}"
    );
    assert!(
        log.lines().any(
            |l| l.starts_with("GET /api/admin/user/tokens -> 200 in ") && l.ends_with("(warm)")
        ),
        "{log}"
    );
    assert!(
        log.contains("GET /api/admin/user/tokens -> 401 in "),
        "{log}"
    );
    // One invocation per request on the bundle's routes; the authorizer only for the example.
    assert!(
        !log.lines()
            .filter(|l| l.starts_with("GET /api/") || l.starts_with("POST /api/"))
            .any(|l| l.contains("authorizer")),
        "{log}"
    );
    assert!(
        log.contains("GET /example/whoami -> 200 in ") && log.contains("cold: authorizer"),
        "{log}"
    );
    assert!(!log.contains(secret), "the server printed a token's secret");
    assert_eq!(
        log.matches(&jwt).count(),
        1,
        "the JWT is printed once, at start"
    );

    // Ctrl-C: everything it started goes with it.
    let started_processes = run.descendants();
    let names: BTreeSet<&str> = started_processes.values().map(String::as_str).collect();
    for expected in ["java", "aws-lambda-rie", "bootstrap"] {
        assert!(
            names.contains(expected),
            "expected a {expected} below the server, found {names:?}"
        );
    }
    let status = run.ctrl_c();
    assert!(status.success(), "the server exited with {status}");
    let left = still_alive_after(&started_processes, Duration::from_secs(15));
    assert!(left.is_empty(), "still running after Ctrl-C: {left:?}");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", run.port)).is_ok(),
        "the port is still taken"
    );
    progress(&format!(
        "local_run: flow and shutdown in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn a_second_start_reuses_the_data_and_the_signing_key() {
    let data = TemporaryDir::new("local-run-data");
    let data_arg = data.0.to_string_lossy().into_owned();
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");

    let mut first = LocalRun::start(&["--data-dir", &data_arg], port);
    let jwt = first.printed_jwt();
    let (status, body) = curl(&[
        "-X",
        "POST",
        &format!("{api}/api/v1/user/apptoken"),
        "-H",
        &format!("Authorization: Bearer {jwt}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"title": "kept across restarts"}"#,
    ]);
    assert_eq!(status, 201, "{body}");
    let processes = first.descendants();
    assert!(first.terminate().success());
    let left = still_alive_after(&processes, Duration::from_secs(15));
    assert!(left.is_empty(), "still running after SIGTERM: {left:?}");
    drop(first);

    let mut second = LocalRun::start(&["--data-dir", &data_arg], port);
    let log = second.output().join("\n");
    assert!(log.contains("found (data from an earlier run)"), "{log}");
    assert!(log.contains("read from"), "the key was not reused:\n{log}");
    // The session printed by the first start is still valid, and the token is still there.
    let (status, body) = curl(&[
        &format!("{api}/api/admin/user/tokens"),
        "-H",
        &format!("Authorization: Bearer {jwt}"),
    ]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["pats"][0]["description"],
        "kept across restarts"
    );
    assert!(second.ctrl_c().success());
}
