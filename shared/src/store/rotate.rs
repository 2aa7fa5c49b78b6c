//! Rotating a token: the same token (uuid, number, title, scopes, created, last used) with a new
//! secret. The earlier secret's lookup record stays, marked with the end of its grace: it
//! authenticates until then, and is recognised afterwards (reuse detection) until its TTL.

use super::audit::{Audit, LogKind};
use super::dynamo::{build_error, num, to_item, Transacted};
use super::items::{self, LookupItem, TokenItem};
use super::tokens::StoredToken;
use super::{Store, StoreError};
use crate::tokens::{SecretDigest, Token};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Earlier secrets a token remembers; a rotation past this many deletes the oldest one's lookup
/// record in its transaction, so revoke and cleanup always know every record of a token.
pub const MAX_SUPERSEDED: usize = 10;

/// How long a superseded lookup record is kept after its grace ends (its TTL), so that a copy
/// presented to `self/rotate` is recognised as reuse.
pub fn reuse_window() -> Duration {
    Duration::days(30)
}

/// What a rotation sets.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub digest: SecretDigest,
    pub expires: Option<DateTime<Utc>>,
    /// How long the current secret keeps working (0: not at all).
    pub grace: Duration,
    /// The removal grace after expiry (`TOKEN_TTL_GRACE`), for `ttl` and the sweep keys.
    pub ttl_grace: Duration,
    /// For `self/rotate`: the secret presented, which must be the current one.
    pub presented: Option<SecretDigest>,
    /// For `self/rotate` without `user:admin`: the new expiry is at most the token's lifetime
    /// at creation from now (a token cannot make itself immortal).
    pub within_lifetime: bool,
    /// Who rotates, for the audit entry written in the rotation's transaction.
    pub audit: Audit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    Yes(Token),
    /// No such live token.
    NotFound,
    /// Another rotation (or removal) changed the token since it was read.
    Conflict,
    /// `presented` is an earlier secret still in its grace, not the current one.
    NotCurrent,
}

impl Store {
    /// GetItem (strongly consistent) + one TransactWriteItems: the token's new digest, expiry
    /// and superseded list (on the condition that its digest is still the one read), the new
    /// lookup record, the old one's end of grace (never past the new expiry), the end of an
    /// earlier secret's grace still running, and the deletion of a record dropped from the
    /// list. Of concurrent rotations exactly one succeeds; the others are `Conflict`.
    pub async fn rotate(
        &self,
        user_id: &str,
        uuid: &Uuid,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        match self.get_token_item(user_id, uuid).await? {
            Some(item) => self.rotate_item(item, rotation).await,
            None => Ok(Rotated::NotFound),
        }
    }

    /// Rotates a token found by `find_by_number`: one TransactWriteItems.
    pub async fn rotate_stored(
        &self,
        token: &StoredToken,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        self.rotate_item(token.item().clone(), rotation).await
    }

