//! Item types and key formats: the only place that names DynamoDB attributes.
//! The README's item table documents exactly these.
//!
//! | item    | pk                 | sk              | what it holds |
//! |---------|--------------------|-----------------|---------------|
//! | token   | `USER#<user id>`   | `TOKEN#<uuid>`  | the token's fields and `scopes`, its secret's digest, `ttl`, sweep-index keys |
//! | counter | `USER#<user id>`   | `COUNTER`       | `last_number` (Unleash ids issued), `live` (upper bound of live tokens) |
//! | lookup  | `SECRET#<sha256>`  | `SECRET`        | the owner, uuid and `scopes` the secret authenticates, expiry, last used, `ttl` |
//!
//! `scopes` is a list of strings (a token may hold none); an item without it was stored before
//! scopes existed and holds `ScopeSettings::legacy`. A rotated token lists its earlier secrets'
//! digests in `superseded` (newest first); their lookup records carry `superseded_until_ms`, the
//! end of their grace (`store::rotate`).
//! | title   | `USER#<user id>`   | `TITLE#<sha256 of the title>` | `refs`: how many of the user's stored tokens carry that title |
//! | log     | `USER#<user id>`   | `LOG#<ms>#<uuid>` | an audit entry; its attributes are `store::audit`'s alone |
//! | notice claim | `USER#<user id>` | `NOTICE#<days>d` | `run`, `until_ms`, `ttl`: a notification run is announcing the user's tokens for that threshold |
//!
//! A token announced as expiring carries `noticed_days`, the smallest threshold announced for
//! its current expiry (a rotation removes it).

use crate::tokens::{SecretDigest, Token};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
pub const REFS: &str = "refs";
pub const SCOPES: &str = "scopes";
pub const SUPERSEDED: &str = "superseded";
pub const SUPERSEDED_UNTIL_MS: &str = "superseded_until_ms";
pub const NOTICED_DAYS: &str = "noticed_days";
pub const GRACE_UNTIL_MS: &str = "grace_until_ms";
pub const LIFETIME_MS: &str = "lifetime_ms";
pub const NOTICE_RUN: &str = "run";
pub const NOTICE_UNTIL_MS: &str = "until_ms";

/// Local secondary index: a user's tokens by Unleash integer id (projects `digest`, `expires_ms`).
pub const NUMBER_INDEX: &str = "by_number";
/// Sparse global secondary index: expiring tokens by the day they become due for cleanup
/// (`sweep_bucket`) and the second they do (`sweep_at`); projects the whole item.
pub const SWEEP_INDEX: &str = "sweep";

pub const TOKEN_SK_PREFIX: &str = "TOKEN#";
pub const COUNTER_SK: &str = "COUNTER";
pub const SECRET_SK: &str = "SECRET";
pub const TITLE_SK_PREFIX: &str = "TITLE#";
pub const NOTICE_SK_PREFIX: &str = "NOTICE#";
const USER_PK_PREFIX: &str = "USER#";

/// An item's primary key, as DynamoDB's calls take it.
pub type Key = HashMap<String, AttributeValue>;

pub fn user_pk(user_id: &str) -> String {
    format!("{USER_PK_PREFIX}{user_id}")
}

/// The user id of a `USER#<user id>` partition key.
pub fn user_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(USER_PK_PREFIX)
}

/// The uuid of a `TOKEN#<uuid>` sort key.
pub fn uuid_of_token_sk(sk: &str) -> Option<Uuid> {
    sk.strip_prefix(TOKEN_SK_PREFIX)
        .and_then(|text| Uuid::parse_str(text).ok())
}

pub fn token_sk(uuid: &Uuid) -> String {
    format!("{TOKEN_SK_PREFIX}{uuid}")
}

/// The lookup record's partition key, from the hex SHA-256 of the secret.
pub fn secret_pk(digest_hex: &str) -> String {
    format!("SECRET#{digest_hex}")
}

/// Titles are up to 255 characters (1,020 bytes), more than a sort key leaves room for: the
/// title item is keyed by the title's SHA-256.
pub fn title_sk(title: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{TITLE_SK_PREFIX}{}",
        hex::encode(Sha256::digest(title.as_bytes()))
    )
}

pub fn key(pk: String, sk: String) -> Key {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
}

pub fn token_key(user_id: &str, uuid: &Uuid) -> Key {
    key(user_pk(user_id), token_sk(uuid))
}

pub fn lookup_key(digest_hex: &str) -> Key {
    key(secret_pk(digest_hex), SECRET_SK.to_owned())
}

pub fn counter_key(user_id: &str) -> Key {
    key(user_pk(user_id), COUNTER_SK.to_owned())
}

pub fn title_key(user_id: &str, title: &str) -> Key {
    key(user_pk(user_id), title_sk(title))
}

/// The claim a notification run holds while it announces `user_id`'s tokens expiring within `days`.
pub fn notice_claim_key(user_id: &str, days: u32) -> Key {
    key(user_pk(user_id), format!("{NOTICE_SK_PREFIX}{days}d"))
}

pub fn sweep_bucket(due: DateTime<Utc>) -> String {
    format!("SWEEP#{}", due.format("%Y-%m-%d"))
}

