//! Item 8: CPU per warm invocation of the whole function process, for every function with an
//! event and for two baselines built with the same profile in the same run (a minimal
//! `lambda_http` function, and one doing a single GetItem): each under the runtime emulator
//! against DynamoDB Local, its `bootstrap` process's CPU time read from `/proc` before and after
//! many warm invocations. Cold starts are the cold step's (item 2).

use crate::procfs::{self, Cpu};
use crate::support::{
    answered_as_expected, conditions, fresh_env, functions, ms, Function, Options, Section,
    Verdict, WarmEvents,
};
use harness::rie::Emulator;
use harness::DynamoLocal;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The target: each function's warm CPU per invocation at most this times the minimal
/// GetItem function's.
pub const TARGET_RATIO: f64 = 1.15;
pub const MINIMAL_HTTP: &str = "minimal-http";
pub const MINIMAL_GETITEM: &str = "minimal-getitem";
/// Before each CPU reading: the runtime's work after the last answer (posting it, the next
/// long poll) settles.
const SETTLE: Duration = Duration::from_millis(50);

enum Kind {
    Function(Function),
    Baseline(&'static str),
}

struct Case {
    name: String,
    kind: Kind,
    bootstrap: PathBuf,
    environment: Vec<(String, String)>,
}

struct Measured {
    invocations: usize,
    failures: usize,
    first_failure: Option<String>,
    /// The function process, over the measured invocations.
    cpu: Cpu,
    /// The runtime emulator's own process, over the same invocations.
    rie: Option<Cpu>,
    /// The emulator's `REPORT` durations of the measured invocations, in ms.
    durations_ms: Vec<f64>,
    round_trips: Vec<Duration>,
}

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(8, "Warm invocation CPU");
    conditions(&mut section);
    let invocations = options.pick(1000, 5);
    let warm_up = options.pick(20, 2);

    let env = fresh_env(&[]).await;
    // The first invocation (cold) and the warm-up ones consume seeded tokens too.
    let events = WarmEvents::seed(&env.app.store, 1 + warm_up + invocations).await?;
    let local = DynamoLocal::shared();

    let mut cases = Vec::new();
    for name in [MINIMAL_HTTP, MINIMAL_GETITEM] {
        let mut environment = local.environment();
        if name == MINIMAL_GETITEM {
            // The item get-app-token's event reads: the baseline's one GetItem reads it too.
            let user = events.get_user().to_owned();
            let uuid = events.get_event()["pathParameters"]["token_uuid"]
                .as_str()
                .and_then(|u| uuid::Uuid::parse_str(u).ok())
                .ok_or("the get event names no token_uuid")?;
            environment.extend([
                ("TABLE_NAME".to_owned(), env.table().to_owned()),
                (
                    "GET_ITEM_PK".to_owned(),
                    shared::store::items::user_pk(&user),
                ),
                (
                    "GET_ITEM_SK".to_owned(),
                    shared::store::items::token_sk(&uuid),
                ),
            ]);
        }
        cases.push(Case {
            name: name.to_owned(),
            kind: Kind::Baseline(name),
            bootstrap: options.baselines_dir.join(name).join("bootstrap"),
            environment,
        });
    }
    for function in functions(env.table(), local) {
        if events.nth(&function, 0).is_none() {
            continue;
        }
        cases.push(Case {
            name: function.logical_id.clone(),
            bootstrap: function.bootstrap(),
            environment: function.environment.clone(),
            kind: Kind::Function(function),
        });
    }

    let mut results: Vec<(Case, Result<Measured, String>)> = Vec::new();
    for case in cases {
        harness::dynamodb_local::progress(&format!(
            "bench: invocation: {} x{invocations}",
            case.name
        ));
        let measured = if case.bootstrap.is_file() {
            let event = |i: usize| -> Value {
                match &case.kind {
                    Kind::Function(f) => events.nth(f, i).unwrap_or_default(),
                    Kind::Baseline(_) => events.get_event().clone(),
                }
            };
            let expected = |answer: &Value| -> bool {
                match &case.kind {
                    Kind::Function(f) => answered_as_expected(f, answer),
                    Kind::Baseline(_) => answer["statusCode"] == 200,
                }
            };
            measure(&case, warm_up, invocations, event, expected).await
        } else {
            Err(format!(
                "not built ({} is missing)",
                case.bootstrap.display()
            ))
        };
        if let Ok(m) = &measured {
            harness::dynamodb_local::progress(&format!(
                "bench: invocation: {}: {:.0} µs CPU per warm invocation",
                case.name,
                m.cpu.us() / m.invocations as f64
            ));
        }
        results.push((case, measured));
    }
    env.drop_table().await;

    let per_invocation = |name: &str| -> Option<f64> {
        results.iter().find_map(|(case, m)| match m {
            Ok(m) if case.name == name && m.failures == 0 => {
                Some(m.cpu.us() / m.invocations as f64)
            }
            _ => None,
        })
    };
    let getitem = per_invocation(MINIMAL_GETITEM);
    let http = per_invocation(MINIMAL_HTTP);

