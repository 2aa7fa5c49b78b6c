//! Item 8: CPU per warm invocation of the whole function process, for every function with an
//! event and for baselines built with the same profile in the same run (a minimal `lambda_http`
//! function, and the minimal DynamoDB function making one GetItem, two GetItems, or a GetItem
//! and a Query: the calls the routes make): each under the runtime emulator against DynamoDB
//! Local, its `bootstrap` process's CPU time read from `/proc` before and after many warm
//! invocations (`warm.rs`). Cold starts are the cold step's (item 2); the same runs' memory is
//! item 3's (`rss.rs`).

use crate::support::{
    answered_as_expected, conditions, fresh_env, functions, ms, Function, Options, Section,
    Verdict, WarmEvents,
};
use crate::warm::{measure, median_f64, on_emulator, us, Case, Measured};
use harness::DynamoLocal;
use serde_json::{json, Value};

/// The target: each function's warm CPU per invocation at most this times the minimal
/// GetItem function's; restated here against the minimal function making the same DynamoDB
/// calls as the function (see `SAME_CALLS`).
pub const TARGET_RATIO: f64 = 1.15;
pub const MINIMAL_HTTP: &str = "minimal-http";
pub const MINIMAL_GETITEM: &str = "minimal-getitem";

/// The baselines: a name, the `minimal-getitem` binary's `BASELINE_CALLS` (none: the
/// `minimal-http` binary), what it does.
/// The last: the SDK's stalled-stream protection off, to show what it costs.
const BASELINES: [(&str, Option<&str>, &str); 5] = [
    (MINIMAL_HTTP, None, "lambda_http, a fixed 200"),
    (
        MINIMAL_GETITEM,
        Some("get"),
        "one GetItem, then a fixed 200",
    ),
    ("minimal-getitem-2", Some("get,get"), "GetItem + GetItem"),
    (
        "minimal-getitem-query",
        Some("get,query"),
        "GetItem + Query",
    ),
    (
        NO_STALL,
        Some("get,get"),
        "GetItem + GetItem, stalled-stream protection off",
    ),
];
const NO_STALL: &str = "minimal-getitem-2-no-stall";

/// The baseline making the same DynamoDB calls as a function's warm event (the caller's PAT
/// lookup, a GetItem, then the route's own call; `last used` is inside its throttle window):
/// by binary name.
const SAME_CALLS: [(&str, &str); 4] = [
    ("authorizer", MINIMAL_GETITEM),
    ("get-app-token", "minimal-getitem-2"),
    ("list-pats", "minimal-getitem-query"),
    ("list-app-tokens", "minimal-getitem-query"),
];

