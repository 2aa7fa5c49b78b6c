//! Item types and key formats: the only place that names DynamoDB attributes.
//! The README's item table documents exactly these.
//!
//! | item    | pk                 | sk              | what it holds |
//! |---------|--------------------|-----------------|---------------|
//! | token   | `USER#<user id>`   | `TOKEN#<uuid>`  | the token's fields, its secret's digest, `ttl`, sweep-index keys |
//! | counter | `USER#<user id>`   | `COUNTER`       | `last_number` (Unleash ids issued), `live` (upper bound of live tokens) |
//! | lookup  | `SECRET#<sha256>`  | `SECRET`        | the owner and uuid the secret authenticates, expiry, last used, `ttl` |

use crate::tokens::{SecretDigest, Token};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const NUMBER: &str = "number";
pub const DIGEST: &str = "digest";
pub const EXPIRES_MS: &str = "expires_ms";
pub const LAST_USED_MS: &str = "last_used_ms";
pub const TTL: &str = "ttl";
pub const SWEEP_BUCKET: &str = "sweep_bucket";
pub const SWEEP_AT: &str = "sweep_at";
pub const LAST_NUMBER: &str = "last_number";
pub const LIVE: &str = "live";

/// Local secondary index: a user's tokens by Unleash integer id (projects `digest`, `expires_ms`).
pub const NUMBER_INDEX: &str = "by_number";
/// Sparse global secondary index: expiring tokens by the day they become due for cleanup
/// (`sweep_bucket`) and the second they do (`sweep_at`); projects `digest`.
pub const SWEEP_INDEX: &str = "sweep";

pub const TOKEN_SK_PREFIX: &str = "TOKEN#";
pub const COUNTER_SK: &str = "COUNTER";
pub const SECRET_SK: &str = "SECRET";

pub fn user_pk(user_id: &str) -> String {
    format!("USER#{user_id}")
}

pub fn token_sk(uuid: &Uuid) -> String {
    format!("{TOKEN_SK_PREFIX}{uuid}")
}

pub fn secret_pk(digest: &SecretDigest) -> String {
    format!("SECRET#{}", digest.to_hex())
}

pub fn sweep_bucket(due: DateTime<Utc>) -> String {
    format!("SWEEP#{}", due.format("%Y-%m-%d"))
}

/// When an expiring token becomes due for removal: expiry plus grace. Also the TTL value.
pub fn sweep_due(expires: DateTime<Utc>, grace: Duration) -> DateTime<Utc> {
    expires + grace
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenItem {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    pub token_uuid: Uuid,
    pub number: u64,
    pub title: String,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<i64>,
    pub digest: String,
    /// Epoch seconds of expiry + grace; absent for tokens that never expire (DynamoDB TTL ignores them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupItem {
    pub pk: String,
    pub sk: String,
    pub user_id: String,
    pub token_uuid: Uuid,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl TokenItem {
    pub fn new(token: &Token, digest: &SecretDigest, grace: Duration) -> TokenItem {
        let due = token.expires.map(|at| sweep_due(at, grace));
        TokenItem {
            pk: user_pk(&token.user_id),
            sk: token_sk(&token.uuid),
            user_id: token.user_id.clone(),
            token_uuid: token.uuid,
            number: token.number,
            title: token.title.clone(),
            created_ms: token.created.timestamp_millis(),
            expires_ms: token.expires.map(|at| at.timestamp_millis()),
            last_used_ms: token.last_used.map(|at| at.timestamp_millis()),
            digest: digest.to_hex(),
            ttl: due.map(|at| at.timestamp()),
            sweep_bucket: due.map(sweep_bucket),
            sweep_at: due.map(|at| at.timestamp()),
        }
    }

    pub fn lookup(&self) -> LookupItem {
        LookupItem {
            pk: format!("SECRET#{}", self.digest),
            sk: SECRET_SK.to_owned(),
            user_id: self.user_id.clone(),
            token_uuid: self.token_uuid,
            digest: self.digest.clone(),
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            ttl: self.ttl,
        }
    }

    pub fn to_token(&self) -> Token {
        Token {
            user_id: self.user_id.clone(),
            uuid: self.token_uuid,
            number: self.number,
            title: self.title.clone(),
            created: from_millis(self.created_ms),
            expires: self.expires_ms.map(from_millis),
            last_used: self.last_used_ms.map(from_millis),
        }
    }
}

pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
