//! Item 10: what each route costs on AWS per million requests, from this run's figures: the
//! Lambda invocations a request makes (template.yaml: the route's function, and the
//! authorizer when the route has one), their billed duration (the warm durations of item 8),
//! and the DynamoDB request units of item 5, at the list prices below.

use crate::support::{conditions, load_data, Options, Section, Verdict};
use harness::template::Template;

/// us-east-1 list prices, checked on 2026-12-03 against copies of AWS's pricing pages (API
/// Gateway, Lambda, DynamoDB on-demand) and summaries of them; no free tier.
pub const PRICES_CHECKED: &str = "2026-12-03";
/// HTTP API, per million requests (the first 300 million a month).
pub const HTTP_API_PER_MILLION: f64 = 1.00;
/// Lambda, per million requests.
pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
/// Lambda, per ms at 128 MB on arm64 ($0.0000133334 per GB-s).
pub const LAMBDA_128MB_ARM_PER_MS: f64 = 0.000_000_001_7;
/// DynamoDB on-demand, per million read request units.
pub const RRU_PER_MILLION: f64 = 0.125;
/// DynamoDB on-demand, per million write request units.
pub const WRU_PER_MILLION: f64 = 0.625;
/// The memory at which Lambda gives a function one whole vCPU; at 128 MB it gets 128/1769 of
/// one.
const MB_PER_VCPU: f64 = 1769.0;
const MEMORY_MB: f64 = 128.0;

/// The bundle's routes and the operation of item 5 whose requests each one sends (a list: of
/// a user with 10 tokens; Unleash's list is the same Query as Quay's).
const ROUTE_OPERATIONS: [(&str, &str, &str); 7] = [
    ("POST", "/api/v1/user/apptoken", "create (Quay)"),
    ("GET", "/api/v1/user/apptoken", "list of 10 "),
    ("GET", "/api/v1/user/apptoken/{token_uuid}", "get"),
    (
        "DELETE",
        "/api/v1/user/apptoken/{token_uuid}",
        "revoke (Quay)",
    ),
    ("POST", "/api/admin/user/tokens", "create (Unleash"),
    ("GET", "/api/admin/user/tokens", "list of 10 "),
    ("DELETE", "/api/admin/user/tokens/{id}", "revoke (Unleash"),
];
/// What authenticating a request sends: a PAT's lookup (its `last used` written at most once a
/// throttle window, which a steady caller rarely pays).
const AUTHENTICATION: &str = "authorize, again within the window";
const DEFAULT_PATH: &str = "/$default";

#[derive(Default, Clone, Copy)]
struct Units {
    read: f64,
    write: f64,
}

impl Units {
    fn plus(self, other: Units) -> Units {
        Units {
            read: self.read + other.read,
            write: self.write + other.write,
        }
    }
}