    let mut rows = Vec::new();
    let mut data_functions = serde_json::Map::new();
    let mut data_baselines = serde_json::Map::new();
    for (case, measured) in &results {
        let label = match &case.kind {
            Kind::Baseline(MINIMAL_HTTP) => {
                format!("baseline `{MINIMAL_HTTP}` (lambda_http, a fixed 200)")
            }
            Kind::Baseline(_) => {
                format!("baseline `{MINIMAL_GETITEM}` (one GetItem, then a fixed 200)")
            }
            Kind::Function(_) => case.name.clone(),
        };
        let m = match measured {
            Ok(m) => m,
            Err(e) => {
                rows.push(vec![
                    label,
                    "—".into(),
                    "—".into(),
                    e.clone(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    "—".into(),
                ]);
                if let Kind::Function(_) = case.kind {
                    section.verdicts.push(Verdict::new(
                        format!("warm CPU per invocation, {}", case.name),
                        format!("≤ {TARGET_RATIO}× minimal GetItem"),
                        "not measured",
                        None,
                    ));
                }
                continue;
            }
        };
        let n = m.invocations as f64;
        let cpu_us = m.cpu.us() / n;
        let mut durations = m.durations_ms.clone();
        let duration = median_f64(&mut durations);
        let mut trips = m.round_trips.clone();
        let round_trip = crate::support::median(&mut trips);
        let ratio = getitem.map(|g| cpu_us / g);
        let ok = match (&case.kind, ratio) {
            (Kind::Function(_), Some(r)) if m.failures == 0 => Some(r <= TARGET_RATIO),
            _ => None,
        };
        rows.push(vec![
            label,
            m.invocations.to_string(),
            m.failures.to_string(),
            us(cpu_us),
            us(m.cpu.stat_us / n),
            m.rie.map(|c| us(c.us() / n)).unwrap_or_else(|| "—".into()),
            duration
                .map(|d| format!("{d:.2} ms"))
                .unwrap_or_else(|| "—".into()),
            ms(round_trip),
            ratio
                .map(|r| format!("{r:.2}×"))
                .unwrap_or_else(|| "—".into()),
            match case.kind {
                Kind::Function(_) => crate::support::met(ok).to_owned(),
                Kind::Baseline(_) => "(baseline)".into(),
            },
        ]);
        let figures = json!({
            "invocations": m.invocations,
            "failures": m.failures,
            "cpu_us": cpu_us,
            "stat_cpu_us": m.cpu.stat_us / n,
            "duration_ms": duration,
            "round_trip_ms": round_trip.as_secs_f64() * 1000.0,
        });
        match &case.kind {
            Kind::Function(f) => {
                let mut figures = figures;
                figures["binary"] = f.binary.clone().into();
                data_functions.insert(case.name.clone(), figures);
                let measured_text = match (ratio, m.failures) {
                    (_, failures) if failures > 0 => format!(
                        "{} ({failures} of {} invocations failed{})",
                        us(cpu_us),
                        m.invocations,
                        m.first_failure
                            .as_deref()
                            .map(|f| format!(": {f}"))
                            .unwrap_or_default()
                    ),
                    (Some(r), _) => format!("{} ({r:.2}×)", us(cpu_us)),
                    (None, _) => format!("{} (no baseline)", us(cpu_us)),
                };
                section.verdicts.push(Verdict::new(
                    format!("warm CPU per invocation, {}", case.name),
                    format!(
                        "≤ {TARGET_RATIO}× minimal GetItem{}",
                        getitem.map(|g| format!(" ({})", us(g))).unwrap_or_default()
                    ),
                    measured_text,
                    ok,
                ));
            }
            Kind::Baseline(name) => {
                data_baselines.insert((*name).to_owned(), figures);
            }
        }
    }

    section.paragraph(format!(
        "Each function's `bootstrap` (as for the other steps) and two baselines under the runtime \
         interface emulator against DynamoDB Local, with the template's environment: \
         `{MINIMAL_HTTP}`, a `lambda_http` function answering a fixed 200 JSON, and \
         `{MINIMAL_GETITEM}`, one doing one strongly consistent aws-sdk-dynamodb GetItem (of the \
         token get-app-token's event reads) with the SDK's defaults, then a fixed 200 \
         (`benches/baselines/`: the workspace's crates and features, no logging; built by \
         `./scripts/bench` in the same run and with the same profile as the functions{}). Each \
         process is started by a first (cold) invocation, then {warm_up} warm-up invocations, \
         then {invocations} warm invocations are measured, one at a time, with the events \
         ({}). *CPU per invocation*: the bootstrap process's time on CPU over the measured \
         invocations (all its threads: the sum of `/proc/<pid>/task/*/schedstat`, nanoseconds; \
         *utime + stime* is the same from `/proc/<pid>/stat`, in 10 ms ticks, so coarse over few \
         invocations), divided by their number: handler, runtime, SDK, JSON, logging, syscalls, \
         all of it. The emulator's own process (it stands in for Lambda's service side) is \
         shown apart and counted nowhere else. *Duration*: the emulator's `REPORT` line, what \
         Lambda bills (the handler's time until the answer); *round trip*: the POST to the \
         emulator until its answer, seen from here. Target: each function ≤ {TARGET_RATIO}× \
         the minimal GetItem function, as the issue words it, also for functions that make more \
         than one DynamoDB call (create, revoke and delete: two or three; cleanup: a Query per \
         day bucket).",
        if options.short {
            ", here the short mode's"
        } else {
            ""
        },
        WarmEvents::DESCRIPTION
    ));
    section.table(
        &[
            "function",
            "warm invocations",
            "failed",
            "CPU per invocation",
            "utime + stime",
            "emulator's CPU",
            "duration (REPORT, median)",
            "round trip (median)",
            "÷ minimal GetItem",
            "≤ 1.15×",
        ],
        &rows,
    );
    if let (Some(http), Some(getitem)) = (http, getitem) {
        section.paragraph(format!(
            "The minimal `lambda_http` function takes {} per warm invocation, the minimal \
             GetItem function {}: one GetItem through the SDK costs {} of CPU in the \
             function process, the rest is the runtime's.",
            us(http),
            us(getitem),
            us((getitem - http).max(0.0))
        ));
    }
    section.data = Some(json!({
        "invocations": invocations,
        "functions": data_functions,
        "baselines": data_baselines,
    }));
    Ok(section)
}

async fn measure(
    case: &Case,
    warm_up: usize,
    invocations: usize,
    event: impl Fn(usize) -> Value,
    expected: impl Fn(&Value) -> bool,
) -> Result<Measured, String> {
    let emulator = Emulator::start(&case.bootstrap, &case.environment)?;
    let measured = measure_on(&emulator, case, warm_up, invocations, event, expected).await;
    emulator.stop();
    measured
}

async fn measure_on(
    emulator: &Emulator,
    case: &Case,
    warm_up: usize,
    invocations: usize,
    event: impl Fn(usize) -> Value,
    expected: impl Fn(&Value) -> bool,
) -> Result<Measured, String> {
    let mut failures = Failures::default();
    // The cold invocation and the warm-up: a failure there means the events do not do their
    // work, and the figures would not mean what they say.
    for i in 0..=warm_up {
        failures.check(&emulator.invoke(&event(i)).await?, &expected);
    }
    if failures.count > 0 {
        return Err(format!(
            "the warm-up failed: {}",
            failures.first.unwrap_or_default()
        ));
    }
    let pid = procfs::bootstrap_pid(emulator.invoke_port)
        .ok_or_else(|| format!("cannot find the bootstrap process of {}", case.name))?;
    let rie = procfs::rie_pid(emulator.invoke_port);
    tokio::time::sleep(SETTLE).await;
    let log_offset = emulator.log_text().len();
    let before = procfs::cpu(pid).ok_or("the bootstrap process is gone")?;
    let rie_before = rie.and_then(procfs::cpu);
    let mut round_trips = Vec::with_capacity(invocations);
    for i in 0..invocations {
        let e = event(1 + warm_up + i);
        let started = Instant::now();
        let answer = emulator.invoke(&e).await?;
        round_trips.push(started.elapsed());
        failures.check(&answer, &expected);
    }
    tokio::time::sleep(SETTLE).await;
    let after = procfs::cpu(pid).ok_or("the bootstrap process is gone")?;
    let rie_after = rie.and_then(procfs::cpu);
    // The emulator writes an invocation's REPORT line just after its answer: wait for the
    // last one briefly (bounded).
    let mut durations_ms = Vec::new();
    for _ in 0..20 {
        let text = emulator.log_text();
        durations_ms = report_durations(text.get(log_offset..).unwrap_or_default());
        if durations_ms.len() >= invocations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Measured {
        invocations,
        failures: failures.count,
        first_failure: failures.first,
        cpu: after.minus(&before),
        rie: match (rie_before, rie_after) {
            (Some(b), Some(a)) => Some(a.minus(&b)),
            _ => None,
        },
        durations_ms,
        round_trips,
    })
}

#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<String>,
}

impl Failures {
    fn check(&mut self, answer: &Value, expected: impl Fn(&Value) -> bool) {
        if !expected(answer) {
            self.count += 1;
            if self.first.is_none() {
                self.first = Some(answer.to_string().chars().take(200).collect());
            }
        }
    }
}

/// The `Duration` of every `REPORT RequestId: …\tDuration: 1.23 ms\t…` line the runtime
/// emulator wrote, in ms: one per invocation it served.
pub fn report_durations(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.starts_with("REPORT RequestId:"))
        .filter_map(|l| {
            l.split('\t')
                .find_map(|field| field.trim().strip_prefix("Duration:"))
                .and_then(|d| d.trim().trim_end_matches("ms").trim().parse().ok())
        })
        .collect()
}

fn median_f64(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}
