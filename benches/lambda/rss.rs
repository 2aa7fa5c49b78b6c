//! Item 3: peak memory of every function over many warm invocations under the runtime
//! emulator, read from `/proc/<bootstrap pid>/status`, and whether it grows.

use crate::procfs::bootstrap_pid;
use crate::support::{
    answered_as_expected, conditions, fresh_env, functions, mib, Function, Options, Section,
    Verdict, WarmEvents,
};
use crate::warm::{on_emulator, Failures};
use harness::DynamoLocal;
use serde_json::Value;

const LIMIT: u64 = 32 * 1024 * 1024;
/// Allowed difference between the peaks of the first and the last window: allocator noise,
/// well under one invocation's worth of leaked buffers times the invocations between them.
const GROWTH_TOLERANCE: i64 = 256 * 1024;

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(3, "Peak memory");
    conditions(&mut section);
    let invocations: usize = options.pick(1000, 50);
    let window = options.pick(100, 10);

    let env = fresh_env(&[]).await;
    let events = WarmEvents::seed(&env.app.store, invocations).await?;

    let local = DynamoLocal::shared();
    let mut rows = Vec::new();
    let mut worst: Option<(u64, String)> = None;
    let mut all_flat = true;
    for function in functions(env.table(), local).await? {
        if events.nth(&function, 0).is_none() {
            return Err(format!(
                "no events for {} in the memory benchmark",
                function.logical_id
            ));
        }
        harness::dynamodb_local::progress(&format!(
            "bench: rss: {} x{invocations}",
            function.logical_id
        ));
        let m = measure(&function, invocations, window, |i| {
            events.nth(&function, i).unwrap_or_default()
        })
        .await?;
        let growth = m.last_peak as i64 - m.first_peak as i64;
        let flat = growth <= GROWTH_TOLERANCE;
        let ok = m.hwm <= LIMIT && flat && m.failures == 0;
        all_flat &= flat;
        if worst.as_ref().is_none_or(|(hwm, _)| m.hwm > *hwm) {
            worst = Some((m.hwm, function.logical_id.clone()));
        }
        rows.push(vec![
            function.logical_id.clone(),
            invocations.to_string(),
            mib(m.first_peak),
            mib(m.last_peak),
            format!("{:+} KiB", growth / 1024),
            mib(m.hwm),
            m.failures.to_string(),
            crate::support::met(Some(ok)).to_owned(),
        ]);
        section.verdicts.push(Verdict::new(
            format!("peak RSS, {}", function.logical_id),
            "≤ 32 MiB, no growth",
            format!("{} (growth {:+} KiB)", mib(m.hwm), growth / 1024),
            Some(ok),
        ));
    }
    section.paragraph(format!(
        "Each function's `bootstrap` under the runtime emulator, invoked {invocations} times in a \
         row with its `events/` file ({}). Resident set size from `/proc/<pid>/status` of the bootstrap \
         process: *first* and *last* are the highest `VmRSS` seen after each of the first and \
         the last {window} invocations; *peak* is `VmHWM` at the end. \"No growth\": last − first \
         ≤ {} KiB. Target: peak ≤ 32 MiB and no growth. Lambda's 128 MB functions report \
         \"Max Memory Used\" for the whole sandbox, a few MiB above the process's own figure.",
        WarmEvents::DESCRIPTION,
        GROWTH_TOLERANCE / 1024
    ));
    section.table(
        &[
            "function",
            "invocations",
            "RSS, first window",
            "RSS, last window",
            "growth",
            "peak (VmHWM)",
            "failed invocations",
            "target",
        ],
        &rows,
    );
    if !all_flat {
        section.paragraph(
            "A function whose last window is above its first either keeps something per \
             invocation or its allocator has not yet reached its steady state; run it longer to \
             tell the two apart.",
        );
    }
    env.drop_table().await;
    Ok(section)
}

#[derive(Default)]
struct Memory {
    first_peak: u64,
    last_peak: u64,
    hwm: u64,
    failures: usize,
}

async fn measure(
    function: &Function,
    invocations: usize,
    window: usize,
    nth_event: impl Fn(usize) -> Value,
) -> Result<Memory, String> {
    on_emulator(
        &function.bootstrap(),
        &function.environment,
        async |emulator| {
            let (mut memory, mut failures) = (Memory::default(), Failures::default());
            let mut pid = None;
            for i in 0..invocations {
                let answer = emulator.invoke(&nth_event(i)).await?;
                failures.check(&answer, |a| answered_as_expected(function, a));
                if pid.is_none() {
                    pid = bootstrap_pid(emulator.invoke_port);
                }
                let pid = pid.ok_or_else(|| {
                    format!(
                        "cannot find the bootstrap process of {}",
                        function.logical_id
                    )
                })?;
                if i < window {
                    memory.first_peak = memory.first_peak.max(status_bytes(pid, "VmRSS:")?);
                }
                if i >= invocations - window {
                    memory.last_peak = memory.last_peak.max(status_bytes(pid, "VmRSS:")?);
                }
                if i + 1 == invocations {
                    memory.hwm = status_bytes(pid, "VmHWM:")?;
                }
            }
            if let Some(first) = &failures.first {
                let id = &function.logical_id;
                harness::dynamodb_local::progress(&format!("bench: rss: {id} answered {first}"));
            }
            memory.failures = failures.count;
            Ok(memory)
        },
    )
    .await
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}
