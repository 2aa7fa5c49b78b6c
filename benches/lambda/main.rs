//! The benchmarks that need real processes and DynamoDB Local (items 1-3 and 5-10 of
//! docs/benchmarks.md), and the report that gathers them with the criterion figures (item 4).
//! `./scripts/bench` builds and runs this; by hand:
//!
//! ```text
//! cargo bench --bench lambda -- [--short] [--out DIR] [--report FILE] [--criterion DIR]
//!     [--build-note TEXT] [--base-url URL (--pat SECRET | --jwt TOKEN)]
//!     [--cleanup-sizes N,N,...] [--baselines DIR] STEP...
//! ```
//!
//! Steps: `sizes`, `cold`, `cpu` (reads criterion's output), `requests`, `cleanup`,
//! `invocation`, `rss` (reads the invocations' memory figures), `e2e` and `load` (these two
//! through the local server at `--base-url`), `cost`
//! (reads what `requests` and `invocation` saved), `report`. Each writes `DIR/<item>.md` and
//! `DIR/<item>.json` (its verdicts), some `DIR/<item>.data.json` (figures for later steps);
//! `report` joins them into FILE with a description of the machine.

mod cleanup;
mod cold;
mod cost;
mod cpu;
mod e2e;
mod invocation;
mod load;
mod operations;
mod procfs;
mod report;
mod requests;
mod rss;
mod sizes;
mod support;
mod units;
mod warm;
mod warm_events;

use harness::dynamodb_local::progress;
use report::Section;
use std::time::Instant;
use support::Options;

fn main() {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n\n{}", Options::USAGE);
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut failed = Vec::new();
    for step in &options.steps {
        let started = Instant::now();
        progress(&format!("bench: {step} ..."));
        let result: Result<Option<Section>, String> = runtime.block_on(async {
            match step.as_str() {
                "sizes" => sizes::run(&options).map(Some),
                "cold" => cold::run(&options).await.map(Some),
                "rss" => rss::run(&options).map(Some),
                "cpu" => cpu::run(&options).map(Some),
                "requests" => requests::run(&options).await.map(Some),
                "cleanup" => cleanup::run(&options).await.map(Some),
                "invocation" => invocation::run(&options).await.map(Some),
                "e2e" => e2e::run(&options).await.map(Some),
                "load" => load::run(&options).await.map(Some),
                "cost" => cost::run(&options).map(Some),
                "report" => support::write_report(&options).map(|()| None),
                other => Err(format!("unknown step {other:?}")),
            }
        });
        match result {
            Ok(Some(section)) => {
                section.save(&options.out_dir);
                progress(&format!(
                    "bench: {step} done in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
            }
            Ok(None) => progress(&format!("bench: {step} done")),
            Err(message) => {
                progress(&format!("bench: {step} FAILED: {message}"));
                failed.push(step.clone());
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("bench: failed steps: {}", failed.join(", "));
        std::process::exit(1);
    }
}
