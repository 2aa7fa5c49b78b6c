//! Options, and what several steps share: the template's functions and their environment,
//! events, fresh tables, seeded tokens. The report and the figures' formatting are in
//! `report.rs` (re-exported here, so a step imports from one place).

pub use crate::report::{
    conditions, load_data, median, met, mib, ms, percentile, write_report, Section, Verdict,
};
pub use crate::warm_events::{answered_as_expected, WarmEvents};
use chrono::{DateTime, Duration, Utc};
use harness::fresh::{fresh_app, FreshApp};
use harness::github::GithubSigner;
use harness::moto::{EventQueue, Moto};
use harness::oidc::JwksServer;
use harness::template::Template;
use harness::{workspace_root, DynamoLocal};
use serde_json::{json, Value};
use shared::store::{NewToken, Store};
use shared::tokens::{Secret, SecretDigest, Token};
use std::collections::BTreeMap;
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
    /// Where the baseline functions are: `<dir>/<name>/bootstrap` (cargo lambda's layout).
    pub baselines_dir: PathBuf,
    pub steps: Vec<String>,
}

pub const ALL_STEPS: [&str; 11] = [
    "sizes",
    "cold",
    "rss",
    "cpu",
    "requests",
    "cleanup",
    "invocation",
    "e2e",
    "load",
    "cost",
    "report",
];

impl Options {
    pub const USAGE: &'static str = "usage: lambda [--short] [--out DIR] [--report FILE] \
        [--criterion DIR] [--build-note TEXT] [--base-url URL (--pat SECRET | --jwt TOKEN)] \
        [--cleanup-sizes N,N,...] [--baselines DIR] [STEP...]\nsteps: sizes cold rss cpu requests \
        cleanup invocation e2e load cost report (default: all)";

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
            baselines_dir: target.join("lambda"),
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
                "--baselines" => options.baselines_dir = value("--baselines")?.into(),
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
    /// `Metadata.BuildProperties.Binary`; its event is `events/<binary>.json`.
    pub binary: String,
    pub environment: Vec<(String, String)>,
}

impl Function {
    pub fn bootstrap(&self) -> PathBuf {
        sam_build_dir().join(&self.logical_id).join("bootstrap")
    }
}

/// Every function of template.yaml with the environment the template gives it (parameters at
/// their defaults, the table's name for `!Ref TokensTable`; `harness::template`), plus
/// DynamoDB Local's endpoint; and, for the functions that reach past DynamoDB, this process's
/// stand-ins ([`LocalServices`]): the functions that publish (notify-expiring, GitHub's leak
/// reports, revocation by value) moto's endpoint and a bus of the bench's, GitHub's leak
/// reports the key document on loopback.
pub async fn functions(table: &str, local: &DynamoLocal) -> Result<Vec<Function>, String> {
    let services = LocalServices::shared().await?;
    Ok(Template::load()
        .functions(table, &BTreeMap::new())
        .into_iter()
        .map(|function| {
            let mut environment: Vec<(String, String)> = function.environment.into_iter().collect();
            environment.extend(local.environment());
            services.add_to(&function.binary, &mut environment);
            Function {
                logical_id: function.logical_id,
                binary: function.binary,
                environment,
            }
        })
        .collect())
}

/// What the functions need beyond DynamoDB Local, started once for the process (every step
/// shares them): moto with a bus of the bench's whose events a rule delivers to a queue (as
/// tests/integration/sam_local.rs sets them up), and GitHub's public key document, of the test
/// key, on loopback (the template's default URL is GitHub's, unreachable here).
pub struct LocalServices {
    moto: Vec<(String, String)>,
    bus: String,
    github_keys: JwksServer,
    /// Where the bus's events end up; kept so the rule has a target (nobody reads it).
    _events: EventQueue,
}

/// The binaries that publish to EventBridge.
const PUBLISHERS: [&str; 3] = [
    "notify-expiring",
    "secret-scanning-github",
    "revoke-credentials",
];

static SERVICES: tokio::sync::OnceCell<LocalServices> = tokio::sync::OnceCell::const_new();

