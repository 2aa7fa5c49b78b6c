//! Options, and what several steps share: the template's functions and their environment,
//! events, fresh tables, seeded tokens. The report and the figures' formatting are in
//! `report.rs` (re-exported here, so a step imports from one place).

pub use crate::report::{
    conditions, load_data, median, met, mib, ms, percentile, write_report, Section, Verdict,
};
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
    /// Where the baseline functions are: `<dir>/<name>/bootstrap` (cargo lambda's layout).
    pub baselines_dir: PathBuf,
    pub steps: Vec<String>,
}

pub const ALL_STEPS: [&str; 11] = [
    "sizes",
    "cold",
    "cpu",
    "requests",
    "cleanup",
    "invocation",
    "rss",
    "e2e",
    "load",
    "cost",
    "report",
];

impl Options {
    pub const USAGE: &'static str = "usage: lambda [--short] [--out DIR] [--report FILE] \
        [--criterion DIR] [--build-note TEXT] [--base-url URL (--pat SECRET | --jwt TOKEN)] \
        [--cleanup-sizes N,N,...] [--baselines DIR] [STEP...]\nsteps: sizes cold cpu requests \
        cleanup invocation rss e2e load cost report (default: all)";

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
    seed_scoped_token(store, user, uuid, digest, expires, None).await
}

/// [`seed_token`] with `scopes` (`None`: a token stored before scopes existed).
pub async fn seed_scoped_token(
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

/// `per_user` tokens (expiring in 30 days, with `scopes`) for each of `users`, created 16 at a
/// time; returns their secrets in user order. Outside the expiry notifications' windows (7
/// days): the notify function's warm runs read only the callers' tokens, not thousands.
pub async fn seed_secrets(
    store: &Store,
    users: &[String],
    per_user: usize,
    scopes: Option<Vec<String>>,
) -> Result<Vec<Secret>, String> {
    let work: Vec<&String> = users
        .iter()
        .flat_map(|u| std::iter::repeat_n(u, per_user))
        .collect();
    let mut secrets = Vec::with_capacity(work.len());
    for chunk in work.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for (at, user) in chunk.iter().enumerate() {
            let (store, user, scopes) = (store.clone(), user.to_string(), scopes.clone());
            let secret = Secret::generate().map_err(|e| e.to_string())?;
            tasks.spawn(async move {
                let expires = Some(Utc::now() + Duration::days(30));
                let digest = secret.digest();
                seed_scoped_token(&store, &user, Uuid::new_v4(), &digest, expires, scopes).await;
                (at, secret)
            });
        }
        let mut done = Vec::with_capacity(chunk.len());
        while let Some(joined) = tasks.join_next().await {
            done.push(joined.map_err(|e| format!("seeding task: {e}"))?);
        }
        done.sort_by_key(|(at, _)| *at);
        secrets.extend(done.into_iter().map(|(_, secret)| secret));
    }
    Ok(secrets)
}

// ---------- every function's event, for many warm invocations ----------

/// Creates a user makes in the warm events before the next user takes over: under the default
/// cap of 100 live tokens, with the user's own PAT.
const CREATES_PER_USER: usize = 90;

/// Each function's `events/` file, adjusted so that invocation after invocation does real
/// work: creates (90 a user), revokes and deletes of tokens seeded for them, lists of a user
/// with 22 tokens, get of a seeded token, the authorizer with one valid token, cleanup with
/// nothing due, the `$default` route's 405; a self-rotation of a token seeded for it (each
/// invocation a first rotation), GitHub's leak report (signed with the test key) of a token
/// seeded for it, revocation by value of one seeded for it (plus an unknown and a malformed
/// one). No event names a token another function's event uses. The caller is as template.yaml routes the function:
/// behind the authorizer, its identity in the request context (as API Gateway passes the
/// authorizer's answer); otherwise a seeded PAT of the user in the `Authorization` header, which
/// the function checks itself (its `last used` already written for this throttle window, so a
/// warm invocation makes the lookup alone). A function the list does not know gets its
/// `events/<binary>.json` as it is. Shared by the memory and the invocation steps.
pub struct WarmEvents {
    get: Value,
    get_user: String,
    authorizer: Value,
    list_app_tokens: Value,
    list_pats: Value,
    create: Value,
    create_pat: Value,
    revoke: Value,
    delete: Value,
    to_revoke: Vec<Token>,
    to_delete: Vec<Token>,
    rotate_self: Value,
    /// A `self_rotate` token's secret per self-rotation.
    to_rotate_self: Vec<Secret>,
    leak_report: Value,
    /// A live token's secret per leak report.
    to_report: Vec<Secret>,
    revoke_by_value: Value,
    /// A live token's secret per revocation by value.
    to_revoke_by_value: Vec<Secret>,
    github: GithubSigner,
    /// `Bearer <PAT>` of each user the events act as.
    credentials: HashMap<String, String>,
    /// Functions template.yaml puts behind a Lambda authorizer.
    behind_authorizer: Vec<String>,
}

