//! API Gateway (HTTP API) in front of the real function binaries, as the deployed stack has it.
//! Routes and the Lambda authorizer come from `template.yaml`; each request becomes the payload
//! 2.0 event API Gateway sends, runs on the function's binary under the Lambda runtime
//! emulator, and the function's answer becomes the HTTP response. What API Gateway answers by
//! itself is copied too: 404 for an unknown route, 401 without the identity header (the
//! authorizer is not called), 403 when the authorizer denies, 500 when a function fails.

use crate::rie::{Emulator, INVOKE_PATH};
use crate::template::{FunctionDef, LambdaAuthorizer, Template};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore};

pub const ACCOUNT_ID: &str = "123456789012";
pub const API_ID: &str = "local";
pub const STAGE: &str = "$default";
pub const REGION: &str = "us-east-1";
/// API Gateway's largest request body.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// HTTP API gives an integration at most 30 s.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// One route: `METHOD /path/{param}` and the function behind it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The function's logical id.
    pub function: String,
    pub authorizer: Option<String>,
    segments: Vec<Segment>,
    /// The `$default` route: taken by every request no other route takes.
    catch_all: bool,
}

/// The route key of the catch-all route (SAM: an `HttpApi` event with no `Path` and `Method`).
pub const DEFAULT_ROUTE: &str = "$default";

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Route {
    pub fn new(method: &str, path: &str, function: &str, authorizer: Option<&str>) -> Route {
        let catch_all = path.trim_start_matches('/') == DEFAULT_ROUTE;
        let segments = split_path(path)
            .into_iter()
            .map(|s| {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                    Segment::Greedy(name.to_owned())
                } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Segment::Param(name.to_owned())
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        Route {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            function: function.to_owned(),
            authorizer: authorizer.map(str::to_owned),
            segments: if catch_all { Vec::new() } else { segments },
            catch_all,
        }
    }

    /// `routeKey` as API Gateway writes it.
    pub fn key(&self) -> String {
        if self.catch_all {
            DEFAULT_ROUTE.to_owned()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    /// The path parameters when this route takes the request.
    fn matches(&self, method: &str, raw_path: &str) -> Option<BTreeMap<String, String>> {
        if self.catch_all {
            return Some(BTreeMap::new());
        }
        if self.method != "ANY" && self.method != method {
            return None;
        }
        let parts = split_path(raw_path);
        let mut params = BTreeMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy(name) => {
                    let rest = parts.get(i..).filter(|r| !r.is_empty())?;
                    params.insert(name.clone(), percent_decode(&rest.join("/")));
                    return Some(params);
                }
                Segment::Literal(literal) => {
                    if parts.get(i) != Some(&literal.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = parts.get(i).filter(|v| !v.is_empty())?;
                    params.insert(name.clone(), percent_decode(value));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// Lower is more specific: API Gateway prefers literal paths, then parameters, then
    /// greedy paths, and an exact method over ANY.
    fn specificity(&self) -> (usize, usize, bool) {
        if self.catch_all {
            return (usize::MAX, usize::MAX, true);
        }
        let count = |greedy: bool| {
            self.segments
                .iter()
                .filter(|s| match s {
                    Segment::Greedy(_) => greedy,
                    Segment::Param(_) => !greedy,
                    Segment::Literal(_) => false,
                })
                .count()
        };
        (count(true), count(false), self.method == "ANY")
    }
}

fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// `%XX` decoded, invalid UTF-8 replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as it reached the gateway.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub raw_path: String,
    pub raw_query: String,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub source_ip: String,
    pub protocol: String,
}

/// What the gateway answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// API Gateway's own answers: `{"message": "..."}`.
    pub fn message(status: u16, message: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(json!({ "message": message }).to_string()),
        }
    }
}

/// A served request: the response and the functions it ran (binary name, whether cold).
#[derive(Debug)]
pub struct Served {
    pub response: Response,
    pub invoked: Vec<(String, bool)>,
    /// Why the gateway answered by itself, when it did (never includes secrets).
    pub note: Option<String>,
}

/// The result of one invocation.
#[derive(Debug)]
pub struct Invocation {
    pub outcome: Outcome,
    pub cold: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// The function returned this JSON.
    Answer(Value),
    /// The function failed (`errorType`, `errorMessage`).
    FunctionError(Value),
    /// The emulator could not be reached or took too long.
    Unavailable(String),
}

/// Emulator instances of one function. Each runtime emulator serves one invocation at a time,
/// as one Lambda execution environment does; more instances serve concurrent requests.
pub struct FunctionPool {
    pub logical_id: String,
    pub binary: String,
    instances: Vec<Instance>,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

struct Instance {
    emulator: Emulator,
    /// Whether the function process is up (a first invocation starts it: a cold start).
    warm: Mutex<bool>,
}

/// One instance held for one invocation; the lock is released before the permit.
struct Held<'a> {
    warm: MutexGuard<'a, bool>,
    instance: &'a Instance,
    _permit: OwnedSemaphorePermit,
}

type InvokeClient = Client<HttpConnector, Full<Bytes>>;

/// Until when, and the context when allowed (`None`: denied).
type CachedDecision = (Instant, Option<Value>);

impl FunctionPool {
    /// Starts `size` emulators for the function (blocking; each waits for its port).
    pub fn start(
        function: &FunctionDef,
        bootstrap: &Path,
        environment: &[(String, String)],
        size: usize,
        log_dir: &Path,
    ) -> Result<FunctionPool, String> {
        let mut instances = Vec::with_capacity(size);
        for n in 1..=size.max(1) {
            let log = log_dir.join(format!("{}-{n}.log", function.logical_id));
            let emulator = Emulator::start_with_log(bootstrap, environment, &log)
                .map_err(|e| format!("{}: {e}", function.logical_id))?;
            instances.push(Instance {
                emulator,
                warm: Mutex::new(false),
            });
        }
        Ok(FunctionPool {
            logical_id: function.logical_id.clone(),
            binary: function.binary.clone(),
            permits: Arc::new(Semaphore::new(instances.len())),
            instances,
            timeout: Duration::from_secs(function.timeout_seconds),
        })
    }

    pub fn size(&self) -> usize {
        self.instances.len()
    }

    pub fn logs(&self) -> Vec<PathBuf> {
        self.instances
            .iter()
            .map(|i| i.emulator.log.clone())
            .collect()
    }

    /// A free instance, a warm one when there is one (as Lambda reuses a warm environment).
    async fn acquire(&self) -> Option<Held<'_>> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        loop {
            for want_warm in [true, false] {
                for instance in &self.instances {
                    if let Ok(warm) = instance.warm.try_lock() {
                        if *warm == want_warm {
                            return Some(Held {
                                warm,
                                instance,
                                _permit: permit,
                            });
                        }
                    }
                }
            }
            // Another holder is between dropping its lock and its permit.
            tokio::task::yield_now().await;
        }
    }

    /// Invokes the function with `event` as API Gateway's integration does.
    pub async fn invoke(&self, client: &InvokeClient, event: &Value) -> Invocation {
        let Some(mut held) = self.acquire().await else {
            return Invocation {
                outcome: Outcome::Unavailable("the pool is closed".into()),
                cold: false,
            };
        };
        let cold = !*held.warm;
        let port = held.instance.emulator.invoke_port;
        // The emulator enforces the function's timeout; this only guards against a hung emulator.
        let limit = self.timeout.min(INTEGRATION_TIMEOUT) + Duration::from_secs(5);
        let outcome = match tokio::time::timeout(limit, post(client, port, event)).await {
            Err(_) => Outcome::Unavailable(format!("no answer within {} s", limit.as_secs())),
            Ok(Err(e)) => Outcome::Unavailable(e),
            Ok(Ok(answer)) if is_function_error(&answer) => Outcome::FunctionError(answer),
            Ok(Ok(answer)) => Outcome::Answer(answer),
        };
        // A runtime that exited, crashed or timed out starts again on the next invocation.
        *held.warm = match &outcome {
            Outcome::Answer(_) => true,
            Outcome::FunctionError(e) => !e["errorType"]
                .as_str()
                .is_some_and(|t| t.starts_with("Runtime.") || t.starts_with("Sandbox.")),
            Outcome::Unavailable(_) => false,
        };
        Invocation { outcome, cold }
    }

    pub fn stop(self) {
        for instance in self.instances {
            instance.emulator.stop();
        }
    }
}

async fn post(client: &InvokeClient, port: u16, event: &Value) -> Result<Value, String> {
    let request = hyper::Request::post(format!("http://127.0.0.1:{port}{INVOKE_PATH}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(event.to_string())))
        .map_err(|e| format!("request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("emulator on {port}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("emulator on {port}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "emulator on {port} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("the function answered non-JSON ({e})"))
}

fn is_function_error(answer: &Value) -> bool {
    answer.get("errorType").is_some()
        && answer.get("statusCode").is_none()
        && answer.get("isAuthorized").is_none()
}

/// What the gateway needs to start.
pub struct GatewayConfig {
    pub template: Template,
    pub table: String,
    /// As `sam local start-api --parameter-overrides`.
    pub parameter_overrides: BTreeMap<String, String>,
    /// Added to every function's environment (DynamoDB Local's endpoint and credentials).
    pub extra_environment: Vec<(String, String)>,
    /// Holds `<binary>/bootstrap` (cargo lambda's layout) or `<LogicalId>/bootstrap` (`sam build`'s).
    pub functions_dir: PathBuf,
    pub pool_size: usize,
    pub log_dir: PathBuf,
    /// `requestContext.domainName`, e.g. `127.0.0.1:3000`.
    pub domain: String,
}

pub struct Gateway {
    routes: Vec<Route>,
    pools: HashMap<String, FunctionPool>,
    authorizers: HashMap<String, LambdaAuthorizer>,
    client: InvokeClient,
    /// Authorizer results by (authorizer, identity), when `ReauthorizeEvery` > 0.
    cache: std::sync::Mutex<HashMap<(String, String), CachedDecision>>,
    domain: String,
}

impl Gateway {
    /// Reads routes and authorizers from the template and starts the emulators of every function
    /// behind a route or an authorizer (in parallel).
    pub async fn start(config: GatewayConfig) -> Result<Gateway, String> {
        let template_routes = config.template.http_routes();
        if template_routes.is_empty() {
            return Err("template.yaml declares no HttpApi route".into());
        }
        let mut authorizers = HashMap::new();
        for route in &template_routes {
            let (Some(api), Some(name)) = (&route.api, &route.authorizer) else {
                continue;
            };
            let authorizer = config.template.http_api_authorizer(api, name)?;
            if authorizer.payload_format_version != "2.0" || !authorizer.simple_responses {
                return Err(format!(
                    "authorizer {name}: only payload format 2.0 with simple responses is emulated"
                ));
            }
            authorizers.insert(name.clone(), authorizer);
        }
        let routes: Vec<Route> = template_routes
            .iter()
            .map(|r| Route::new(&r.method, &r.path, &r.function, r.authorizer.as_deref()))
            .collect();
        let mut needed: Vec<String> = routes.iter().map(|r| r.function.clone()).collect();
        needed.extend(authorizers.values().map(|a| a.function.clone()));
        needed.sort();
        needed.dedup();

        let definitions = config
            .template
            .functions(&config.table, &config.parameter_overrides);
        let mut starting = Vec::new();
        for logical_id in &needed {
            let function = definitions
                .iter()
                .find(|f| &f.logical_id == logical_id)
                .ok_or_else(|| format!("no AWS::Serverless::Function {logical_id}"))?
                .clone();
            let bootstrap = locate_bootstrap(&config.functions_dir, &function)?;
            let mut environment: Vec<(String, String)> = function
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            environment.extend(config.extra_environment.iter().cloned());
            // What Lambda (and `sam local`) sets for every function.
            environment.extend([
                (
                    "AWS_LAMBDA_FUNCTION_NAME".into(),
                    function.logical_id.clone(),
                ),
                (
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                    function.memory_mb.to_string(),
                ),
                (
                    "AWS_LAMBDA_FUNCTION_TIMEOUT".into(),
                    function.timeout_seconds.to_string(),
                ),
            ]);
            let size = config.pool_size;
            let log_dir = config.log_dir.clone();
            starting.push(tokio::task::spawn_blocking(move || {
                FunctionPool::start(&function, &bootstrap, &environment, size, &log_dir)
            }));
        }
        let mut pools = HashMap::new();
        let mut failure = None;
        for task in starting {
            match task.await {
                Ok(Ok(pool)) => {
                    pools.insert(pool.logical_id.clone(), pool);
                }
                Ok(Err(e)) => failure = Some(e),
                Err(e) => failure = Some(format!("emulator start-up task failed: {e}")),
            }
        }
        if let Some(e) = failure {
            for (_, pool) in pools {
                pool.stop();
            }
            return Err(e);
        }
        Ok(Gateway {
            routes,
            pools,
            authorizers,
            client: Client::builder(TokioExecutor::new()).build_http(),
            cache: std::sync::Mutex::new(HashMap::new()),
            domain: config.domain,
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn authorizer(&self, name: &str) -> Option<&LambdaAuthorizer> {
        self.authorizers.get(name)
    }

    pub fn pools(&self) -> impl Iterator<Item = &FunctionPool> {
        self.pools.values()
    }

    /// The route API Gateway would choose, with its path parameters.
    pub fn find(&self, method: &str, raw_path: &str) -> Option<(&Route, BTreeMap<String, String>)> {
        self.routes
            .iter()
            .filter_map(|r| r.matches(method, raw_path).map(|p| (r, p)))
            .min_by_key(|(r, _)| r.specificity())
    }

    pub async fn handle(&self, request: Request) -> Served {
        let request_id = request_id();
        let mut invoked = Vec::new();
        let response = self.respond(&request, &request_id, &mut invoked).await;
        let (mut response, note) = match response {
            Ok(response) => (response, None),
            Err((response, note)) => (response, Some(note)),
        };
        // On every answer, its own or the function's, as API Gateway does.
        response
            .headers
            .push(("apigw-requestid".into(), request_id));
        Served {
            response,
            invoked,
            note,
        }
    }

    async fn respond(
        &self,
        request: &Request,
        request_id: &str,
        invoked: &mut Vec<(String, bool)>,
    ) -> Result<Response, (Response, String)> {
        let Some((route, params)) = self.find(&request.method, &request.raw_path) else {
            return Err((Response::message(404, "Not Found"), "no route".into()));
        };
        let parts = EventParts::new(request, route, params, request_id, &self.domain);

        let authorizer_context = match &route.authorizer {
            None => None,
            Some(name) => Some(self.authorize(name, &parts, invoked).await?),
        };

        let Some(pool) = self.pools.get(&route.function) else {
            return Err((
                Response::message(500, "Internal Server Error"),
                format!("no emulator for {}", route.function),
            ));
        };
        let invocation = pool
            .invoke(&self.client, &parts.route_event(authorizer_context))
            .await;
        invoked.push((pool.binary.clone(), invocation.cold));
        let response = match invocation.outcome {
            Outcome::Answer(answer) => http_response(&answer).map_err(|e| {
                (
                    Response::message(500, "Internal Server Error"),
                    format!("{}: malformed response: {e}", pool.binary),
                )
            })?,
            Outcome::FunctionError(error) => {
                return Err((
                    Response::message(500, "Internal Server Error"),
                    format!("{} failed: {}", pool.binary, error["errorType"]),
                ))
            }
            Outcome::Unavailable(e) => {
                return Err((
                    Response::message(503, "Service Unavailable"),
                    format!("{}: {e}", pool.binary),
                ))
            }
        };
        Ok(response)
    }

    /// The authorizer's context, or API Gateway's own answer when it does not allow.
    async fn authorize(
        &self,
        name: &str,
        parts: &EventParts<'_>,
        invoked: &mut Vec<(String, bool)>,
    ) -> Result<Value, (Response, String)> {
        let internal = |note: String| (Response::message(500, "Internal Server Error"), note);
        let authorizer = self
            .authorizers
            .get(name)
            .ok_or_else(|| internal(format!("no authorizer {name}")))?;
        let mut identity = Vec::new();
        for header in &authorizer.identity_headers {
            match parts.headers.get(&header.to_ascii_lowercase()) {
                Some(value) if !value.is_empty() => identity.push(value.clone()),
                // API Gateway answers by itself; the authorizer is not called.
                _ => {
                    return Err((
                        Response::message(401, "Unauthorized"),
                        format!("no {header} header"),
                    ))
                }
            }
        }
        let cache_key = (name.to_owned(), identity.join(","));
        if authorizer.reauthorize_every > 0 {
            if let Ok(cache) = self.cache.lock() {
                if let Some((until, decision)) = cache.get(&cache_key) {
                    if Instant::now() < *until {
                        return decision.clone().ok_or_else(|| {
                            (
                                Response::message(403, "Forbidden"),
                                "denied (cached)".into(),
                            )
                        });
                    }
                }
            }
        }
        let pool = self
            .pools
            .get(&authorizer.function)
            .ok_or_else(|| internal(format!("no emulator for {}", authorizer.function)))?;
        let invocation = pool
            .invoke(&self.client, &parts.authorizer_event(identity))
            .await;
        invoked.push((pool.binary.clone(), invocation.cold));
        let decision = match invocation.outcome {
            Outcome::Answer(answer) => match answer.get("isAuthorized").and_then(Value::as_bool) {
                Some(true) => Some(match answer.get("context") {
                    Some(Value::Object(context)) => Value::Object(context.clone()),
                    _ => json!({}),
                }),
                Some(false) => None,
                None => {
                    return Err(internal(
                        "the authorizer's answer has no isAuthorized".into(),
                    ))
                }
            },
            // A failing authorizer is an authorizer configuration error to API Gateway: 500.
            Outcome::FunctionError(error) => {
                return Err(internal(format!(
                    "the authorizer failed: {}",
                    error["errorType"]
                )))
            }
            Outcome::Unavailable(e) => return Err(internal(format!("the authorizer: {e}"))),
        };
        if authorizer.reauthorize_every > 0 {
            if let Ok(mut cache) = self.cache.lock() {
                let until = Instant::now() + Duration::from_secs(authorizer.reauthorize_every);
                cache.insert(cache_key, (until, decision.clone()));
            }
        }
        decision.ok_or_else(|| (Response::message(403, "Forbidden"), "denied".into()))
    }

    /// Stops every emulator (and with them the function processes).
    pub fn stop(self) {
        let stopping: Vec<_> = self
            .pools
            .into_values()
            .map(|pool| std::thread::spawn(move || pool.stop()))
            .collect();
        for handle in stopping {
            let _ = handle.join();
        }
    }
}

/// `<dir>/<binary>/bootstrap` (cargo lambda) or `<dir>/<LogicalId>/bootstrap` (sam build).
pub fn locate_bootstrap(dir: &Path, function: &FunctionDef) -> Result<PathBuf, String> {
    [&function.binary, &function.logical_id]
        .iter()
        .map(|name| dir.join(name).join("bootstrap"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no bootstrap for {} in {} (looked for {}/bootstrap and {}/bootstrap): run ./scripts/run, which builds it",
                function.logical_id,
                dir.display(),
                function.binary,
                function.logical_id
            )
        })
}

/// The parts of a request both events share.
struct EventParts<'a> {
    request: &'a Request,
    route: &'a Route,
    params: BTreeMap<String, String>,
    /// Lower-case names, repeated headers joined with commas; cookies moved to `cookies`.
    headers: BTreeMap<String, String>,
    cookies: Vec<String>,
    context: Value,
}

impl<'a> EventParts<'a> {
    fn new(
        request: &'a Request,
        route: &'a Route,
        params: BTreeMap<String, String>,
        request_id: &str,
        domain: &str,
    ) -> EventParts<'a> {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        let mut cookies = Vec::new();
        for (name, value) in &request.headers {
            let name = name.to_ascii_lowercase();
            if name == "cookie" {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
                continue;
            }
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push(',');
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        // What API Gateway adds on the way in.
        let forwarded_for = match headers.get("x-forwarded-for") {
            Some(chain) => format!("{chain}, {}", request.source_ip),
            None => request.source_ip.clone(),
        };
        headers.insert("x-forwarded-for".into(), forwarded_for);
        headers.insert("x-forwarded-proto".into(), "http".into());
        if let Some(port) = domain.rsplit_once(':').map(|(_, p)| p.to_owned()) {
            headers.insert("x-forwarded-port".into(), port);
        }
        let now = chrono::Utc::now();
        headers.insert(
            "x-amzn-trace-id".into(),
            format!("Root=1-{:08x}-{}", now.timestamp(), random_hex(12)),
        );
        let context = json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(['.', ':']).next().unwrap_or(domain),
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route.key(),
            "stage": STAGE,
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        });
        EventParts {
            request,
            route,
            params,
            headers,
            cookies,
            context,
        }
    }

    /// The fields both events carry, in API Gateway's order.
    fn common(&self, event: &mut Map<String, Value>) {
        event.insert("routeKey".into(), self.route.key().into());
        event.insert("rawPath".into(), self.request.raw_path.clone().into());
        event.insert(
            "rawQueryString".into(),
            self.request.raw_query.clone().into(),
        );
        if !self.cookies.is_empty() {
            event.insert("cookies".into(), json!(self.cookies));
        }
        event.insert("headers".into(), json!(self.headers));
        let query = query_parameters(&self.request.raw_query);
        if !query.is_empty() {
            event.insert("queryStringParameters".into(), json!(query));
        }
    }

    /// The HTTP API payload 2.0 event of the route's integration.
    fn route_event(&self, authorizer_context: Option<Value>) -> Value {
        let mut event = Map::new();
        event.insert("version".into(), "2.0".into());
        self.common(&mut event);
        let mut context = self.context.clone();
        if let Some(lambda) = authorizer_context {
            context["authorizer"] = json!({ "lambda": lambda });
        }
        event.insert("requestContext".into(), context);
        if !self.params.is_empty() {
            event.insert("pathParameters".into(), json!(self.params));
        }
        let body = &self.request.body;
        let text = is_text(self.headers.get("content-type").map(String::as_str))
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        if !body.is_empty() {
            let encoded = match text {
                Some(text) => text.to_owned(),
                None => STANDARD.encode(body),
            };
            event.insert("body".into(), encoded.into());
        }
        event.insert(
            "isBase64Encoded".into(),
            (!body.is_empty() && text.is_none()).into(),
        );
        Value::Object(event)
    }

    /// The HTTP API Lambda authorizer request, payload format 2.0.
    fn authorizer_event(&self, identity: Vec<String>) -> Value {
        let mut event = Map::new();
        event.insert("version".into(), "2.0".into());
        event.insert("type".into(), "REQUEST".into());
        event.insert(
            "routeArn".into(),
            format!(
                "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{}{}",
                self.request.method, self.request.raw_path
            )
            .into(),
        );
        event.insert("identitySource".into(), json!(identity));
        self.common(&mut event);
        event.insert("requestContext".into(), self.context.clone());
        if !self.params.is_empty() {
            event.insert("pathParameters".into(), json!(self.params));
        }
        Value::Object(event)
    }
}

/// `queryStringParameters`: decoded, repeated names joined with commas (as API Gateway does).
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        parameters
            .entry(decode(name))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&decode(value));
            })
            .or_insert_with(|| decode(value));
    }
    parameters
}