impl LocalServices {
    pub async fn shared() -> Result<&'static LocalServices, String> {
        SERVICES
            .get_or_try_init(|| async {
                let moto = tokio::task::spawn_blocking(Moto::shared)
                    .await
                    .map_err(|e| format!("starting moto: {e}"))?;
                let bus = format!("bench-functions-{}", std::process::id());
                let events = moto.bus_to_queue(&bus, &format!("{bus}-queue")).await?;
                let github_keys =
                    JwksServer::serving(&GithubSigner::document(&[&GithubSigner::test_key()]))
                        .await;
                Ok(LocalServices {
                    moto: moto.environment(),
                    bus,
                    github_keys,
                    _events: events,
                })
            })
            .await
    }

    /// Adds what the function of `binary` needs to its `environment`, replacing the template's.
    fn add_to(&self, binary: &str, environment: &mut Vec<(String, String)>) {
        let mut set = |name: &str, value: &str| {
            environment.retain(|(n, _)| n != name);
            environment.push((name.to_owned(), value.to_owned()));
        };
        if binary == "secret-scanning-github" {
            set("GITHUB_PUBLIC_KEYS_URL", &self.github_keys.url);
        }
        if PUBLISHERS.contains(&binary) {
            for (name, value) in &self.moto {
                set(name, value);
            }
            set("EVENT_BUS_NAME", &self.bus);
        }
    }
}

// ---------- events ----------

pub use harness::events::{as_user, event, sam_build_dir, with_path_parameter};

/// The create-pat event with a body whose expiry is in the future.
pub fn create_pat_body(description: &str) -> String {
    let expires = (Utc::now() + Duration::days(30)).format("%Y-%m-%dT%H:%M:%S%.3fZ");
    json!({"description": description, "expiresAt": expires.to_string()}).to_string()
}

/// A list event without its query string: the first page, of the default size.
pub fn first_page(mut event: Value) -> Value {
    event["rawQueryString"] = "".into();
    if let Some(o) = event.as_object_mut() {
        o.remove("queryStringParameters");
    }
    event
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
    seed_token(store, "alice", uuid, &digest, in_a_day, None).await;
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
    seed_token(
        store,
        "alice",
        Uuid::new_v4(),
        &secret.digest(),
        in_a_day,
        None,
    )
    .await;
    Ok((authorizer_event, secret))
}

/// Creates a token through the store (the same calls a create makes), with no cap in the way;
/// `scopes` `None`: a token stored before scopes existed.
pub async fn seed_token(
    store: &Store,
    user: &str,
    uuid: Uuid,
    digest: &SecretDigest,
    expires: Option<DateTime<Utc>>,
    scopes: Option<Vec<String>>,
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
                scopes,
            },
            digest,
            10_000,
            Duration::days(1),
        )
        .await
        .unwrap_or_else(|e| panic!("seeding a token for {user}: {e}"))
}

/// `per_user` tokens for each of `users` (expiring `lifetime` from now, with `scopes`), created
/// 16 at a time; returns them with their secrets in user order, each user's in the order of
/// their Unleash numbers.
pub async fn seed_many(
    store: &Store,
    users: &[String],
    per_user: usize,
    lifetime: Duration,
    scopes: Option<Vec<String>>,
) -> Result<Vec<(Token, Secret)>, String> {
    let work: Vec<&String> = users
        .iter()
        .flat_map(|u| std::iter::repeat_n(u, per_user))
        .collect();
    let mut seeded = Vec::with_capacity(work.len());
    for chunk in work.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for user in chunk {
            let (store, user, scopes) = (store.clone(), user.to_string(), scopes.clone());
            let secret = Secret::generate().map_err(|e| e.to_string())?;
            tasks.spawn(async move {
                let (uuid, expires) = (Uuid::new_v4(), Some(Utc::now() + lifetime));
                let digest = secret.digest();
                let token = seed_token(&store, &user, uuid, &digest, expires, scopes).await;
                (token, secret)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            seeded.push(joined.map_err(|e| format!("seeding task: {e}"))?);
        }
    }
    seeded.sort_by_key(|(t, _)| (users.iter().position(|u| *u == t.user_id), t.number));
    Ok(seeded)
}

/// One token of `user`'s (expiring `lifetime` from now), and its secret.
pub async fn seed_one(
    store: &Store,
    user: &str,
    lifetime: Duration,
) -> Result<(Token, Secret), String> {
    let mut seeded = seed_many(store, &[user.to_owned()], 1, lifetime, None).await?;
    seeded.pop().ok_or_else(|| "nothing seeded".to_owned())
}

/// Writes the `last used` of the secret's token now (a 60 s throttle window), so that the
/// invocations measured after it make the lookup alone.
pub async fn record_use(store: &Store, secret: &Secret) -> Result<(), String> {
    let record = store
        .find_secret(&secret.digest())
        .await
        .map_err(|e| e.to_string())?
        .ok_or("a seeded secret is not found")?;
    let written = store.record_use(&record, Utc::now(), Duration::seconds(60));
    written.await.map(|_| ()).map_err(|e| e.to_string())
}