    async fn rotate_item(
        &self,
        item: TokenItem,
        rotation: &Rotation,
    ) -> Result<Rotated, StoreError> {
        if item
            .expires_ms
            .is_some_and(|ms| items::from_millis(ms) <= rotation.audit.at)
        {
            return Ok(Rotated::NotFound);
        }
        if let Some(presented) = &rotation.presented {
            if presented.to_hex() != item.digest {
                return Ok(Rotated::NotCurrent);
            }
        }
        let now = rotation.audit.at;
        let lifetime_ms = item.lifetime_ms.or_else(|| {
            item.expires_ms
                .and_then(|expires| expires.checked_sub(item.created_ms))
        });
        // The same token with the new digest and expiry; `ttl` and the sweep keys follow from
        // the expiry as they do at create.
        let mut token = item.clone().into_token();
        // Within the lifetime: never past now + lifetime (nor the latest expiry any token may
        // have); a token whose lifetime cannot be read keeps its current expiry as the bound.
        let bound = match (lifetime_ms, item.expires_ms) {
            (Some(ms), _) => Some(
                now.checked_add_signed(Duration::milliseconds(ms.max(0)))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
                    .min(crate::tokens::latest_expiry()),
            ),
            (None, current) => current.map(items::from_millis),
        };
        token.expires = match (rotation.within_lifetime, bound) {
            (true, Some(bound)) => Some(rotation.expires.map_or(bound, |at| at.min(bound))),
            _ => rotation.expires,
        };
        // The replaced secret works until the grace ends, never past the new expiry.
        let grace_end = now.checked_add_signed(rotation.grace).unwrap_or(now);
        let until = token
            .expires
            .map_or(grace_end, |at| grace_end.min(at))
            .max(now);
        let mut next = TokenItem::new(&token, &rotation.digest, rotation.ttl_grace);
        next.lifetime_ms = lifetime_ms;
        next.grace_until_ms = Some(until.timestamp_millis());
        let earlier_in_grace = item
            .grace_until_ms
            .is_some_and(|ms| ms > now.timestamp_millis())
            .then(|| item.superseded.as_ref().and_then(|s| s.first()))
            .flatten();
        let mut superseded = item.superseded.clone().unwrap_or_default();
        superseded.insert(0, item.digest.clone());
        let dropped = superseded.split_off(superseded.len().min(MAX_SUPERSEDED));
        next.superseded = Some(superseded.clone());

        let mut set = vec![
            "#digest = :digest".to_owned(),
            "#superseded = :superseded".to_owned(),
            "#grace_until = :grace_until".to_owned(),
        ];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::token_key(&item.user_id, &item.token_uuid)))
            .condition_expression("#digest = :old")
            .expression_attribute_names("#digest", items::DIGEST)
            .expression_attribute_names("#superseded", items::SUPERSEDED)
            .expression_attribute_names("#grace_until", items::GRACE_UNTIL_MS)
            .expression_attribute_values(":grace_until", num(until.timestamp_millis()))
            .expression_attribute_values(":digest", AttributeValue::S(next.digest.clone()))
            .expression_attribute_values(":old", AttributeValue::S(item.digest.clone()))
            .expression_attribute_values(
                ":superseded",
                AttributeValue::L(superseded.into_iter().map(AttributeValue::S).collect()),
            );
        // The expiry and what follows from it: set when the token expires, removed when not.
        for (attribute, value) in [
            (items::EXPIRES_MS, next.expires_ms.map(num)),
            (items::TTL, next.ttl.map(num)),
            (items::SWEEP_AT, next.sweep_at.map(num)),
            (
                items::SWEEP_BUCKET,
                next.sweep_bucket.clone().map(AttributeValue::S),
            ),
            (items::LIFETIME_MS, next.lifetime_ms.map(num)),
        ] {
            update = update.expression_attribute_names(format!("#{attribute}"), attribute);
            match value {
                Some(value) => {
                    set.push(format!("#{attribute} = :{attribute}"));
                    update = update.expression_attribute_values(format!(":{attribute}"), value);
                }
                None => remove.push(format!("#{attribute}")),
            }
        }
        // A new expiry is announced afresh (`crate::notify`).
        update = update.expression_attribute_names("#noticed", items::NOTICED_DAYS);
        remove.push("#noticed".to_owned());
        let expression = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        let token_update = update
            .update_expression(expression)
            .build()
            .map_err(build_error)?;

        let lookup: LookupItem = next.lookup();
        let new_lookup = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(&lookup)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .build()
            .map_err(build_error)?;
        let keep_until = until
            .checked_add_signed(reuse_window())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let old_lookup = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::lookup_key(&item.digest)))
            .update_expression("SET #until = :until, #ttl = :ttl")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#until", items::SUPERSEDED_UNTIL_MS)
            .expression_attribute_names("#ttl", items::TTL)
            .expression_attribute_values(":until", num(until.timestamp_millis()))
            .expression_attribute_values(":ttl", num(keep_until.timestamp()))
            .build()
            .map_err(build_error)?;
        let mut actions = vec![
            TransactWriteItem::builder().update(token_update).build(),
            TransactWriteItem::builder().put(new_lookup).build(),
            TransactWriteItem::builder().update(old_lookup).build(),
        ];
        // An earlier secret still in its grace: that grace ends now (one working earlier secret
        // at most). Its record exists: its TTL is the grace's end plus the reuse window.
        if let Some(digest) = earlier_in_grace {
            let end = Update::builder()
                .table_name(&self.table)
                .set_key(Some(items::lookup_key(digest)))
                .update_expression("SET #until = :now")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", items::PK)
                .expression_attribute_names("#until", items::SUPERSEDED_UNTIL_MS)
                .expression_attribute_values(":now", num(now.timestamp_millis()))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().update(end).build());
        }
        for digest in &dropped {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(items::lookup_key(digest)))
                .build()
                .map_err(build_error)?;
            actions.push(TransactWriteItem::builder().delete(delete).build());
        }
        actions.push(self.log_put(
            &item.user_id,
            LogKind::Rotate,
            &item.token_uuid,
            &item.title,
            &rotation.audit,
        )?);
        match self.transact(actions).await? {
            Transacted::Done => Ok(Rotated::Yes(next.into_token())),
            Transacted::ConditionFailed(_) => {
                match self.get_token_item(&item.user_id, &item.token_uuid).await? {
                    None => Ok(Rotated::NotFound),
                    Some(_) => Ok(Rotated::Conflict),
                }
            }
        }
    }
}
