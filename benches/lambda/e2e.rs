//! Item 9: a PAT-authenticated `GET /api/admin/user/tokens` end to end through the local server
//! (`./scripts/run`), one request at a time: Lambda invocations per request, counted from the
//! `REPORT` line the runtime emulator writes for every invocation it serves, and the CPU per
//! request of the function processes, from `/proc` of every `bootstrap` the server runs. The
//! routes decide the count: two with the authorizer in front of the route, one without.

use crate::load::{pat, Connection, Target, PATH, REQUEST_TIMEOUT};
use crate::procfs::{self, Cpu};
use crate::support::{conditions, percentile, Options, Section, Verdict};
use crate::warm::{median_f64, report_durations};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_millis(100);

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(9, "End to end through the local server");
    conditions(&mut section);
    let what = "invocations per request, PAT-authenticated GET /api/admin/user/tokens";
    let Some(base_url) = &options.base_url else {
        section.paragraph(
            "Not run: no local server was given (`./scripts/bench` starts `./scripts/run` and \
             passes its URL and a session to create the PAT with).",
        );
        section
            .verdicts
            .push(Verdict::new(what, "1", "not run", None));
        return Ok(section);
    };
    let target = Target::parse(base_url)?;
    let server = procfs::listening_pid(target.port).ok_or_else(|| {
        format!(
            "e2e: no process of this machine listens on port {}",
            target.port
        )
    })?;
    let request = target.request(&pat(options, &target, "e2e").await?, None)?;
    let requests = options.pick(1000, 20);
    let warm_up = options.pick(20, 5);

    let mut connection = Connection::new(&target, REQUEST_TIMEOUT);
    // Warm-up: the emulators a single client uses have started (their cold starts are the
    // cold step's), and the PAT's `last used` is written for this throttle window.
    for _ in 0..warm_up {
        let answer = connection
            .send(request.clone())
            .await
            .map_err(|e| format!("e2e: {e}"))?;
        if answer.status != 200 {
            return Err(format!(
                "e2e: the list answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
    }
    tokio::time::sleep(SETTLE).await;
    let before = Snapshot::take(server);
    let mut latencies_us = Vec::with_capacity(requests);
    let mut not_ok = 0;
    let started = Instant::now();
    for _ in 0..requests {
        let sent = Instant::now();
        let answer = connection
            .send(request.clone())
            .await
            .map_err(|e| format!("e2e: {e}"))?;
        latencies_us.push(sent.elapsed().as_micros() as u64);
        if answer.status != 200 {
            not_ok += 1;
        }
    }
    let elapsed = started.elapsed();
    // Every REPORT line written (an emulator writes it just after its answer), bounded.
    let mut after = Snapshot::take(server);
    for _ in 0..20 {
        tokio::time::sleep(SETTLE / 4).await;
        let again = Snapshot::take(server);
        let settled = again.reports() == after.reports();
        after = again;
        if settled {
            break;
        }
    }
    latencies_us.sort_unstable();

    let n = requests as f64;
    let mut by_function: BTreeMap<String, Usage> = BTreeMap::new();
    for emulator in after.emulators.values() {
        let earlier = before.emulators.get(&emulator.pid);
        let usage = by_function.entry(emulator.function.clone()).or_default();
        let done = earlier.map(|e| e.durations.len()).unwrap_or(0);
        usage.invocations += emulator.durations.len().saturating_sub(done);
        usage
            .durations_ms
            .extend(emulator.durations.iter().skip(done).copied());
        usage.emulator_cpu = usage.emulator_cpu.plus(
            &emulator
                .cpu
                .minus(&earlier.map(|e| e.cpu).unwrap_or_default()),
        );
    }
    let mut started_during = Vec::new();
    for (pid, (function, cpu)) in &after.bootstraps {
        let usage = by_function.entry(function.clone()).or_default();
        let earlier = before.bootstraps.get(pid).map(|(_, c)| *c);
        if earlier.is_none() {
            started_during.push(function.clone());
        }
        usage.cpu = usage.cpu.plus(&cpu.minus(&earlier.unwrap_or_default()));
    }
    by_function.retain(|_, u| u.invocations > 0 || u.cpu.us() > 0.0);
    let invocations: usize = by_function.values().map(|u| u.invocations).sum();
    let per_request = invocations as f64 / n;
    let function_cpu: f64 = by_function.values().map(|u| u.cpu.us()).sum::<f64>() / n;
    let emulator_cpu: f64 = by_function
        .values()
        .map(|u| u.emulator_cpu.us())
        .sum::<f64>()
        / n;
    let delta = |a: Option<Cpu>, b: Option<Cpu>| match (a, b) {
        (Some(a), Some(b)) => Some(a.minus(&b).us() / n),
        _ => None,
    };
    let server_cpu = delta(after.server, before.server);
    let dynamodb_cpu = delta(after.dynamodb, before.dynamodb);
    let breakdown = by_function
        .iter()
        .map(|(f, u)| format!("{f} {:.2}", u.invocations as f64 / n))
        .collect::<Vec<_>>()
        .join(", ");

    section.paragraph(format!(
        "`GET {PATH}` with `Authorization: Bearer <PAT>` through `./scripts/run --in-memory` \
         (the routes and authorizer of template.yaml, each function's `bootstrap` under the \
         runtime emulator, DynamoDB Local in memory; the user holds one token), {requests} \
         requests one after another on one keep-alive connection after {warm_up} warm-up \
         requests. *Invocations*: the `REPORT` lines the server's runtime emulators wrote \
         meanwhile (one per invocation served), per request. *CPU*: time on CPU from `/proc` \
         (all threads) of every `bootstrap` process the server runs, before and after, per \
         request; the emulators (Lambda's service side here), the server (API Gateway's part) \
         and DynamoDB Local are shown apart. *Duration*: the emulators' `REPORT` durations, what \
         Lambda bills per invocation."
    ));
    let us = |v: f64| format!("{v:.0} µs");
    let mut rows: Vec<Vec<String>> = by_function
        .iter()
        .map(|(function, u)| {
            vec![
                format!("`{function}`"),
                format!("{:.2}", u.invocations as f64 / n),
                us(u.cpu.us() / n),
                us(u.emulator_cpu.us() / n),
                median_f64(&mut u.durations_ms.clone())
                    .map(|d| format!("{d:.2} ms"))
                    .unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    rows.push(vec![
        "**all functions**".into(),
        format!("**{per_request:.2}**"),
        format!("**{}**", us(function_cpu)),
        us(emulator_cpu),
        "—".into(),
    ]);
    section.table(
        &[
            "function",
            "invocations per request",
            "CPU per request",
            "emulator's CPU per request",
            "duration (REPORT, median)",
        ],
        &rows,
    );
    let ms = |micros: u64| format!("{:.1} ms", micros as f64 / 1000.0);
    section.table(
        &[
            "requests",
            "non-200",
            "requests/s",
            "p50",
            "p99",
            "local server's CPU per request",
            "DynamoDB Local's CPU per request",
        ],
        &[vec![
            requests.to_string(),
            not_ok.to_string(),
            format!("{:.0}", n / elapsed.as_secs_f64()),
            ms(percentile(&latencies_us, 50.0)),
            ms(percentile(&latencies_us, 99.0)),
            server_cpu.map(us).unwrap_or_else(|| "—".into()),
            dynamodb_cpu.map(us).unwrap_or_else(|| "—".into()),
        ]],
    );
    if !started_during.is_empty() {
        section.paragraph(format!(
            "Started during the measurement (a cold start counted in): {}.",
            started_during.join(", ")
        ));
    }
    section.verdicts.push(Verdict::new(
        what,
        "1",
        format!("{per_request:.2} ({breakdown})"),
        Some((per_request - 1.0).abs() < 0.005 && not_ok == 0),
    ));
    section.verdicts.push(Verdict::new(
        "CPU per request of the function processes, the same list",
        "reported (no target)",
        format!(
            "{} ({})",
            us(function_cpu),
            by_function
                .iter()
                .map(|(f, u)| format!("{f} {}", us(u.cpu.us() / n)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None,
    ));
    section.data = Some(json!({
        "requests": requests,
        "invocations_per_request": per_request,
        "cpu_us_per_request": function_cpu,
        "by_function": by_function.iter().map(|(f, u)| (f.clone(), json!({
            "invocations_per_request": u.invocations as f64 / n,
            "cpu_us_per_request": u.cpu.us() / n,
        }))).collect::<serde_json::Map<_, _>>(),
    }));
    if not_ok == requests {
        return Err(format!("e2e: none of {requests} requests answered 200"));
    }
    Ok(section)
}

#[derive(Default)]
struct Usage {
    invocations: usize,
    durations_ms: Vec<f64>,
    cpu: Cpu,
    emulator_cpu: Cpu,
}

struct Emulator {
    pid: u32,
    /// The folder of the bootstrap it runs: the binary's name in the local server's layout.
    function: String,
    durations: Vec<f64>,
    cpu: Cpu,
}

/// What the server's processes have done so far.
struct Snapshot {
    emulators: HashMap<u32, Emulator>,
    /// The function processes, by pid: their function and CPU.
    bootstraps: HashMap<u32, (String, Cpu)>,
    server: Option<Cpu>,
    dynamodb: Option<Cpu>,
}

impl Snapshot {
    fn take(server: u32) -> Snapshot {
        let processes = procfs::descendants(server);
        let log = |pid: u32| -> Vec<f64> {
            procfs::stdout_path(pid)
                .and_then(|path| std::fs::read_to_string(path).ok())
                .map(|text| report_durations(&text))
                .unwrap_or_default()
        };
        let emulators: HashMap<u32, Emulator> = processes
            .iter()
            .filter(|p| p.is("aws-lambda-rie"))
            .filter_map(|p| {
                Some((
                    p.pid,
                    Emulator {
                        pid: p.pid,
                        function: p.emulated_function()?,
                        durations: log(p.pid),
                        cpu: procfs::cpu(p.pid)?,
                    },
                ))
            })
            .collect();
        let bootstraps = processes
            .iter()
            .filter(|p| p.is("bootstrap"))
            .filter_map(|p| {
                let function = emulators.get(&p.ppid)?.function.clone();
                Some((p.pid, (function, procfs::cpu(p.pid)?)))
            })
            .collect();
        let dynamodb = processes
            .iter()
            .filter(|p| p.is("java"))
            .filter_map(|p| procfs::cpu(p.pid))
            .reduce(|a, b| a.plus(&b));
        Snapshot {
            emulators,
            bootstraps,
            server: procfs::cpu(server),
            dynamodb,
        }
    }

    fn reports(&self) -> usize {
        self.emulators.values().map(|e| e.durations.len()).sum()
    }
}
