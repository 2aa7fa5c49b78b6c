//! Items 8's and 3's measurement: one process under the runtime emulator, its CPU and its
//! resident memory from `/proc` over many warm invocations (`invocation.rs` chooses the cases
//! and writes item 8, `rss.rs` writes item 3 from the same runs); and the emulator helper the
//! steps that invoke a function share (cold start, item 8).

use crate::procfs::{self, Cpu};
use harness::rie::Emulator;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Before each CPU reading: the runtime's work after the last answer (posting it, the next
/// long poll) settles.
const SETTLE: Duration = Duration::from_millis(50);

pub struct Case<K> {
    pub name: String,
    pub kind: K,
    pub bootstrap: PathBuf,
    pub environment: Vec<(String, String)>,
}

pub struct Measured {
    pub invocations: usize,
    pub failures: usize,
    pub first_failure: Option<String>,
    /// The function process, over the measured invocations.
    pub cpu: Cpu,
    /// The runtime emulator's own process, over the same invocations.
    pub rie: Option<Cpu>,
    /// The emulator's `REPORT` durations of the measured invocations, in ms.
    pub durations_ms: Vec<f64>,
    pub round_trips: Vec<Duration>,
    pub memory: Memory,
}

/// The function process's resident memory over the measured invocations, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    /// The measured invocations in each window (a tenth of them, at most 100).
    pub window: usize,
    /// The highest `VmRSS` after each invocation of the first window.
    pub first_window: u64,
    /// The same for the last window.
    pub last_window: u64,
    /// `VmHWM` after the last invocation: the process's peak.
    pub peak: u64,
}

impl Measured {
    /// CPU per measured invocation, in µs.
    pub fn per_invocation(&self) -> f64 {
        self.cpu.us() / self.invocations as f64
    }
}

/// Starts a runtime emulator for `bootstrap` with exactly `environment`, runs `work` on it, and
/// stops it whatever `work` returns (the function process starts on the first invocation).
pub async fn on_emulator<T>(
    bootstrap: &Path,
    environment: &[(String, String)],
    work: impl AsyncFnOnce(&Emulator) -> Result<T, String>,
) -> Result<T, String> {
    let emulator = Emulator::start(bootstrap, environment)?;
    let result = work(&emulator).await;
    emulator.stop();
    result
}

/// The case's process over `invocations` warm invocations on `emulator`, after the first
/// (cold) one and `warm_up` more.
pub async fn measure<K>(
    emulator: &Emulator,
    case: &Case<K>,
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
    let mut memory = Memory {
        window: (invocations / 10).clamp(1, 100),
        ..Memory::default()
    };
    for i in 0..invocations {
        let e = event(1 + warm_up + i);
        let started = Instant::now();
        let answer = emulator.invoke(&e).await?;
        round_trips.push(started.elapsed());
        failures.check(&answer, &expected);
        // Read by this process between invocations: the function's CPU does not include it.
        if i < memory.window {
            memory.first_window = memory
                .first_window
                .max(procfs::status_bytes(pid, "VmRSS:")?);
        }
        if i + memory.window >= invocations {
            memory.last_window = memory.last_window.max(procfs::status_bytes(pid, "VmRSS:")?);
        }
    }
    memory.peak = procfs::status_bytes(pid, "VmHWM:")?;
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
        memory,
    })
}

/// Answers that were not as expected: how many, and the first (200 characters of it).
#[derive(Default)]
pub struct Failures {
    pub count: usize,
    pub first: Option<String>,
}

impl Failures {
    pub fn check(&mut self, answer: &Value, expected: impl Fn(&Value) -> bool) {
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

pub fn median_f64(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

pub fn us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}
