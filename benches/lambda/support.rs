//! Options, the sections each step writes, the report, and what several steps share: the
//! template's functions and their environment, events, fresh tables, seeded tokens.

use chrono::{DateTime, Duration, Utc};
use harness::fresh::{fresh_app, FreshApp};
use harness::template::Template;
use harness::{workspace_root, DynamoLocal};
use serde_json::{json, Value};
use shared::store::{NewToken, Store};
use shared::tokens::{Secret, SecretDigest, Token};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub struct Options {
    pub short: bool,
    pub out_dir: PathBuf,
    pub report: PathBuf,
    pub criterion_dir: PathBuf,
    pub build_note: String,
    pub base_url: Option<String>,
    pub pat: Option<String>,
    pub jwt: Option<String>,
    /// Expired-token counts of the cleanup scaling step, instead of the mode's.
    pub cleanup_sizes: Option<Vec<usize>>,
    pub steps: Vec<String>,
}

pub const ALL_STEPS: [&str; 8] = [
    "sizes", "cold", "rss", "cpu", "requests", "cleanup", "load", "report",
];

impl Options {
    pub const USAGE: &'static str = "usage: lambda [--short] [--out DIR] [--report FILE] \
        [--criterion DIR] [--build-note TEXT] [--base-url URL (--pat SECRET | --jwt TOKEN)] \
        [--cleanup-sizes N,N,...] [STEP...]\nsteps: sizes cold rss cpu requests cleanup load report (default: all)";

    pub fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let mut options = Options {
            short: false,
            out_dir: target.join("bench"),
            report: workspace_root().join("docs").join("benchmarks.md"),
            criterion_dir: std::env::var_os("CRITERION_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("criterion")),
            build_note: String::new(),
            base_url: None,
            pat: None,
            jwt: None,
            cleanup_sizes: None,
            steps: Vec::new(),
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                // What `cargo bench` passes to every bench binary.
                "--bench" => {}
                "--short" => options.short = true,
                "--out" => options.out_dir = value("--out")?.into(),
                "--report" => options.report = value("--report")?.into(),
                "--criterion" => options.criterion_dir = value("--criterion")?.into(),
                "--build-note" => options.build_note = value("--build-note")?,
                "--base-url" => options.base_url = Some(value("--base-url")?),
                "--pat" => options.pat = Some(value("--pat")?),
                "--jwt" => options.jwt = Some(value("--jwt")?),
                "--cleanup-sizes" => {
                    let text = value("--cleanup-sizes")?;
                    let sizes: Result<Vec<usize>, _> =
                        text.split(',').map(|n| n.trim().parse::<usize>()).collect();
                    options.cleanup_sizes = Some(
                        sizes
                            .ok()
                            .filter(|s| s.iter().all(|n| *n > 0))
                            .ok_or_else(|| format!("--cleanup-sizes {text:?}: e.g. 1000,10000"))?,
                    );
                }
                step if ALL_STEPS.contains(&step) => options.steps.push(step.to_owned()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.steps.is_empty() {
            options.steps = ALL_STEPS.iter().map(|s| s.to_string()).collect();
        }
        std::fs::create_dir_all(&options.out_dir)
            .map_err(|e| format!("{}: {e}", options.out_dir.display()))?;
        Ok(options)
    }

    /// `full` in full mode, `short` in short mode.
    pub fn pick<T>(&self, full: T, short: T) -> T {
        if self.short {
            short
        } else {
            full
        }
    }
}

/// One target of the issue, as measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub what: String,
    pub target: String,
    pub measured: String,
    /// `None`: reported without a target, or not measured.
    pub met: Option<bool>,
}

impl Verdict {
    pub fn new(
        what: impl Into<String>,
        target: impl Into<String>,
        measured: impl Into<String>,
        met: Option<bool>,
    ) -> Verdict {
        Verdict {
            what: what.into(),
            target: target.into(),
            measured: measured.into(),
            met,
        }
    }
}

pub fn met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "—",
    }
}

/// A numbered part of docs/benchmarks.md: its markdown and the verdicts for the summary.
pub struct Section {
    pub item: u8,
    pub markdown: String,
    pub verdicts: Vec<Verdict>,
}

impl Section {
    pub fn new(item: u8, title: &str) -> Section {
        Section {
            item,
            markdown: format!("## {item}. {title}\n\n"),
            verdicts: Vec::new(),
        }
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.markdown.push_str(text.as_ref());
        self.markdown.push('\n');
    }

    pub fn paragraph(&mut self, text: impl AsRef<str>) {
        self.line(text);
        self.markdown.push('\n');
    }

    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.line(format!("| {} |", header.join(" | ")));
        self.line(format!("|{}", "---|".repeat(header.len())));
        for row in rows {
            self.line(format!("| {} |", row.join(" | ")));
        }
        self.markdown.push('\n');
    }

    pub fn save(&self, dir: &Path) {
        let markdown = dir.join(format!("{}.md", self.item));
        let verdicts = dir.join(format!("{}.json", self.item));
        std::fs::write(&markdown, &self.markdown)
            .unwrap_or_else(|e| panic!("{}: {e}", markdown.display()));
        std::fs::write(
            &verdicts,
            serde_json::to_string_pretty(&self.verdicts).expect("verdicts as JSON"),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", verdicts.display()));
    }
}