/// When an expiring token becomes due for removal: expiry plus grace. Also the TTL value.
/// Expiries are bounded by `tokens::latest_expiry` before they get here; should one not be,
/// the sum saturates instead of overflowing.
pub fn sweep_due(expires: DateTime<Utc>, grace: Duration) -> DateTime<Utc> {
    expires
        .checked_add_signed(grace)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Digests of earlier secrets whose lookup records may remain, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Vec<String>>,
    /// The smallest expiry-notice threshold (days) announced for the current expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noticed_days: Option<i64>,
    /// The end of the grace of `superseded[0]` (epoch ms): a later rotation ends it if it is
    /// still running, so at most one earlier secret works at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until_ms: Option<i64>,
    /// The token's lifetime at creation (expiry − created, ms): how far a `self/rotate` without
    /// `user:admin` may push the expiry. Absent for tokens that never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_ms: Option<i64>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Set on an earlier secret of a rotated token: it authenticates until then, never after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_until_ms: Option<i64>,
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
            scopes: token.scopes.clone(),
            superseded: None,
            noticed_days: None,
            grace_until_ms: None,
            lifetime_ms: token
                .expires
                .map(|at| at.signed_duration_since(token.created).num_milliseconds()),
        }
    }

    pub fn lookup(&self) -> LookupItem {
        LookupItem {
            pk: secret_pk(&self.digest),
            sk: SECRET_SK.to_owned(),
            user_id: self.user_id.clone(),
            token_uuid: self.token_uuid,
            digest: self.digest.clone(),
            expires_ms: self.expires_ms,
            last_used_ms: self.last_used_ms,
            ttl: self.ttl,
            scopes: self.scopes.clone(),
            superseded_until_ms: None,
        }
    }

    /// Reads a token item from DynamoDB's attributes (see the `TryFrom` below).
    pub fn read(
        item: HashMap<String, AttributeValue>,
    ) -> Result<TokenItem, crate::store::StoreError> {
        TokenItem::try_from(item).map_err(crate::store::StoreError::Corrupt)
    }

    pub fn into_token(self) -> Token {
        Token {
            user_id: self.user_id,
            uuid: self.token_uuid,
            number: self.number,
            title: self.title,
            created: from_millis(self.created_ms),
            expires: self.expires_ms.map(from_millis),
            last_used: self.last_used_ms.map(from_millis),
            scopes: self.scopes,
        }
    }
}

pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Token items are written with serde_dynamo (`to_item`) and read back with this: a list reads
/// up to a page of them, and serde_dynamo's reader first copies every item into its own map
/// type, which was most of a list's own CPU time (docs/benchmarks.md, section 4). The unit tests
/// check it reads exactly what serde_dynamo writes and reads.
impl TryFrom<HashMap<String, AttributeValue>> for TokenItem {
    type Error = String;

    fn try_from(mut item: HashMap<String, AttributeValue>) -> Result<TokenItem, String> {
        let mut string = |name: &str| match item.remove(name) {
            Some(AttributeValue::S(text)) => Ok(Some(text)),
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(other) => Err(format!("{name} is not a string: {other:?}")),
        };
        let pk = required(PK, string(PK)?)?;
        let sk = required(SK, string(SK)?)?;
        let user_id = required("user_id", string("user_id")?)?;
        let uuid_text = required("token_uuid", string("token_uuid")?)?;
        let token_uuid = Uuid::parse_str(&uuid_text)
            .map_err(|_| format!("token_uuid is not a uuid: {uuid_text:?}"))?;
        let title = required("title", string("title")?)?;
        let digest = required(DIGEST, string(DIGEST)?)?;
        let sweep_bucket = string(SWEEP_BUCKET)?;
        let mut strings = |name: &str| match item.remove(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::L(values)) => values
                .into_iter()
                .map(|v| match v {
                    AttributeValue::S(text) => Ok(text),
                    other => Err(format!("{name} holds a non-string: {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("{name} is not a list: {other:?}")),
        };
        let scopes = strings(SCOPES)?;
        let superseded = strings(SUPERSEDED)?;
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(text)) => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name} is not a whole number: {text:?}")),
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(other) => Err(format!("{name} is not a number: {other:?}")),
        };
        let unleash_number = required(NUMBER, number(NUMBER)?)?;
        Ok(TokenItem {
            pk,
            sk,
            user_id,
            token_uuid,
            number: u64::try_from(unleash_number)
                .map_err(|_| format!("number is negative: {unleash_number}"))?,
            title,
            created_ms: required("created_ms", number("created_ms")?)?,
            expires_ms: number(EXPIRES_MS)?,
            last_used_ms: number(LAST_USED_MS)?,
            digest,
            ttl: number(TTL)?,
            sweep_bucket,
            sweep_at: number(SWEEP_AT)?,
            scopes,
            superseded,
            noticed_days: number(NOTICED_DAYS)?,
            grace_until_ms: number(GRACE_UNTIL_MS)?,
            lifetime_ms: number(LIFETIME_MS)?,
        })
    }
}

fn required<T>(name: &str, value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| format!("missing attribute {name}"))
}

#[cfg(test)]
#[path = "items_tests.rs"]
mod tests;
