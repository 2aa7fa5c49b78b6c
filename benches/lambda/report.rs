//! The report: numbered sections with their verdicts, written to `DIR/<item>.md` and
//! `DIR/<item>.json` by each step, and joined with the machine's description into
//! docs/benchmarks.md (or the short report). Also the figures' formatting.

use crate::support::Options;
use chrono::Utc;
use std::path::Path;

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

/// A numbered part of docs/benchmarks.md: its markdown and the verdicts for the summary, and
/// the figures later steps read (`DIR/<item>.data.json`: the cost step reads the requests' and
/// the invocations').
pub struct Section {
    pub item: u8,
    pub markdown: String,
    pub verdicts: Vec<Verdict>,
    pub data: Option<serde_json::Value>,
}

impl Section {
    pub fn new(item: u8, title: &str) -> Section {
        Section {
            item,
            markdown: format!("## {item}. {title}\n\n"),
            verdicts: Vec::new(),
            data: None,
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
        let data = dir.join(format!("{}.data.json", self.item));
        match &self.data {
            Some(value) => std::fs::write(
                &data,
                serde_json::to_string_pretty(value).expect("data as JSON"),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", data.display())),
            None => {
                let _ = std::fs::remove_file(&data);
            }
        }
    }
}

/// The figures an earlier step of this run saved for `item` (`None`: it did not run).
pub fn load_data(dir: &Path, item: u8) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(format!("{item}.data.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

const TITLES: [&str; 10] = [
    "Binary size",
    "Cold start",
    "Peak memory",
    "Handler CPU per request",
    "DynamoDB requests per operation",
    "Cleanup scaling",
    "Throughput through the local server",
    "Warm invocation CPU",
    "End to end through the local server",
    "Cost per million requests",
];

/// Joins the sections into the report, with the machine described and a summary of targets.
/// What the report says of itself before the figures (a full run rewrites the whole file).
const REPORT_INTRO: &str = "```sh
./scripts/bench            # every measurement at full counts, written to docs/benchmarks.md (11 to 18 minutes)
./scripts/bench --short    # every step with tiny counts: proves they run (./scripts/test runs this)
```

One command measures what Lambda bills and what DynamoDB charges, into this file with the
machine and the date: (1) every function's `bootstrap` size as `sam build` makes it with the
release profile, (2) cold start under the runtime interface emulator against DynamoDB Local,
(3) peak RSS over 1,000 warm invocations and its growth, (4) handler CPU per request with
DynamoDB answered in-process by `aws-smithy-mocks` (criterion, `shared/benches/handlers.rs`),
(5) DynamoDB requests per operation, counted by an SDK interceptor, against the minimum the keys
allow, and the on-demand request units they cost, (6) cleanup at 1k / 5k / 25k expired tokens
among five times as many live ones, (7) requests/s and p50/p99 through `./scripts/run`'s server,
the PAT-authenticated list, 16 connections for 30 s, (8) CPU per warm invocation of every
function's whole process, from `/proc` over 1,000 invocations, beside baselines built in the
same run with the same profile (a minimal `lambda_http` function, and a minimal function making
one GetItem, two, or a GetItem and a Query: a route's calls; `benches/baselines/`), (9) that list end to end through the server one request at a time: Lambda
invocations and function CPU per request, and (10) the cost per million requests of each route
on AWS (API Gateway, Lambda requests and billed duration, DynamoDB request units) at the list
prices it states. The code is in `benches/lambda/` (one file per item) and `shared/benches/`.
Run the full mode on a quiet machine: every section records the load average it started under.

Everything below is generated by `./scripts/bench`: a full run rewrites this file, and `--short`
writes `$CARGO_TARGET_DIR/BENCHMARKS.short.md` instead, leaving this file alone. What the keys allow
per operation is in [the table](table.md#dynamodb-calls-per-operation). Hand-written sections
after the generated ones (other builds compared) are kept.

";

/// What follows this line in the report is not generated: a full run keeps it.
const KEPT_MARKER: &str = "<!-- kept by ./scripts/bench: the sections below are not generated -->";

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
    // Hand-written sections (measurements a run does not repeat, e.g. of other builds) follow
    // a marker: a full run keeps them.
    if let Ok(previous) = std::fs::read_to_string(&options.report) {
        if let Some(at) = previous.find(KEPT_MARKER) {
            out.push_str(&previous[at..]);
        }
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