/// Bodies API Gateway passes as text; everything else arrives base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("/json")
        || essence.ends_with("+json")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml")
        || essence == "application/javascript"
}

/// The function's payload 2.0 answer as an HTTP response. An answer without `statusCode` is a
/// 200 with the answer as its JSON body, as API Gateway infers.
pub fn http_response(answer: &Value) -> Result<Response, String> {
    let Some(fields) = answer.as_object().filter(|f| f.contains_key("statusCode")) else {
        return Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(answer.to_string()),
        });
    };
    let status = fields["statusCode"]
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", fields["statusCode"]))?
        as u16;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut headers = Vec::new();
    if let Some(single) = fields.get("headers").and_then(Value::as_object) {
        headers.extend(single.iter().map(|(k, v)| (k.clone(), text(v))));
    }
    if let Some(multi) = fields.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                continue;
            }
            for value in values.as_array().into_iter().flatten() {
                headers.push((name.clone(), text(value)));
            }
        }
    }
    for cookie in fields
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        headers.push(("set-cookie".into(), text(cookie)));
    }
    let body = match fields.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(body)) if fields["isBase64Encoded"] == true => Bytes::from(
            STANDARD
                .decode(body)
                .map_err(|e| format!("isBase64Encoded body is not base64: {e}"))?,
        ),
        Some(Value::String(body)) => Bytes::from(body.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// An id in API Gateway's style (`Ab3wHjYfoAMEV4A=`).
fn request_id() -> String {
    let mut bytes = [0u8; 10];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    STANDARD.encode(bytes)
}

fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