enum Kind {
    Function(Function),
    Baseline(&'static str),
}

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(8, "Warm invocation CPU");
    conditions(&mut section);
    // `BENCH_WARM_INVOCATIONS` overrides the mode's count (comparisons of builds, by hand).
    let invocations = std::env::var("BENCH_WARM_INVOCATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| options.pick(1000, 5));
    let warm_up = options.pick(20, 2);

    let env = fresh_env(&[]).await;
    // The first invocation (cold) and the warm-up ones consume seeded tokens too.
    let events = WarmEvents::seed(&env.app.store, 1 + warm_up + invocations).await?;
    let local = DynamoLocal::shared();

    let mut cases = Vec::new();
    for (name, calls, _) in BASELINES {
        let mut environment = local.environment();
        let binary = if let Some(calls) = calls {
            // The item get-app-token's event reads, and its user's tokens.
            let user = events.get_user().to_owned();
            let uuid = events.get_event()["pathParameters"]["token_uuid"]
                .as_str()
                .and_then(|u| uuid::Uuid::parse_str(u).ok())
                .ok_or("the get event names no token_uuid")?;
            environment.extend([
                ("TABLE_NAME".to_owned(), env.table().to_owned()),
                ("BASELINE_CALLS".to_owned(), calls.to_owned()),
                (
                    "GET_ITEM_PK".to_owned(),
                    shared::store::items::user_pk(&user),
                ),
                (
                    "GET_ITEM_SK".to_owned(),
                    shared::store::items::token_sk(&uuid),
                ),
                (
                    "QUERY_SK_PREFIX".to_owned(),
                    shared::store::items::TOKEN_SK_PREFIX.to_owned(),
                ),
            ]);
            if name == NO_STALL {
                environment.push(("BASELINE_STALLED_STREAM".to_owned(), "off".to_owned()));
            }
            MINIMAL_GETITEM
        } else {
            name
        };
        cases.push(Case {
            name: name.to_owned(),
            kind: Kind::Baseline(name),
            bootstrap: options.baselines_dir.join(binary).join("bootstrap"),
            environment,
        });
    }
    for function in functions(env.table(), local).await? {
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

    let mut results: Vec<(Case<Kind>, Result<Measured, String>)> = Vec::new();
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
            on_emulator(&case.bootstrap, &case.environment, async |emulator| {
                measure(emulator, &case, warm_up, invocations, event, expected).await
            })
            .await
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
                m.per_invocation()
            ));
        }
        results.push((case, measured));
    }
    env.drop_table().await;

    let per_invocation = |name: &str| -> Option<f64> {
        results.iter().find_map(|(case, m)| match m {
            Ok(m) if case.name == name && m.failures == 0 => Some(m.per_invocation()),
            _ => None,
        })
    };
    let getitem = per_invocation(MINIMAL_GETITEM);
    let http = per_invocation(MINIMAL_HTTP);

    let mut rows = Vec::new();
    let mut data_functions = serde_json::Map::new();
    let mut data_baselines = serde_json::Map::new();
    // Item 3's figures (rss.rs), in the template's order.
    let mut data_memory = Vec::new();
    for (case, measured) in &results {
        // The baseline with the same DynamoDB calls, and its figure.
        let same = match &case.kind {
            Kind::Function(f) => SAME_CALLS
                .iter()
                .find(|(binary, _)| *binary == f.binary)
                .map(|(_, baseline)| (*baseline, per_invocation(baseline))),
            Kind::Baseline(_) => None,
        };
        let label = match &case.kind {
            Kind::Baseline(name) => {
                let what = BASELINES.iter().find(|b| b.0 == *name).map(|b| b.2);
                format!("baseline `{name}` ({})", what.unwrap_or_default())
            }
            Kind::Function(_) => case.name.clone(),
        };
        let m = match measured {
            Ok(m) => m,
            Err(e) => {
                if let Kind::Function(_) = case.kind {
                    data_memory.push(json!({"function": case.name, "error": e}));
                }
                let mut row = vec![label, "—".into(), "—".into(), e.clone()];
                row.extend(std::iter::repeat_n("—".to_owned(), 7));
                rows.push(row);
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
        let cpu_us = m.per_invocation();
        let mut durations = m.durations_ms.clone();
        let duration = median_f64(&mut durations);
        let mut trips = m.round_trips.clone();
        let round_trip = crate::support::median(&mut trips);
        let ratio = getitem.map(|g| cpu_us / g);
        let same_ratio = same.and_then(|(_, b)| b).map(|b| cpu_us / b);
        // The restated target where a baseline makes the same calls, else the words.
        let (target_ratio, target_name, target_us) = match same {
            Some((name, b)) => (same_ratio, name, b),
            None => (ratio, MINIMAL_GETITEM, getitem),
        };
        let ok = match (&case.kind, target_ratio) {
            (Kind::Function(_), Some(r)) if m.failures == 0 => Some(r <= TARGET_RATIO),
            _ => None,
        };
        let times = |r: Option<f64>| r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".into());
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
            times(ratio),
            match same {
                Some((name, _)) => format!("{} (`{name}`)", times(same_ratio)),
                None => "—".into(),
            },
            match case.kind {
                Kind::Function(_) => crate::support::met(ok).to_owned(),
                Kind::Baseline(_) => "(baseline)".into(),
            },
        ]);
        let mut figures = json!({
            "invocations": m.invocations,
            "failures": m.failures,
            "cpu_us": cpu_us,
            "stat_cpu_us": m.cpu.stat_us / n,
            "duration_ms": duration,
            "round_trip_ms": round_trip.as_secs_f64() * 1000.0,
        });
        match &case.kind {
            Kind::Function(f) => {
                figures["binary"] = f.binary.clone().into();
                if let Some((name, _)) = same {
                    figures["same_calls_baseline"] = name.into();
                }
                data_functions.insert(case.name.clone(), figures);
                data_memory.push(json!({
                    "function": case.name,
                    "invocations": m.invocations,
                    "failures": m.failures,
                    "window": m.memory.window,
                    "first_window": m.memory.first_window,
                    "last_window": m.memory.last_window,
                    "peak": m.memory.peak,
                }));
                let measured_text = match (target_ratio, m.failures) {
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
                        "≤ {TARGET_RATIO}× `{target_name}`{}",
                        target_us
                            .map(|g| format!(" ({})", us(g)))
                            .unwrap_or_default()
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
        "Each function's `bootstrap` (as for the other steps) and the baselines under the runtime \
         interface emulator against DynamoDB Local, with the template's environment: \
         `{MINIMAL_HTTP}`, a `lambda_http` function answering a fixed 200 JSON, and \
         `{MINIMAL_GETITEM}`, one making strongly consistent aws-sdk-dynamodb calls with the \
         SDK's defaults, then a fixed 200: one GetItem (of the token get-app-token's event \
         reads), as `minimal-getitem-2` two, as `minimal-getitem-query` a GetItem and a Query \
         of that user's 21 tokens, as `{NO_STALL}` two GetItems with the SDK's stalled-stream \
         protection off (`benches/baselines/`: the workspace's crates and features, \
         no logging; built by `./scripts/bench` in the same run and with the same profile as \
         the functions{}). Each process is started by a first (cold) invocation, then {warm_up} \
         warm-up invocations, then {invocations} warm invocations are measured, one at a time, \
         with the events ({}). *CPU per invocation*: the bootstrap process's time on CPU over \
         the measured invocations (all its threads: the sum of `/proc/<pid>/task/*/schedstat`, \
         nanoseconds; *utime + stime* is the same from `/proc/<pid>/stat`, in 10 ms ticks, so \
         coarse over few invocations), divided by their number: handler, runtime, SDK, JSON, \
         logging, syscalls, all of it. The emulator's own process (it stands in for Lambda's \
         service side) is shown apart and counted nowhere else. *Duration*: the emulator's \
         `REPORT` line, what Lambda bills (the handler's time until the answer); *round trip*: \
         the POST to the emulator until its answer, seen from here. Target: the issue words it \
         as each function ≤ {TARGET_RATIO}× the minimal GetItem function; a route now makes \
         the caller's GetItem and then its own call, so where a baseline makes the same calls \
         (authorizer: a GetItem; get-app-token: two; the lists: a GetItem and a Query) the \
         target is ≤ {TARGET_RATIO}× that baseline, else the issue's wording (create, revoke \
         and delete make two or three calls, one a transaction; cleanup a Query per day \
         bucket).",
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
            "÷ same calls",
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
        "memory": data_memory,
    }));
    Ok(section)
}