impl WarmEvents {
    /// What the events do, for the steps' descriptions.
    pub const DESCRIPTION: &'static str = "creates (90 a user), revokes and deletes of seeded \
        tokens, lists of a user with 22 tokens, get of a seeded token, the authorizer with one \
        valid token, cleanup with nothing due, the `$default` route's 405, self-rotations, GitHub's \
        leak reports and revocations by value of seeded tokens (notifications and revocations \
        published to moto's EventBridge, GitHub's keys served on loopback); each route's caller \
        a seeded PAT in the `Authorization` header, checked by the function itself (its `last \
        used` already written for the throttle window), or, for a route template.yaml puts \
        behind the authorizer, the identity in the request context";

    /// Seeds `store` for `invocations` invocations of each function.
    pub async fn seed(store: &Store, invocations: usize) -> Result<WarmEvents, String> {
        let per_user = invocations.clamp(1, 100);
        let users_needed = invocations.div_ceil(per_user);
        let creators = invocations.div_ceil(CREATES_PER_USER);
        harness::dynamodb_local::progress(&format!(
            "bench: seeding {} tokens",
            5 * invocations + 22 + 2 * (users_needed + creators) + 1
        ));
        let get_user = "alice".to_owned();
        let get = seed_get_event_token(store).await?;
        let (authorizer, _) = seed_authorizer_event_token(store).await?;
        seed_many(store, std::slice::from_ref(&get_user), 20).await;
        let revoke_users: Vec<String> = (0..users_needed).map(|u| format!("revoke-{u}")).collect();
        let delete_users: Vec<String> = (0..users_needed).map(|u| format!("delete-{u}")).collect();
        let to_revoke = in_user_order(
            seed_many(store, &revoke_users, per_user).await,
            &revoke_users,
        );
        let to_delete = in_user_order(
            seed_many(store, &delete_users, per_user).await,
            &delete_users,
        );
        let users_named = |role: &str| -> Vec<String> {
            (0..users_needed).map(|u| format!("{role}-{u}")).collect()
        };
        let self_rotate = Some(vec![shared::tokens::scopes::SELF_ROTATE.to_owned()]);
        let to_rotate_self =
            seed_secrets(store, &users_named("rotate-self"), per_user, self_rotate).await?;
        let to_report = seed_secrets(store, &users_named("leaked"), per_user, None).await?;
        let to_revoke_by_value =
            seed_secrets(store, &users_named("revoke-by-value"), per_user, None).await?;
        let mut users = vec![get_user.clone()];
        users.extend(revoke_users);
        users.extend(delete_users);
        users.extend((0..creators).map(|u| format!("create-{u}")));
        users.extend((0..creators).map(|u| format!("create-pat-{u}")));
        let mut credentials = HashMap::new();
        for user in users {
            let secret = Secret::generate().map_err(|e| e.to_string())?;
            let in_a_day = Some(Utc::now() + Duration::days(1));
            seed_token(store, &user, Uuid::new_v4(), &secret.digest(), in_a_day).await;
            let record = store
                .find_secret(&secret.digest())
                .await
                .map_err(|e| e.to_string())?
                .ok_or("a seeded PAT is not found")?;
            store
                .record_use(&record, Utc::now(), Duration::seconds(60))
                .await
                .map_err(|e| e.to_string())?;
            credentials.insert(user, format!("Bearer {}", secret.expose()));
        }
        let behind_authorizer = Template::load()
            .http_routes()
            .into_iter()
            .filter(|r| r.authorizer.is_some())
            .map(|r| r.function)
            .collect();
        let list_all = |name: &str| {
            let mut e = event(name);
            e["rawQueryString"] = "".into();
            if let Some(o) = e.as_object_mut() {
                o.remove("queryStringParameters");
            }
            e
        };
        Ok(WarmEvents {
            get,
            get_user,
            authorizer,
            list_app_tokens: list_all("list-app-tokens.json"),
            list_pats: list_all("list-pats.json"),
            create: event("create-app-token.json"),
            create_pat: event("create-pat.json"),
            revoke: event("revoke-app-token.json"),
            delete: event("delete-pat.json"),
            to_revoke,
            to_delete,
            rotate_self: event("rotate-self.json"),
            to_rotate_self,
            leak_report: event("secret-scanning-github.json"),
            to_report,
            revoke_by_value: event("revoke-credentials.json"),
            to_revoke_by_value,
            github: GithubSigner::test_key(),
            credentials,
            behind_authorizer,
        })
    }

    /// The get event, with its caller in the authorizer's context.
    pub fn get_event(&self) -> &Value {
        &self.get
    }

    /// The user whose token the get event reads.
    pub fn get_user(&self) -> &str {
        &self.get_user
    }

