//! `GET /api/v1/user/logs`: the caller's audit log, as Quay's `listUserLogs` answers it.
//! `starttime` / `endtime` are days (`%m/%d/%Y`, UTC; `endtime` includes its whole day); with
//! neither, the last day. Newest first, `LOGS_PER_PAGE` a page, `next_page` to continue. Needs
//! `user:read` or `user:admin`. One strongly consistent Query a page.

use crate::app::App;
use crate::dates;
use crate::error::ApiError;
use crate::http;
use crate::identity::authenticate_for;
use crate::quay;
use crate::response::json_response;
use crate::store::{is_log_sk_within, LogEntry};
use crate::tokens::scopes::READ_TOKENS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Entries a page (Quay's page size).
pub const LOGS_PER_PAGE: i32 = 20;
/// The longest range one request may ask for.
pub const MAX_RANGE_DAYS: i64 = 31;

/// `GET /api/v1/user/logs` → 200 `{start_time, end_time, logs, next_page?}`.
pub async fn list_user_logs(app: &App, request: Request) -> Response<Body> {
    quay::respond(&request, list(app, &request, Utc::now())).await
}

async fn list(
    app: &App,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::GET)?;
    let caller = authenticate_for(app, request, now, READ_TOKENS).await?;
    let day = |name: &'static str| -> Result<Option<DateTime<Utc>>, ApiError> {
        match http::query_parameter(request, name) {
            None => Ok(None),
            Some(text) => NaiveDate::parse_from_str(text.trim(), "%m/%d/%Y")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|at| Some(at.and_utc()))
                .ok_or_else(|| {
                    let shown: String = text.chars().take(40).collect();
                    ApiError::bad_field(
                        name,
                        format!("'{name}' must be a date as MM/DD/YYYY, not {shown:?}"),
                    )
                }),
        }
    };
    let end = match day("endtime")? {
        Some(at) => at.checked_add_signed(Duration::days(1)).unwrap_or(at),
        None => now,
    };
    let start = match day("starttime")? {
        Some(at) => at,
        None => end - Duration::days(1),
    };
    if start >= end {
        return Err(ApiError::bad_field(
            "starttime",
            "'starttime' must not be after 'endtime'",
        ));
    }
    if end - start > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::bad_field(
            "endtime",
            format!("'starttime' to 'endtime' may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let after = match http::query_parameter(request, "next_page") {
        None => None,
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|sk| is_log_sk_within(sk, start, end))
                .ok_or_else(|| {
                    ApiError::bad_field(
                        "next_page",
                        "'next_page' is not a page this API gave for this starttime and endtime",
                    )
                })?,
        ),
    };
    let page = app
        .store
        .log_page(&caller.user_id, start, end, after.as_deref(), LOGS_PER_PAGE)
        .await?;
    let logs: Vec<Value> = page
        .entries
        .iter()
        .map(|e| view(e, &caller.user_id))
        .collect();
    let mut answer = json!({
        "start_time": Rfc2822(start),
        "end_time": Rfc2822(end),
        "logs": logs,
    });
    if let Some(next) = page.next {
        answer["next_page"] = URL_SAFE_NO_PAD.encode(next.as_bytes()).into();
    }
    Ok(json_response(StatusCode::OK, &answer))
}

/// One entry as Quay shows it: its kind, Quay's metadata (plus ours: how the change was made,
/// the token that made it, the user agent), the source IP, the time, and the performer (the user).
fn view(entry: &LogEntry, user_id: &str) -> Value {
    let mut metadata = Map::new();
    metadata.insert(
        "app_specific_token_title".into(),
        entry.title.clone().into(),
    );
    metadata.insert("app_specific_token".into(), entry.token_uuid.clone().into());
    metadata.insert("performed_with".into(), entry.actor.clone().into());
    if let Some(uuid) = &entry.actor_token {
        metadata.insert("performer_token".into(), uuid.clone().into());
    }
    if let Some(agent) = &entry.user_agent {
        metadata.insert("user_agent".into(), agent.clone().into());
    }
    if let Some(url) = &entry.url {
        metadata.insert("url".into(), url.clone().into());
    }
    if let Some(source) = &entry.source {
        metadata.insert("source".into(), source.clone().into());
    }
    // The performer is the log's user, as the contract has it; `performed_with` tells a change
    // this service made (cleanup) from the user's own.
    json!({
        "kind": entry.kind,
        "metadata": metadata,
        "ip": entry.ip,
        "datetime": Rfc2822(entry.at()),
        "performer": {"kind": "user", "name": user_id, "is_robot": false},
    })
}

/// A date as Quay writes it.
struct Rfc2822(DateTime<Utc>);

impl Serialize for Rfc2822 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        dates::serialize_rfc2822(&self.0, s)
    }
}
