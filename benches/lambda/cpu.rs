//! Item 4: handler CPU per request, from the criterion benches in `shared/benches/handlers.rs`
//! (run before this step by `./scripts/bench`); this step only reads their estimates.

use crate::support::{conditions, Options, Section, Verdict};
use serde_json::Value;

struct Row {
    id: &'static str,
    what: &'static str,
    /// Target in nanoseconds.
    target: f64,
    /// The `sdk_mock/*` benches that time the SDK calls this handler makes.
    sdk_calls: &'static [&'static str],
}

const ROWS: [Row; 7] = [
    Row {
        id: "routes/create",
        what: "create (Quay `create_app_token`)",
        target: 100_000.0,
        sdk_calls: &["sdk_mock/update_item", "sdk_mock/transact_write_3"],
    },
    Row {
        id: "routes/list_100",
        what: "list of 100 (Quay `list_app_tokens`)",
        target: 100_000.0,
        sdk_calls: &["sdk_mock/query_100"],
    },
    Row {
        id: "routes/list_pats_100",
        what: "list of 100 (Unleash `list_pats`)",
        target: 100_000.0,
        sdk_calls: &["sdk_mock/query_100"],
    },
    Row {
        id: "routes/get",
        what: "get (Quay `get_app_token`)",
        target: 100_000.0,
        sdk_calls: &["sdk_mock/get_item"],
    },
    Row {
        id: "routes/revoke",
        what: "revoke (Quay `revoke_app_token`)",
        target: 100_000.0,
        sdk_calls: &["sdk_mock/get_item", "sdk_mock/transact_write_3"],
    },
    Row {
        id: "authorizer/accept",
        what: "authorizer, accept a valid PAT",
        target: 20_000.0,
        sdk_calls: &["sdk_mock/get_item"],
    },
    Row {
        id: "authorizer/reject_malformed",
        what: "authorizer, reject a malformed PAT",
        target: 2_000.0,
        sdk_calls: &[],
    },
];

const SDK: [(&str, &str); 4] = [
    ("sdk_mock/get_item", "GetItem"),
    (
        "sdk_mock/update_item",
        "UpdateItem (ADD, return the new value)",
    ),
    ("sdk_mock/query_100", "Query answering 100 token items"),
    ("sdk_mock/transact_write_3", "TransactWriteItems of 3 puts"),
];

/// Criterion's median estimate for a bench, in nanoseconds.
fn median_ns(options: &Options, id: &str) -> Option<f64> {
    let path = options
        .criterion_dir
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: Value = serde_json::from_str(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn us(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{:.0} µs", ns / 1000.0)
    }
}

pub fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(4, "Handler CPU per request");
    conditions(&mut section);
    section.paragraph(format!(
        "Criterion benches (`shared/benches/handlers.rs`{}) of the handlers the functions run, \
         over an aws-sdk-dynamodb client whose answers come from `aws-smithy-mocks` in-process: \
         no network, no database. Requests are built from `events/*.json` outside the timing; \
         log lines are formatted as in production (JSON, `info`) and written to a sink. The \
         mocked client still builds, serializes and signs each request and runs the SDK's \
         orchestrator, so the SDK's client side is in every figure; the `sdk_mock/*` benches \
         time those calls alone, and *ours* subtracts them (medians measured separately, so an \
         estimate). What the mock leaves out is parsing DynamoDB's JSON answer, which the \
         deployed function also pays. Figures are criterion's median time per iteration.",
        if options.short {
            ", quick mode: 0.2 s warm-up, 0.5 s of samples"
        } else {
            ", 3 s warm-up, 5 s of samples"
        }
    ));
    let mut rows = Vec::new();
    for row in &ROWS {
        let Some(total) = median_ns(options, row.id) else {
            rows.push(vec![
                row.what.to_owned(),
                "not run".into(),
                "—".into(),
                "—".into(),
                us(row.target),
                "—".into(),
            ]);
            section.verdicts.push(Verdict::new(
                row.what,
                format!("≤ {}", us(row.target)),
                "not run",
                None,
            ));
            continue;
        };
        let sdk: Option<f64> = if row.sdk_calls.is_empty() {
            None
        } else {
            row.sdk_calls.iter().map(|id| median_ns(options, id)).sum()
        };
        let ours = sdk.map(|s| (total - s).max(0.0));
        let ok_ours = ours.map(|o| o <= row.target);
        let ok_total = total <= row.target;
        rows.push(vec![
            row.what.to_owned(),
            us(total),
            sdk.map(us).unwrap_or_else(|| "—".into()),
            ours.map(us).unwrap_or_else(|| us(total)),
            us(row.target),
            format!(
                "ours: {}; total: {}",
                crate::support::met(ok_ours.or(Some(ok_total))),
                crate::support::met(Some(ok_total))
            ),
        ]);
        section.verdicts.push(Verdict::new(
            row.what,
            format!("≤ {}", us(row.target)),
            format!(
                "{} total, {} ours",
                us(total),
                ours.map(us).unwrap_or_else(|| us(total))
            ),
            // The issue times "only our code": the SDK's client side is reported, not judged.
            Some(ok_ours.unwrap_or(ok_total)),
        ));
    }
    section.table(
        &[
            "handler",
            "total",
            "SDK calls (mocked)",
            "ours (total − SDK)",
            "target",
            "met",
        ],
        &rows,
    );
    let mut sdk_rows = Vec::new();
    for (id, what) in SDK {
        sdk_rows.push(vec![
            format!("`{id}`"),
            what.to_owned(),
            median_ns(options, id)
                .map(us)
                .unwrap_or_else(|| "not run".into()),
        ]);
    }
    if let (Some(decide), Some(unlogged), Some(whole)) = (
        median_ns(options, "authorizer/decide_malformed_unlogged"),
        median_ns(options, "authorizer/reject_malformed_unlogged"),
        median_ns(options, "authorizer/reject_malformed"),
    ) {
        section.paragraph(format!(
            "Where a malformed token's reject goes: the decision alone (`Authorizer::decide`: \
             prefix, alphabet, CRC32; `authorizer/decide_malformed_unlogged`) takes {}; the \
             whole handler with logging switched off (`authorizer/reject_malformed_unlogged`: \
             the decision, the response, dropping the request) {}; its one JSON log line \
             (tracing-subscriber's formatter: timestamp, level, six fields) the other {}. \
             Every decision is logged on purpose, so a spray of forged tokens shows in the logs.",
            us(decide),
            us(unlogged),
            us((whole - unlogged).max(0.0))
        ));
    }
    section.paragraph("The SDK's share, through the same mocked client:");
    section.table(&["bench", "call", "median"], &sdk_rows);
    Ok(section)
}
