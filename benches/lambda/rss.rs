//! Item 3: peak memory of every function over many warm invocations, and whether it grows. The
//! figures come from item 8's runs (`warm.rs` reads `/proc/<bootstrap pid>/status` between the
//! invocations whose CPU it measures): one pass of warm invocations serves both items, so this
//! step runs after `invocation` and reads what it saved.

use crate::support::{conditions, load_data, met, mib, Options, Section, Verdict, WarmEvents};
use serde_json::Value;

const LIMIT: u64 = 32 * 1024 * 1024;
/// Allowed difference between the peaks of the first and the last window: allocator noise,
/// well under one invocation's worth of leaked buffers times the invocations between them.
const GROWTH_TOLERANCE: i64 = 256 * 1024;

pub fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(3, "Peak memory");
    conditions(&mut section);
    let data = load_data(&options.out_dir, 8)
        .ok_or("item 3 reads item 8's runs: run the `invocation` step before `rss`")?;
    let runs = data["memory"]
        .as_array()
        .ok_or("item 8 saved no memory figures")?;
    let bytes = |run: &Value, key: &str| run[key].as_u64().unwrap_or(0);
    let mut rows = Vec::new();
    let mut all_flat = true;
    let mut window = 0;
    for run in runs {
        let function = run["function"].as_str().unwrap_or("?").to_owned();
        if let Some(error) = run["error"].as_str() {
            let mut row = vec![function.clone(), error.to_owned()];
            row.extend(std::iter::repeat_n("—".to_owned(), 6));
            rows.push(row);
            section.verdicts.push(Verdict::new(
                format!("peak RSS, {function}"),
                "≤ 32 MiB, no growth",
                "not measured",
                None,
            ));
            continue;
        }
        window = run["window"].as_u64().unwrap_or(0);
        let (first, last, peak) = (
            bytes(run, "first_window"),
            bytes(run, "last_window"),
            bytes(run, "peak"),
        );
        let failures = bytes(run, "failures");
        let growth = last as i64 - first as i64;
        let flat = growth <= GROWTH_TOLERANCE;
        let ok = peak <= LIMIT && flat && failures == 0;
        all_flat &= flat;
        rows.push(vec![
            function.clone(),
            bytes(run, "invocations").to_string(),
            mib(first),
            mib(last),
            format!("{:+} KiB", growth / 1024),
            mib(peak),
            failures.to_string(),
            met(Some(ok)).to_owned(),
        ]);
        section.verdicts.push(Verdict::new(
            format!("peak RSS, {function}"),
            "≤ 32 MiB, no growth",
            format!("{} (growth {:+} KiB)", mib(peak), growth / 1024),
            Some(ok),
        ));
    }
    section.paragraph(format!(
        "Measured in item 8's runs: each function's `bootstrap` under the runtime emulator, \
         after its cold invocation and the warm-up, invoked the number of times shown in a row \
         with its events ({}). Resident set size from `/proc/<pid>/status` of the bootstrap \
         process, read between invocations: *first* and *last* are the highest `VmRSS` seen \
         after each of the first and the last {window} measured invocations; *peak* is \
         `VmHWM` after the last. \"No growth\": last − first ≤ {} KiB. Target: peak ≤ 32 MiB \
         and no growth. Lambda's 128 MB functions report \"Max Memory Used\" for the whole \
         sandbox, a few MiB above the process's own figure.",
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
    Ok(section)
}
