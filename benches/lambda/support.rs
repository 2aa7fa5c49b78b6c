//! Options, and what several steps share: the template's functions and their environment,
//! events, fresh tables, seeded tokens. The report and the figures' formatting are in
//! `report.rs` (re-exported here, so a step imports from one place).

pub use crate::report::{
    conditions, median, met, mib, ms, percentile, write_report, Section, Verdict,
};
use chrono::{DateTime, Duration, Utc};
use harness::fresh::{fresh_app, FreshApp};
use harness::template::Template;
use harness::{workspace_root, DynamoLocal};
use serde_json::{json, Value};
use shared::store::{NewToken, Store};
use shared::tokens::{Secret, SecretDigest, Token};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use uuid::Uuid;

pub struct Options {
    pub short: bool,
    pub out_dir: PathBuf,
    pub report: PathBuf,
    pub criterion_dir: PathBuf,
    pub build_note: String,
    pub base_url: Option<String>,
    pub pat: Option<String>,
    pub jwt: Option<String>,
    /// Expired-token counts of the cleanup scaling step, instead of the mode's.
    pub cleanup_sizes: Option<Vec<usize>>,
    pub steps: Vec<String>,
}

pub const ALL_STEPS: [&str; 8] = [
    "sizes", "cold", "rss", "cpu", "requests", "cleanup", "load", "report",
];

impl Options {
    pub const USAGE: &'static str = "usage: lambda [--short] [--out DIR] [--report FILE] \
        [--criterion DIR] [--build-note TEXT] [--base-url URL (--pat SECRET | --jwt TOKEN)] \
        [--cleanup-sizes N,N,...] [STEP...]\nsteps: sizes cold rss cpu requests cleanup load report (default: all)";

