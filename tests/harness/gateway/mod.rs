//! API Gateway (HTTP API) in front of the real function binaries, as the deployed stack has it.
//! Routes and the Lambda authorizer come from `template.yaml`; each request becomes the payload
//! 2.0 event API Gateway sends, runs on the function's binary under the Lambda runtime
//! emulator, and the function's answer becomes the HTTP response. What API Gateway answers by
//! itself is copied too: 404 for an unknown route (without a `$default` route), 401 without the identity header (the
//! authorizer is not called), 403 when the authorizer denies, 500 when a function fails.

//!
//! Split as cargo-lambda's own emulator is: `routes` (matching a request to a route),
//! `pool` (the emulator instances of each function, warm and cold), `event` (the payload 2.0
//! events in, the HTTP response out), and here the gateway that ties them together, with its
//! authorizer and result cache.

mod event;
mod pool;
mod routes;

pub use event::{http_response, Request, Response};
pub use pool::{FunctionPool, Invocation, Outcome};
pub use routes::{percent_decode, Route, DEFAULT_ROUTE};

use crate::template::{FunctionDef, LambdaAuthorizer, Template};
use event::{request_id, EventParts};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pool::InvokeClient;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const ACCOUNT_ID: &str = "123456789012";
pub const API_ID: &str = "local";
pub const STAGE: &str = "$default";
pub const REGION: &str = "us-east-1";
/// API Gateway's largest request body.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// HTTP API gives an integration at most 30 s.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A served request: the response and the functions it ran (binary name, whether cold).
#[derive(Debug)]
pub struct Served {
    pub response: Response,
    pub invoked: Vec<(String, bool)>,
    /// Why the gateway answered by itself, when it did (never includes secrets).
    pub note: Option<String>,
}

/// Until when, and the context when allowed (`None`: denied).
type CachedDecision = (Instant, Option<Value>);

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
