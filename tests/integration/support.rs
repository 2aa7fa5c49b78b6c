//! Per-test environment: a fresh table (from template.yaml) on the run's DynamoDB Local, an
//! `App` over it, and events from `events/` with the caller and body a test needs.

use chrono::{DateTime, Duration, Utc};
use harness::dynamodb_local::RequestCounter;
use harness::fresh::{fresh_app, FreshApp};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::tokens::Secret;
use shared::App;
use std::collections::HashMap;

pub struct TestEnv {
    pub app: App,
    pub client: aws_sdk_dynamodb::Client,
    pub requests: RequestCounter,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        TestEnv::with_config(&[]).await
    }

    /// A fresh table, and config from these variables over the defaults.
    pub async fn with_config(vars: &[(&str, &str)]) -> TestEnv {
        let FreshApp {
            app,
            client,
            requests,
        } = fresh_app("tokens", vars).await;
        TestEnv {
            app,
            client,
            requests,
        }
    }

    pub fn with_page_size(mut self, size: i32) -> TestEnv {
        self.app.store = self.app.store.clone().with_page_size(size);
        self
    }

    pub fn table(&self) -> &str {
        self.app.store.table()
    }

    /// Turns the table's TTL off. DynamoDB Local deletes items whose `ttl` has passed, a few a
    /// second (DynamoDB within days): tokens a test seeds already past their grace would vanish
    /// while it waits for the sweep index or runs the sweep, which never reads `ttl`. Tests of
    /// the sweep call this before seeding, so that only the sweep removes tokens.
    pub async fn without_ttl_deletion(&self) {
        let off = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(shared::store::items::TTL)
            .enabled(false)
            .build()
            .expect("a TTL specification");
        self.client
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(off)
            .send()
            .await
            .expect("UpdateTimeToLive");
    }

    /// Every item in the table but the audit log's (`tests/integration/audit.rs` reads those):
    /// tokens, lookup records, counters and title counts.
    pub async fn scan_all(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let is_log = |item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
            item.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("LOG#"))
        };
        let mut items = self.scan_everything().await;
        items.retain(|item| !is_log(item));
        items
    }

    /// Every item in the table, as DynamoDB's JSON (for "the secret is stored nowhere").
    pub async fn scan_everything(
        &self,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(self.table())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            items.extend(page.expect("scan").items.unwrap_or_default());
        }
        items
    }
}

pub use harness::events::{as_user, event, with_body};

pub fn request(event: &Value) -> Request {
    if let Some(route_key) = event["routeKey"].as_str() {
        requested_route(route_key);
    }
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway HTTP API event")
}

thread_local! {
    /// The routes this test thread has made requests for, latest last.
    static ROUTES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// The same, from every thread (for tests whose tasks move between threads).
static ANY_ROUTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn requested_route(route_key: &str) {
    let remember = |routes: &mut Vec<String>| {
        routes.retain(|r| r != route_key);
        routes.push(route_key.to_owned());
    };
    ROUTES.with(|routes| remember(&mut routes.borrow_mut()));
    remember(&mut ANY_ROUTES.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Every answer is held to openapi.yaml: the operation of the request it answers (the latest
/// documented route this thread requested; where tasks interleave, any route it requested).
fn check_against_document(answer: &Answer) {
    let mut routes = ROUTES.with(|routes| routes.borrow().clone());
    if routes.is_empty() {
        routes = ANY_ROUTES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    }
    let document = harness::openapi::document();
    let Some(latest) = routes.last().filter(|r| document.has_operation(r)) else {
        // No route requested (an authorizer test), or `$default`: the fallback's answers
        // have no operation of their own; its tests check them.
        return;
    };
    let headers: HashMap<String, String> = answer
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let first = document.check(latest, answer.status, &headers, &answer.text);
    if first.is_ok()
        || routes.iter().rev().skip(1).any(|route| {
            document
                .check(route, answer.status, &headers, &answer.text)
                .is_ok()
        })
    {
        return;
    }
    if let Err(problem) = first {
        panic!("an answer outside openapi.yaml: {problem}");
    }
}

/// The event with no caller at all: no authorizer in its request context.
/// The secret in an event's `Authorization: Bearer` header.
pub fn event_secret(event: &Value) -> Secret {
    let header = event["headers"]["authorization"]
        .as_str()
        .unwrap_or_default();
    Secret::parse(header.trim_start_matches("Bearer ").trim()).expect("a well-formed PAT")
}

/// A token of `user` holding `scopes`, expiring after `lifetime`, issued as a create issues it
/// (a title of its own, logged as the service's).
pub async fn issue_token<S: AsRef<str>>(
    env: &TestEnv,
    user: &str,
    scopes: &[S],
    lifetime: Duration,
) -> shared::tokens::IssuedToken {
    let now = Utc::now();
    env.app
        .issue(
            user,
            format!("issued {}", uuid::Uuid::new_v4()),
            Some(now + lifetime),
            scopes.iter().map(|s| s.as_ref().to_owned()).collect(),
            shared::store::TitleRule::Shared,
            &shared::store::Audit::system(now),
        )
        .await
        .expect("token issued")
}

/// Stores a live token of `user` (expiring in a day) whose secret is `secret`.
pub async fn seed_pat(env: &TestEnv, user: &str, secret: &Secret) -> shared::tokens::Token {
    let now = Utc::now();
    let new = shared::store::NewToken {
        user_id: user.into(),
        uuid: uuid::Uuid::new_v4(),
        title: "seeded".into(),
        created: shared::tokens::truncate_to_millis(now),
        expires: Some(shared::tokens::truncate_to_millis(now + Duration::days(1))),
        scopes: None,
    };
    env.app
        .store
        .create_token(
            new,
            &secret.digest(),
            env.app.config.max_tokens_per_user,
            Duration::days(1),
        )
        .await
        .expect("seeded token")
}

pub fn without_caller(mut event: Value) -> Value {
    if let Some(context) = event["requestContext"].as_object_mut() {
        context.remove("authorizer");
    }
    event
}

/// A Quay date (RFC 2822, UTC written as `-0000`).
pub fn rfc2822(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a date string: {value}"));
    assert!(text.ends_with(" -0000"), "{text}");
    DateTime::parse_from_rfc2822(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The response as a test reads it. Every answer of every route carries the headers that keep
/// a secret out of caches and stop content sniffing; this checks them on each one.
pub fn answer(response: Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(
            parts.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} on a {} answer",
            parts.status
        );
    }
    let text = match body {
        Body::Empty => String::new(),
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8(b).expect("utf-8 body"),
        _ => String::new(),
    };
    let answer = Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        text,
    };
    check_against_document(&answer);
    answer
}

/// Asserts a Quay ApiError body of this status and kind, and returns its detail.
pub fn assert_quay_error(answer: &Answer, status: u16, kind: &str) -> String {
    assert_eq!(answer.status, status, "body: {}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["title"], kind);
    assert_eq!(body["error_type"], kind);
    assert_eq!(body["error_message"], body["detail"]);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/error/{kind}")),
        "{body}"
    );
    body["detail"].as_str().expect("detail").to_owned()
}

/// Asserts an Unleash error body of this status and name, and returns its message.
pub fn assert_unleash_error(answer: &Answer, status: u16, name: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    let id = uuid::Uuid::parse_str(body["id"].as_str().expect("id")).expect("id is a uuid");
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(body["name"], name, "{body}");
    let message = body["message"].as_str().expect("message").to_owned();
    assert_eq!(body["details"][0]["message"], message.as_str());
    message
}