    /// The event as `user` calls `function`: the authorizer's context when template.yaml puts
    /// one in front of it, else the user's PAT.
    fn as_caller(&self, function: &Function, event: Value, user: &str) -> Value {
        if self.behind_authorizer.contains(&function.logical_id) {
            return as_user(event, user);
        }
        let mut event = event;
        if let Some(context) = event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        event["headers"]["authorization"] = self
            .credentials
            .get(user)
            .cloned()
            .unwrap_or_default()
            .into();
        event
    }

    /// The `i`-th invocation's event for a function (`i` below the count seeded for), or
    /// `None` when there is no `events/<binary>.json`.
    pub fn nth(&self, function: &Function, i: usize) -> Option<Value> {
        let creator = i / CREATES_PER_USER;
        Some(match function.logical_id.as_str() {
            "GetAppTokenFunction" => self.as_caller(function, self.get.clone(), &self.get_user),
            "ListAppTokensFunction" => {
                self.as_caller(function, self.list_app_tokens.clone(), &self.get_user)
            }
            "ListPatsFunction" => self.as_caller(function, self.list_pats.clone(), &self.get_user),
            "CreateAppTokenFunction" => {
                self.as_caller(function, self.create.clone(), &format!("create-{creator}"))
            }
            "CreatePatFunction" => {
                let mut e = self.as_caller(
                    function,
                    self.create_pat.clone(),
                    &format!("create-pat-{creator}"),
                );
                e["body"] = create_pat_body(&format!("bot {i}")).into();
                e
            }
            "RevokeAppTokenFunction" => {
                let token = self.to_revoke.get(i)?;
                with_path_parameter(
                    self.as_caller(function, self.revoke.clone(), &token.user_id),
                    "token_uuid",
                    &token.uuid.to_string(),
                )
            }
            "DeletePatFunction" => {
                let token = self.to_delete.get(i)?;
                with_path_parameter(
                    self.as_caller(function, self.delete.clone(), &token.user_id),
                    "id",
                    &token.number.to_string(),
                )
            }
            "RotateSelfFunction" => {
                let secret = self.to_rotate_self.get(i)?;
                let mut e = self.rotate_self.clone();
                e["headers"]["authorization"] = format!("Bearer {}", secret.expose()).into();
                e
            }
            "SecretScanningGithubFunction" => {
                let secret = self.to_report.get(i)?;
                // The shipped report's entries, its first naming this invocation's token.
                let shipped = self.leak_report["body"].as_str().unwrap_or("[]");
                let mut entries: Value = serde_json::from_str(shipped).ok()?;
                entries[0]["token"] = secret.expose().into();
                let body = entries.to_string();
                let mut e = self.leak_report.clone();
                e["headers"][shared::leaks::github::KEY_ID_HEADER] =
                    self.github.key_id.clone().into();
                e["headers"][shared::leaks::github::SIGNATURE_HEADER] =
                    self.github.sign(body.as_bytes()).into();
                e["headers"]["content-length"] = body.len().to_string().into();
                e["body"] = body.into();
                e
            }
            "RevokeCredentialsFunction" => {
                let secret = self.to_revoke_by_value.get(i)?;
                let unknown = Secret::generate().ok()?;
                let body =
                    json!({"credentials": [secret.expose(), unknown.expose(), "not a token"]})
                        .to_string();
                let mut e = self.revoke_by_value.clone();
                e["headers"]["content-length"] = body.len().to_string().into();
                e["body"] = body.into();
                e
            }
            "AuthorizerFunction" => self.authorizer.clone(),
            _ => return event_file(&function.binary),
        })
    }
}

/// `events/<binary>.json`, when there is one.
pub fn event_file(binary: &str) -> Option<Value> {
    let name = format!("{binary}.json");
    harness::workspace_root()
        .join("events")
        .join(&name)
        .is_file()
        .then(|| event(&name))
}

/// Whether a function answered its warm event as it should: a 2xx HTTP answer, an authorizer's
/// allow, a cleanup's summary, a notification run's report with nothing refused; for the
/// `$default` route, its 405 (or 404).
pub fn answered_as_expected(function: &Function, answer: &Value) -> bool {
    if let Some(status) = answer["statusCode"].as_u64() {
        return match function.logical_id.as_str() {
            "FallbackFunction" => status == 405 || status == 404,
            _ => (200..300).contains(&status),
        };
    }
    answer["isAuthorized"] == true
        || answer["deleted"].is_u64()
        || (answer["examined"].is_u64() && answer["refused"] == 0)
}

/// Tokens in user order, each user's in the order of their numbers.
fn in_user_order(mut seeded: HashMap<String, Vec<Token>>, users: &[String]) -> Vec<Token> {
    users
        .iter()
        .flat_map(|u| seeded.remove(u).unwrap_or_default())
        .collect()
}
