//! The audit log: one item per change to a token, written in the transaction of the change (no
//! change without its entry, no entry without its change), under the user's partition
//! (`LOG#<ms>#<id>`), removed by TTL after the configured retention. Never a secret or a digest.

use super::dynamo::{build_error, classify, parse_item, to_item};
use super::items::{self, Key};
use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The user, signed in (a session JWT).
    Session,
    /// The user, through one of their tokens.
    Token(Uuid),
    /// This service itself (cleanup), or an anonymous reporter (leaked tokens).
    System,
}

/// The circumstances of a change, as its log entry records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub actor: Actor,
    /// The caller's source IP (API Gateway's `requestContext.http.sourceIp`).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub at: DateTime<Utc>,
    /// Where a leaked secret was found, as its report says (leak revocations only).
    pub leak: Option<LeakReport>,
}

/// A leak report's `url` (where the secret was seen) and `source` (GitHub's `content`,
/// `commit`, ...), each at most [`MAX_REPORT_CHARS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    pub url: Option<String>,
    pub source: Option<String>,
}

/// A log entry keeps at most this much of a report's `url` and of its `source`.
pub const MAX_REPORT_CHARS: usize = 2_048;

impl LeakReport {
    pub fn new(url: Option<&str>, source: Option<&str>) -> LeakReport {
        let bounded = |text: Option<&str>| {
            text.filter(|t| !t.is_empty())
                .map(|t| t.chars().take(MAX_REPORT_CHARS).collect())
        };
        LeakReport {
            url: bounded(url),
            source: bounded(source),
        }
    }
}

impl Audit {
    /// A change made by this service (cleanup's expiry removal).
    pub fn system(at: DateTime<Utc>) -> Audit {
        Audit {
            actor: Actor::System,
            ip: None,
            user_agent: None,
            at,
            leak: None,
        }
    }
}

/// How long entries are kept unless configured (`AUDIT_LOG_RETENTION`).
pub fn default_retention() -> Duration {
    Duration::days(400)
}

/// What happened, in Quay's log kinds (ours: rotate, expire, leak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Create,
    Revoke,
    Rotate,
    Expire,
    LeakRevoke,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Create => "create_app_specific_token",
            LogKind::Revoke => "revoke_app_specific_token",
            LogKind::Rotate => "rotate_app_specific_token",
            LogKind::Expire => "expire_app_specific_token",
            LogKind::LeakRevoke => "leak_revoke_app_specific_token",
        }
    }
}

/// One entry, as stored (written with `to_item`, read back with `parse_item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub pk: String,
    pub sk: String,
    /// A `LogKind`'s name.
    pub kind: String,
    pub at_ms: i64,
    pub token_uuid: String,
    pub title: String,
    /// `session`, `token` or `system`.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A leak revocation's report: where the secret was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Epoch seconds of the end of its retention.
    pub ttl: i64,
}

impl LogEntry {
    pub fn at(&self) -> DateTime<Utc> {
        items::from_millis(self.at_ms)
    }
}

/// A page of entries, newest first, and where the next page starts (`sk` of the last one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    pub next: Option<String>,
}

const LOG_SK_PREFIX: &str = "LOG#";

/// `LOG#<ms, 13 digits>#<id>`: sorts by time; the id keeps two entries of one millisecond apart.
fn log_sk(at: DateTime<Utc>, id: &Uuid) -> String {
    format!("{LOG_SK_PREFIX}{:013}#{id}", at.timestamp_millis().max(0))
}

/// The lowest and highest sort keys of entries within `[from, to)`.
fn sk_bounds(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    let ms = |at: DateTime<Utc>| at.timestamp_millis().max(0);
    (
        format!("{LOG_SK_PREFIX}{:013}#", ms(from)),
        format!("{LOG_SK_PREFIX}{:013}#", ms(to)),
    )
}

/// Whether `sk` is a log entry's sort key of the range `[from, to)` (a `next_page` a client
/// sends back must be: DynamoDB refuses a start key outside the key condition).
pub fn is_log_sk_within(sk: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (low, high) = sk_bounds(from, to);
    is_log_sk(sk) && low.as_str() <= sk && sk <= high.as_str()
}

/// Whether `sk` is a log entry's sort key.
fn is_log_sk(sk: &str) -> bool {
    sk.strip_prefix(LOG_SK_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .is_some_and(|(ms, id)| {
            ms.len() == 13 && ms.bytes().all(|b| b.is_ascii_digit()) && Uuid::parse_str(id).is_ok()
        })
}

impl Store {
    /// The Put of a change's entry, for the change's transaction.
    pub(crate) fn log_put(
        &self,
        user_id: &str,
        kind: LogKind,
        token_uuid: &Uuid,
        title: &str,
        audit: &Audit,
    ) -> Result<TransactWriteItem, StoreError> {
        let (actor, actor_token) = match &audit.actor {
            Actor::Session => ("session", None),
            Actor::Token(uuid) => ("token", Some(uuid.to_string())),
            Actor::System => ("system", None),
        };
        let keep_until = audit
            .at
            .checked_add_signed(self.log_retention)
            .unwrap_or(audit.at);
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let entry = LogEntry {
            pk: items::user_pk(user_id),
            sk: log_sk(audit.at, &Uuid::new_v4()),
            kind: kind.as_str().to_owned(),
            at_ms: audit.at.timestamp_millis(),
            token_uuid: token_uuid.to_string(),
            title: title.to_owned(),
            actor: actor.to_owned(),
            actor_token,
            ip: given(&audit.ip),
            user_agent: given(&audit.user_agent),
            url: audit.leak.as_ref().and_then(|l| l.url.clone()),
            source: audit.leak.as_ref().and_then(|l| l.source.clone()),
            ttl: keep_until.timestamp(),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&entry)?))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One strongly consistent Query: the user's entries within `[from, to)`, newest first, at
    /// most `limit`, continuing below `after` (a previous page's `next`).
    pub async fn log_page(
        &self,
        user_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&str>,
        limit: i32,
    ) -> Result<LogPage, StoreError> {
        let (low, high) = sk_bounds(from, to);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#sk", items::SK)
            .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user_id)))
            .expression_attribute_values(":low", AttributeValue::S(low))
            .expression_attribute_values(":high", AttributeValue::S(high))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(limit);
        if let Some(after) = after {
            let start: Key = items::key(items::user_pk(user_id), after.to_owned());
            query = query.set_exclusive_start_key(Some(start));
        }
        let output = query.send().await.map_err(classify)?;
        let entries = output
            .items()
            .iter()
            .cloned()
            .map(parse_item)
            .collect::<Result<Vec<LogEntry>, _>>()?;
        let next = output
            .last_evaluated_key()
            .and_then(|key| key.get(items::SK))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(LogPage { entries, next })
    }
}