    pub fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let mut options = Options {
            short: false,
            out_dir: target.join("bench"),
            report: workspace_root().join("docs").join("benchmarks.md"),
            criterion_dir: std::env::var_os("CRITERION_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("criterion")),
            build_note: String::new(),
            base_url: None,
            pat: None,
            jwt: None,
            cleanup_sizes: None,
            steps: Vec::new(),
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                // What `cargo bench` passes to every bench binary.
                "--bench" => {}
                "--short" => options.short = true,
                "--out" => options.out_dir = value("--out")?.into(),
                "--report" => options.report = value("--report")?.into(),
                "--criterion" => options.criterion_dir = value("--criterion")?.into(),
                "--build-note" => options.build_note = value("--build-note")?,
                "--base-url" => options.base_url = Some(value("--base-url")?),
                "--pat" => options.pat = Some(value("--pat")?),
                "--jwt" => options.jwt = Some(value("--jwt")?),
                "--cleanup-sizes" => {
                    let text = value("--cleanup-sizes")?;
                    let sizes: Result<Vec<usize>, _> =
                        text.split(',').map(|n| n.trim().parse::<usize>()).collect();
                    options.cleanup_sizes = Some(
                        sizes
                            .ok()
                            .filter(|s| s.iter().all(|n| *n > 0))
                            .ok_or_else(|| format!("--cleanup-sizes {text:?}: e.g. 1000,10000"))?,
                    );
                }
                step if ALL_STEPS.contains(&step) => options.steps.push(step.to_owned()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.steps.is_empty() {
            options.steps = ALL_STEPS.iter().map(|s| s.to_string()).collect();
        }
        std::fs::create_dir_all(&options.out_dir)
            .map_err(|e| format!("{}: {e}", options.out_dir.display()))?;
        Ok(options)
    }

    /// `full` in full mode, `short` in short mode.
    pub fn pick<T>(&self, full: T, short: T) -> T {
        if self.short {
            short
        } else {
            full
        }
    }
}

// ---------- the template's functions ----------

pub struct Function {
    pub logical_id: String,
    pub environment: Vec<(String, String)>,
}

impl Function {
    pub fn bootstrap(&self) -> PathBuf {
        sam_build_dir().join(&self.logical_id).join("bootstrap")
    }
}

/// Every function of template.yaml with the environment the template gives it (parameters at
/// their defaults, the table's name for `!Ref TokensTable`; `harness::template`), plus
/// DynamoDB Local's endpoint.
pub fn functions(table: &str, local: &DynamoLocal) -> Vec<Function> {
    Template::load()
        .functions(table, &BTreeMap::new())
        .into_iter()
        .map(|function| {
            let mut environment: Vec<(String, String)> = function.environment.into_iter().collect();
            environment.extend(local.environment());
            Function {
                logical_id: function.logical_id,
                environment,
            }
        })
        .collect()
}

// ---------- events ----------

pub use harness::events::{as_user, event, sam_build_dir, with_path_parameter};

/// The create-pat event with a body whose expiry is in the future.
pub fn create_pat_body(description: &str) -> String {
    let expires = (Utc::now() + Duration::days(30)).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    json!({"description": description, "expiresAt": expires.to_string()}).to_string()
}

pub fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway HTTP API event")
}

// ---------- tables and tokens ----------

/// A table and app of its own on this process's DynamoDB Local (`harness::fresh`).
pub type Env = FreshApp;

/// A fresh table from template.yaml on this process's DynamoDB Local, and an app over it with
/// the default configuration plus `vars`.
pub async fn fresh_env(vars: &[(&str, &str)]) -> Env {
    fresh_app("bench", vars).await
}

/// Creates a token through the store (the same calls a create makes), with no cap in the way.
/// `get-app-token.json` as alice, with her token at the uuid it asks for (expiring in a day),
/// so the event answers 200.
pub async fn seed_get_event_token(store: &Store) -> Result<Value, String> {
    let get_event = as_user(event("get-app-token.json"), "alice");
    let uuid = Uuid::parse_str(
        get_event["pathParameters"]["token_uuid"]
            .as_str()
            .ok_or("get-app-token.json has no token_uuid")?,
    )
    .map_err(|e| e.to_string())?;
    let digest = Secret::generate().map_err(|e| e.to_string())?.digest();
    let in_a_day = Some(Utc::now() + Duration::days(1));
    seed_token(store, "alice", uuid, &digest, in_a_day).await;
    Ok(get_event)
}

/// `authorizer.json`, with a token of alice's (expiring in a day) whose secret is the one it
/// presents, so the authorizer allows it; and that secret.
pub async fn seed_authorizer_event_token(store: &Store) -> Result<(Value, Secret), String> {
    let authorizer_event = event("authorizer.json");
    let header = authorizer_event["headers"]["authorization"]
        .as_str()
        .ok_or("authorizer.json has no authorization header")?;
    let secret = Secret::parse(header.trim_start_matches("Bearer ").trim())
        .map_err(|e| format!("the authorizer event's token: {e}"))?;
    let in_a_day = Some(Utc::now() + Duration::days(1));
    seed_token(store, "alice", Uuid::new_v4(), &secret.digest(), in_a_day).await;
    Ok((authorizer_event, secret))
}

pub async fn seed_token(
    store: &Store,
    user: &str,
    uuid: Uuid,
    digest: &SecretDigest,
    expires: Option<DateTime<Utc>>,
) -> Token {
    let now = Utc::now();
    store
        .create_token(
            NewToken {
                user_id: user.to_owned(),
                uuid,
                title: format!("seeded {uuid}"),
                created: now - Duration::days(1),
                expires,
            },
            digest,
            10_000,
            Duration::days(1),
        )
        .await
        .unwrap_or_else(|e| panic!("seeding a token for {user}: {e}"))
}

/// `count` tokens for each of `users`, created 16 at a time; returns them per user, in the
/// order their Unleash numbers were issued.
pub async fn seed_many(
    store: &Store,
    users: &[String],
    count: usize,
) -> HashMap<String, Vec<Token>> {
    let mut work: Vec<String> = Vec::new();
    for user in users {
        work.extend(std::iter::repeat_n(user.clone(), count));
    }
    let mut seeded: HashMap<String, Vec<Token>> = HashMap::new();
    for chunk in work.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for user in chunk {
            let store = store.clone();
            let user = user.clone();
            tasks.spawn(async move {
                let digest = shared::tokens::Secret::generate().expect("secret").digest();
                let expires = Some(Utc::now() + Duration::days(30));
                seed_token(&store, &user, Uuid::new_v4(), &digest, expires).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let token = done.expect("seeding task");
            seeded.entry(token.user_id.clone()).or_default().push(token);
        }
    }
    for tokens in seeded.values_mut() {
        tokens.sort_by_key(|t| t.number);
    }
    seeded
}