pub fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(10, "Cost per million requests");
    conditions(&mut section);
    let requests = load_data(&options.out_dir, 5);
    let invocations = load_data(&options.out_dir, 8);
    let end_to_end = load_data(&options.out_dir, 9);
    let operation = |prefix: &str| -> Option<Units> {
        let operations = requests.as_ref()?["operations"].as_object()?;
        let (_, figures) = operations
            .iter()
            .find(|(name, _)| name.starts_with(prefix))?;
        Some(Units {
            read: figures["rru"].as_f64()?,
            write: figures["wru"].as_f64()?,
        })
    };
    let warm = |logical_id: &str, field: &str| -> Option<f64> {
        invocations.as_ref()?["functions"][logical_id][field].as_f64()
    };

    let template = Template::load();
    let mut rows = Vec::new();
    let mut bundle_routes = 0;
    let mut bundle_with_two = Vec::new();
    let mut missing = Vec::new();
    let mut list_total = None;
    for route in template.http_routes() {
        let known = ROUTE_OPERATIONS
            .iter()
            .find(|(m, p, _)| *m == route.method && *p == route.path);
        let is_default = route.path == DEFAULT_PATH;
        let authorizer = match (&route.api, &route.authorizer) {
            (Some(api), Some(name)) => Some(template.http_api_authorizer(api, name)?.function),
            _ => None,
        };
        let mut invoked = vec![route.function.clone()];
        invoked.extend(authorizer.clone());
        // The bundle's own: its token routes, `$default`, anything else under /api/.
        if known.is_some() || is_default || route.path.starts_with("/api/") {
            bundle_routes += 1;
            if invoked.len() > 1 {
                bundle_with_two.push(label(&route.method, &route.path));
            }
        }
        // Lambda: every invocation billed its warm duration, rounded up to the millisecond.
        let durations: Option<Vec<f64>> = invoked
            .iter()
            .map(|f| warm(f, "duration_ms").map(|d| d.ceil().max(1.0)))
            .collect();
        let billed_ms: Option<f64> = durations.as_ref().map(|d| d.iter().sum());
        let cpu_bound_ms: Option<f64> = invoked
            .iter()
            .map(|f| {
                warm(f, "cpu_us").map(|us| (us / 1000.0 * MB_PER_VCPU / MEMORY_MB).ceil().max(1.0))
            })
            .sum();
        // DynamoDB: the route's own requests, and its authentication (by the authorizer, or in
        // the route's function) unless the route is public.
        let authenticated = authorizer.is_some() || known.is_some();
        let own = match known {
            Some((_, _, prefix)) => operation(prefix),
            None => Some(Units::default()),
        };
        let units = match (own, authenticated) {
            (Some(own), true) => operation(AUTHENTICATION).map(|auth| own.plus(auth)),
            (own, false) => own,
            (None, true) => None,
        };
        if billed_ms.is_none() || units.is_none() {
            missing.push(label(&route.method, &route.path));
        }
        let api = HTTP_API_PER_MILLION;
        let lambda_requests = invoked.len() as f64 * LAMBDA_REQUESTS_PER_MILLION;
        let duration = billed_ms.map(|ms| ms * LAMBDA_128MB_ARM_PER_MS * 1e6);
        let duration_cpu_bound = cpu_bound_ms.map(|ms| ms * LAMBDA_128MB_ARM_PER_MS * 1e6);
        let dynamodb = units.map(|u| u.read * RRU_PER_MILLION + u.write * WRU_PER_MILLION);
        let total = match (duration, dynamodb) {
            (Some(d), Some(db)) => Some(api + lambda_requests + d + db),
            _ => None,
        };
        let total_cpu_bound = match (duration_cpu_bound, dynamodb) {
            (Some(d), Some(db)) => Some(api + lambda_requests + d + db),
            _ => None,
        };
        if route.method == "GET" && route.path == crate::load::PATH {
            list_total = total;
        }
        let functions = invoked
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(" + ");
        rows.push(vec![
            label(&route.method, &route.path),
            functions,
            invoked.len().to_string(),
            billed_ms.map(|ms| format!("{ms:.0}")).unwrap_or_else(dash),
            units
                .map(|u| format!("{} / {}", u.read, u.write))
                .unwrap_or_else(dash),
            dollars(Some(api)),
            dollars(Some(lambda_requests)),
            dollars(duration),
            dollars(dynamodb),
            format!("**{}**", dollars(total)),
            format!(
                "{} ({} ms)",
                dollars(total_cpu_bound),
                cpu_bound_ms
                    .map(|ms| format!("{ms:.0}"))
                    .unwrap_or_else(dash)
            ),
        ]);
    }

    section.paragraph(format!(
        "Per million requests of each route of template.yaml on AWS, from this run's figures. \
         *Invocations*: the route's function, plus the authorizer when template.yaml puts one \
         in front of the route (API Gateway then invokes both). *Billed ms*: each invocation's \
         warm duration as measured under the runtime emulator on this machine (item 8, the \
         `REPORT` median), rounded up to the millisecond as Lambda bills, taken as the estimate \
         of the duration at 128 MB on arm64, summed over the invocations: an estimate only. It \
         waits on DynamoDB Local, slower than DynamoDB (writes and transactions most), and it \
         ran on a whole x86 core, while a 128 MB function gets {:.0}% of a vCPU (128 of the \
         {MB_PER_VCPU:.0} MB that get one), so code that is CPU-bound runs longer there: the last \
         column prices instead each invocation's CPU time of item 8 stretched to that share, an \
         upper bound for work that is all CPU. *RRU / WRU*: the DynamoDB request units per request of the route's \
         operation in item 5 (a list: of 10 tokens), plus authentication's (a PAT's lookup, \
         1 strongly consistent GetItem; its throttled `last used` write left out) for every \
         route but the public `$default`. Cold starts, data transfer, CloudWatch Logs and \
         storage are left out.",
        MEMORY_MB / MB_PER_VCPU * 100.0
    ));
    section.paragraph(format!(
        "Prices assumed (us-east-1, on-demand list prices, no free tier; checked on \
         {PRICES_CHECKED}): API Gateway HTTP API ${HTTP_API_PER_MILLION:.2} per million \
         requests (the first 300 million a month); Lambda ${LAMBDA_REQUESTS_PER_MILLION:.2} \
         per million requests and ${LAMBDA_128MB_ARM_PER_MS:.10} per ms at 128 MB on arm64 \
         ($0.0000133334 per GB-s); DynamoDB on-demand ${RRU_PER_MILLION:.3} per million read \
         request units and ${WRU_PER_MILLION:.3} per million write request units."
    ));
    section.table(
        &[
            "route",
            "functions",
            "invocations",
            "billed ms",
            "RRU / WRU",
            "API Gateway",
            "Lambda requests",
            "Lambda duration",
            "DynamoDB",
            "total",
            "total if CPU-bound at 128 MB (billed ms)",
        ],
        &rows,
    );
    if !missing.is_empty() {
        section.paragraph(format!(
            "Partly priced (—): {}. A figure comes from the requests (item 5) and invocation \
             (item 8) steps of the same run: run them before this one.",
            missing.join(", ")
        ));
    }
    if let Some(cleanup) = operation("cleanup per 1,000 expired") {
        section.paragraph(format!(
            "The scheduled cleanup, per 1,000 expired tokens removed: {} RRU and {} WRU, \
             ${:.4} of DynamoDB (item 5), plus its hourly invocation.",
            cleanup.read,
            cleanup.write,
            (cleanup.read * RRU_PER_MILLION + cleanup.write * WRU_PER_MILLION) / 1000.0
        ));
    }

    let measured = end_to_end
        .as_ref()
        .and_then(|e| e["invocations_per_request"].as_f64());
    section.verdicts.push(Verdict::new(
        "one invocation per request on the bundle's routes (template.yaml)",
        "1 per route",
        if bundle_with_two.is_empty() {
            format!("1 on all {bundle_routes}")
        } else {
            format!(
                "2 on {} of {bundle_routes} (the authorizer in front: {})",
                bundle_with_two.len(),
                bundle_with_two.join(", ")
            )
        } + &measured
            .map(|m| format!("; measured end to end (item 9): {m:.2}"))
            .unwrap_or_default(),
        Some(bundle_with_two.is_empty() && measured.is_none_or(|m| (m - 1.0).abs() < 0.005)),
    ));
    section.verdicts.push(Verdict::new(
        "cost per million PAT-authenticated GET /api/admin/user/tokens",
        "reported (no target)",
        dollars(list_total),
        None,
    ));
    Ok(section)
}

fn label(method: &str, path: &str) -> String {
    if path == DEFAULT_PATH {
        "`$default`".to_owned()
    } else {
        format!("`{method} {path}`")
    }
}

fn dash() -> String {
    "—".to_owned()
}

fn dollars(value: Option<f64>) -> String {
    match value {
        Some(0.0) => "$0".to_owned(),
        Some(v) if v >= 0.1 => format!("${v:.2}"),
        Some(v) => format!("${v:.4}"),
        None => dash(),
    }
}