const TITLES: [&str; 7] = [
    "Binary size",
    "Cold start",
    "Peak memory",
    "Handler CPU per request",
    "DynamoDB requests per operation",
    "Cleanup scaling",
    "Throughput through the local server",
];

/// Joins the sections into the report, with the machine described and a summary of targets.
/// What the report says of itself before the figures (a full run rewrites the whole file).
const REPORT_INTRO: &str = "```sh
./scripts/bench            # every measurement at full counts, written to docs/benchmarks.md (about 40 minutes)
./scripts/bench --short    # every step with tiny counts: proves they run (./scripts/test runs this)
```

One command measures what Lambda bills and what DynamoDB charges, into this file with the
machine and the date: (1) every function's `bootstrap` size as `sam build` makes it with the
release profile, (2) cold start under the runtime interface emulator against DynamoDB Local,
(3) peak RSS over 1,000 warm invocations and its growth, (4) handler CPU per request with
DynamoDB answered in-process by `aws-smithy-mocks` (criterion, `shared/benches/handlers.rs`),
(5) DynamoDB requests per operation, counted by an SDK interceptor, against the minimum the keys
allow, (6) cleanup at 1k / 10k / 50k expired tokens among five times as many live ones, and
(7) requests/s and p50/p99 through `./scripts/run`'s server, authorizer + list, 16 connections
for 30 s. The code is in `benches/lambda/` (one file per item) and `shared/benches/`. Run the
full mode on a quiet machine: every section records the load average it started under.

Everything below is generated by `./scripts/bench`: a full run rewrites this file, and `--short`
writes `$CARGO_TARGET_DIR/BENCHMARKS.short.md` instead, leaving this file alone. What the keys allow
per operation is in [the table](table.md#dynamodb-calls-per-operation).

";

pub fn write_report(options: &Options) -> Result<(), String> {
    let mut sections = Vec::new();
    let mut summary = Vec::new();
    for (index, title) in TITLES.iter().enumerate() {
        let item = index + 1;
        let markdown = std::fs::read_to_string(options.out_dir.join(format!("{item}.md")))
            .unwrap_or_else(|_| {
                format!(
                    "## {item}. {title}\n\nNot run in this invocation of `./scripts/bench`.\n\n"
                )
            });
        let verdicts: Vec<Verdict> =
            std::fs::read_to_string(options.out_dir.join(format!("{item}.json")))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default();
        for v in verdicts {
            summary.push(vec![
                item.to_string(),
                v.what,
                v.target,
                v.measured,
                met(v.met).to_owned(),
            ]);
        }
        sections.push(markdown);
    }
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(REPORT_INTRO);
    out.push_str(&format!(
        "Generated by `./scripts/bench{}` on {} (UTC). {}\n\n",
        if options.short { " --short" } else { "" },
        Utc::now().format("%Y-%m-%d %H:%M"),
        if options.short {
            "**Short mode**: tiny counts, so the figures only show that every step runs."
        } else {
            "Full mode: the counts the issue asks for."
        }
    ));
    out.push_str("## The machine\n\n");
    out.push_str("| | |\n|---|---|\n");
    for (key, value) in machine() {
        out.push_str(&format!("| {key} | {value} |\n"));
    }
    if !options.build_note.is_empty() {
        out.push_str(&format!("| function binaries | {} |\n", options.build_note));
    }
    out.push_str(&format!(
        "| load average when the report was written | {} |\n",
        load_average()
    ));
    out.push('\n');
    out.push_str(
        "Every step records the load average (1, 5, 15 minutes) when it started: on a machine \
         shared with builds, the timings are only as good as that figure is low.\n\n",
    );
    out.push_str("## Targets\n\n");
    out.push_str("| item | what | target | measured | |\n|---|---|---|---|---|\n");
    for row in &summary {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out.push('\n');
    for section in sections {
        out.push_str(&section);
    }
    std::fs::write(&options.report, out)
        .map_err(|e| format!("{}: {e}", options.report.display()))?;
    harness::dynamodb_local::progress(&format!("bench: wrote {}", options.report.display()));
    Ok(())
}

fn machine() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown".into());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    vec![
        (
            "CPUs (nproc)",
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "unknown".into()),
        ),
        ("CPU model", cpu),
        ("memory", memory),
        ("kernel", kernel),
        ("OS", os),
        ("rustc", rustc),
        ("DynamoDB Local's Java", java),
    ]
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The line every section starts with: when, and how busy the machine was.
pub fn conditions(section: &mut Section) {
    section.paragraph(format!(
        "*Measured {} UTC; load average at the start: {}.*",
        Utc::now().format("%Y-%m-%d %H:%M"),
        load_average()
    ));
}

// ---------- formatting ----------

pub fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

pub fn median(values: &mut [std::time::Duration]) -> std::time::Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------- the template's functions ----------

pub struct Function {
    pub logical_id: String,
    pub environment: Vec<(String, String)>,
}

impl Function {
    pub fn bootstrap(&self) -> PathBuf {
        sam_build_dir().join(&self.logical_id).join("bootstrap")
    }
}

/// Every function of template.yaml with the environment the template gives it (parameters at
/// their defaults, the table's name for `!Ref TokensTable`; `harness::template`), plus
/// DynamoDB Local's endpoint.
pub fn functions(table: &str, local: &DynamoLocal) -> Vec<Function> {
    Template::load()
        .functions(table, &BTreeMap::new())
        .into_iter()
        .map(|function| {
            let mut environment: Vec<(String, String)> = function.environment.into_iter().collect();
            environment.extend(local.environment());
            Function {
                logical_id: function.logical_id,
                environment,
            }
        })
        .collect()
}

// ---------- events ----------

pub use harness::events::{as_user, event, sam_build_dir, with_path_parameter};

/// The create-pat event with a body whose expiry is in the future.
pub fn create_pat_body(description: &str) -> String {
    let expires = (Utc::now() + Duration::days(30)).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    json!({"description": description, "expiresAt": expires.to_string()}).to_string()
}

pub fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway HTTP API event")
}

// ---------- tables and tokens ----------

/// A table and app of its own on this process's DynamoDB Local (`harness::fresh`).
pub type Env = FreshApp;

/// A fresh table from template.yaml on this process's DynamoDB Local, and an app over it with
/// the default configuration plus `vars`.
pub async fn fresh_env(vars: &[(&str, &str)]) -> Env {
    fresh_app("bench", vars).await
}

/// Creates a token through the store (the same calls a create makes), with no cap in the way.
/// `get-app-token.json` as alice, with her token at the uuid it asks for (expiring in a day),
/// so the event answers 200.
pub async fn seed_get_event_token(store: &Store) -> Result<Value, String> {
    let get_event = as_user(event("get-app-token.json"), "alice");
    let uuid = Uuid::parse_str(
        get_event["pathParameters"]["token_uuid"]
            .as_str()
            .ok_or("get-app-token.json has no token_uuid")?,
    )
    .map_err(|e| e.to_string())?;
    let digest = Secret::generate().map_err(|e| e.to_string())?.digest();
    let in_a_day = Some(Utc::now() + Duration::days(1));
    seed_token(store, "alice", uuid, &digest, in_a_day).await;
    Ok(get_event)
}

/// `authorizer.json`, with a token of alice's (expiring in a day) whose secret is the one it
/// presents, so the authorizer allows it; and that secret.
pub async fn seed_authorizer_event_token(store: &Store) -> Result<(Value, Secret), String> {
    let authorizer_event = event("authorizer.json");
    let header = authorizer_event["headers"]["authorization"]
        .as_str()
        .ok_or("authorizer.json has no authorization header")?;
    let secret = Secret::parse(header.trim_start_matches("Bearer ").trim())
        .map_err(|e| format!("the authorizer event's token: {e}"))?;
    let in_a_day = Some(Utc::now() + Duration::days(1));
    seed_token(store, "alice", Uuid::new_v4(), &secret.digest(), in_a_day).await;
    Ok((authorizer_event, secret))
}

pub async fn seed_token(
    store: &Store,
    user: &str,
    uuid: Uuid,
    digest: &SecretDigest,
    expires: Option<DateTime<Utc>>,
) -> Token {
    let now = Utc::now();
    store
        .create_token(
            NewToken {
                user_id: user.to_owned(),
                uuid,
                title: format!("seeded {uuid}"),
                created: now - Duration::days(1),
                expires,
            },
            digest,
            10_000,
            Duration::days(1),
        )
        .await
        .unwrap_or_else(|e| panic!("seeding a token for {user}: {e}"))
}

/// `count` tokens for each of `users`, created 16 at a time; returns them per user, in the
/// order their Unleash numbers were issued.
pub async fn seed_many(
    store: &Store,
    users: &[String],
    count: usize,
) -> HashMap<String, Vec<Token>> {
    let mut work: Vec<String> = Vec::new();
    for user in users {
        work.extend(std::iter::repeat_n(user.clone(), count));
    }
    let mut seeded: HashMap<String, Vec<Token>> = HashMap::new();
    for chunk in work.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for user in chunk {
            let store = store.clone();
            let user = user.clone();
            tasks.spawn(async move {
                let digest = shared::tokens::Secret::generate().expect("secret").digest();
                let expires = Some(Utc::now() + Duration::days(30));
                seed_token(&store, &user, Uuid::new_v4(), &digest, expires).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let token = done.expect("seeding task");
            seeded.entry(token.user_id.clone()).or_default().push(token);
        }
    }
    for tokens in seeded.values_mut() {
        tokens.sort_by_key(|t| t.number);
    }
    seeded
}
