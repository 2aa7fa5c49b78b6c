//! The authorizer's path: find the lookup record of a presented secret, and record its use.

use super::dynamo::{build_error, classify, num, parse_item, Transacted};
use super::items::{self, LookupItem};
use super::{Store, StoreError};
use crate::tokens::SecretDigest;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// What an authorization needs, read from the lookup record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub user_id: String,
    pub token_uuid: Uuid,
    pub digest: SecretDigest,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    /// The token's scopes; `None` for one stored before scopes existed.
    pub scopes: Option<Vec<String>>,
    /// An earlier secret of a rotated token: the end of its grace.
    pub superseded_until: Option<DateTime<Utc>>,
}

/// Why a secret no longer authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEnded {
    /// An earlier secret of a rotated token, past its grace.
    Superseded,
    Expired,
}

impl SecretRecord {
    /// Whether the secret has stopped authenticating at `now`, and why (its grace first).
    pub fn ended(&self, now: DateTime<Utc>) -> Option<SecretEnded> {
        if self.superseded_until.is_some_and(|at| at <= now) {
            Some(SecretEnded::Superseded)
        } else if self.expires.is_some_and(|at| at <= now) {
            Some(SecretEnded::Expired)
        } else {
            None
        }
    }
}

impl Store {
    /// One strongly consistent GetItem, so a token revoked before this call never authenticates.
    pub async fn find_secret(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::lookup_key(&digest.to_hex())))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let lookup: LookupItem = parse_item(item)?;
        let stored = SecretDigest::from_hex(&lookup.digest)
            .ok_or_else(|| StoreError::Corrupt("lookup digest".into()))?;
        if !stored.matches(digest) {
            return Ok(None);
        }
        Ok(Some(SecretRecord {
            user_id: lookup.user_id,
            token_uuid: lookup.token_uuid,
            digest: stored,
            expires: lookup.expires_ms.map(items::from_millis),
            last_used: lookup.last_used_ms.map(items::from_millis),
            scopes: lookup.scopes,
            superseded_until: lookup.superseded_until_ms.map(items::from_millis),
        }))
    }

    /// Records a use, at most once per `throttle` window: nothing is sent when the record's
    /// `last used` is within the window; otherwise one transaction updates the lookup record
    /// (only if still stale, so concurrent uses write once) and the token (only if it still
    /// exists, so a revoked token is never recreated). A stored time in the future counts as
    /// stale, so a clock that ran ahead cannot freeze the field. Returns whether it wrote.
    pub async fn record_use(
        &self,
        record: &SecretRecord,
        now: DateTime<Utc>,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        if let Some(last) = record.last_used {
            if last <= now && now - last < throttle {
                return Ok(false);
            }
        }
        let now_ms = num(now.timestamp_millis());
        let cutoff_ms = num((now - throttle).timestamp_millis());
        let touch_lookup = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::lookup_key(&record.digest.to_hex())))
            .update_expression("SET #used = :now")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#used) OR #used <= :cutoff OR #used > :now)",
            )
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#used", items::LAST_USED_MS)
            .expression_attribute_values(":now", now_ms.clone())
            .expression_attribute_values(":cutoff", cutoff_ms)
            .build()
            .map_err(build_error)?;
        let touch_token = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::token_key(&record.user_id, &record.token_uuid)))
            .update_expression("SET #used = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#used", items::LAST_USED_MS)
            .expression_attribute_values(":now", now_ms)
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().update(touch_lookup).build(),
            TransactWriteItem::builder().update(touch_token).build(),
        ];
        Ok(matches!(
            self.transact_once(actions).await?,
            Transacted::Done
        ))
    }
}
