//! Leaked tokens, revoked the minute they are reported: by GitHub's secret scanning (`github`,
//! `POST /api/v1/secret-scanning/github`, signed by GitHub) or by anyone who holds one
//! (`POST /api/v1/credentials/revoke`, here). Each revocation is logged in its transaction
//! (`leak_revoke_app_specific_token`, with the report's `url` and `source`) and its owner is
//! told by an EventBridge event [`DETAIL_TYPE`] on the bundle's bus.
//!
//! DynamoDB cost per distinct reported text: none when it is not a well-formed secret of the
//! deployment's format (prefix, length, CRC), one GetItem when it authenticates nothing, and
//! GetItem + GetItem + one transaction when it is live and gets revoked.

pub mod github;

use crate::app::App;
use crate::error::ApiError;
use crate::events::{Event, EventBus};
use crate::http;
use crate::identity::request_audit;
use crate::response::empty_response;
use crate::store::{Actor, Audit, LeakReport, LeakRevoked};
use crate::tokens::SecretDigest;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::{self, StreamExt};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The `detail-type` of the event that tells an owner their token leaked and was revoked.
pub const DETAIL_TYPE: &str = "Personal Access Token Leaked";
/// A public revocation names at most this many credentials.
pub const MAX_CREDENTIALS: usize = 1_000;
/// ... in a body of at most this many bytes.
pub const MAX_REVOKE_BODY_BYTES: usize = 256 * 1024;
/// Reported secrets looked up (and revoked) at once.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// One reported text and where it was found.
#[derive(Debug, Clone)]
pub struct Reported<'a> {
    pub text: &'a str,
    pub report: LeakReport,
}

/// Who reported a leak, as the event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    GithubSecretScanning,
    PublicRevocation,
}

impl Reporter {
    fn as_str(self) -> &'static str {
        match self {
            Reporter::GithubSecretScanning => "github_secret_scanning",
            Reporter::PublicRevocation => "public_revocation",
        }
    }
}

/// Revokes the live token of each reported text (checked offline first; a text reported twice
/// is looked up once) and publishes one event per revoked token. Returns, for each report in
/// order, whether its text was a live secret that is now revoked. A store failure is `Err`
/// after the revocations that succeeded were published: a retry of the same report is safe.
pub async fn revoke_reported(
    app: &App,
    bus: &EventBus,
    reported: &[Reported<'_>],
    audit: &Audit,
    reporter: Reporter,
) -> Result<Vec<bool>, ApiError> {
    let format = &app.config.secret_format;
    let digests: Vec<Option<SecretDigest>> = reported
        .iter()
        .map(|r| format.parse(r.text).ok().map(|secret| secret.digest()))
        .collect();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for (index, digest) in digests.iter().enumerate() {
        if let Some(digest) = digest {
            first_of.entry(digest.to_hex()).or_insert(index);
        }
    }
    let mut distinct: Vec<usize> = first_of.values().copied().collect();
    distinct.sort_unstable();
    let outcomes: Vec<(usize, Result<Option<LeakRevoked>, _>)> =
        stream::iter(distinct.into_iter().filter_map(|index| {
            let digest = digests[index]?;
            let audit = Audit {
                leak: Some(reported[index].report.clone()),
                ..audit.clone()
            };
            Some(async move { (index, app.store.revoke_leaked(&digest, &audit).await) })
        }))
        .buffer_unordered(LOOKUPS_IN_FLIGHT)
        .collect()
        .await;

    let mut revoked_at: HashMap<usize, bool> = HashMap::new();
    let mut events = Vec::new();
    let mut failure = None;
    for (index, outcome) in outcomes {
        match outcome {
            Ok(Some(token)) => {
                tracing::warn!(user_id = token.user_id, token_uuid = %token.token_uuid,
                    reporter = reporter.as_str(), "leaked token revoked");
                events.push(event(&token, &reported[index].report, reporter, audit.at));
                revoked_at.insert(index, true);
            }
            Ok(None) => {}
            Err(error) => failure = Some(error),
        }
    }
    if !events.is_empty() {
        let accepted = bus.publish(&events).await;
        let refused = accepted.iter().filter(|ok| !**ok).count();
        if refused > 0 {
            tracing::error!(
                refused,
                "leak events refused by EventBridge; the revocations stand and are in the audit log"
            );
        }
    }
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(digests
        .iter()
        .map(|digest| {
            digest
                .and_then(|d| first_of.get(&d.to_hex()))
                .is_some_and(|index| revoked_at.contains_key(index))
        })
        .collect())
}

/// The owner's notice: who, which token, where it was found, who reported it, when.
fn event(token: &LeakRevoked, report: &LeakReport, reporter: Reporter, at: DateTime<Utc>) -> Event {
    Event {
        detail_type: DETAIL_TYPE,
        detail: json!({
            "user_id": token.user_id,
            "uuid": token.token_uuid,
            "title": token.title,
            "url": report.url,
            "source": report.source,
            "reported_by": reporter.as_str(),
            "revoked_at": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }),
    }
}

/// `POST /api/v1/credentials/revoke` `{"credentials": ["<secret>", ...]}` → 202, whatever
/// matched (the answer reveals nothing); entries that are not strings or not secrets are
/// skipped. No authorizer: whoever finds a leaked token can kill it.
pub async fn revoke_credentials(app: &App, bus: &EventBus, request: Request) -> Response<Body> {
    crate::quay::respond(&request, revoke(app, bus, &request, Utc::now())).await
}

async fn revoke(
    app: &App,
    bus: &EventBus,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let body = http::json_body(request, MAX_REVOKE_BODY_BYTES)?;
    const SHAPE: &str = "'credentials' must be an array of at most 1000 strings";
    let credentials = match body.get("credentials") {
        Some(Value::Array(items)) if items.len() <= MAX_CREDENTIALS => items,
        _ if !body.is_object() => return Err(ApiError::bad("JSON body must be an object")),
        _ => return Err(ApiError::bad_field("credentials", SHAPE)),
    };
    let reported: Vec<Reported> = credentials
        .iter()
        .filter_map(Value::as_str)
        .map(|text| Reported {
            text,
            report: LeakReport::new(None, Some("public_revocation")),
        })
        .collect();
    let audit = request_audit(request, Actor::System, now);
    revoke_reported(app, bus, &reported, &audit, Reporter::PublicRevocation).await?;
    Ok(empty_response(StatusCode::ACCEPTED))
}
