//! Reading and removing tokens: get, list, find by Unleash number, revoke. A removal takes the
//! token item, its lookup record and its counts away together, in one transaction.

use super::audit::{Audit, LogKind};
use super::dynamo::{build_error, classify, num, Transacted};
use super::items::{self, TokenItem};
use super::{Store, StoreError};
use crate::tokens::Token;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Select, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Yes,
    NotFound,
}

/// A token as stored: what reading it gave, and what removing it needs (its secret's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub uuid: Uuid,
    item: TokenItem,
}

impl StoredToken {
    fn new(item: TokenItem) -> StoredToken {
        StoredToken {
            uuid: item.token_uuid,
            item,
        }
    }

    pub fn token(&self) -> Token {
        self.item.clone().into_token()
    }

    pub(super) fn item(&self) -> &TokenItem {
        &self.item
    }
}

impl Store {
    /// A count kept in a number attribute, strongly consistent, as DynamoDB wrote it (`None`:
    /// no item, or no such attribute).
    pub(super) async fn read_count(
        &self,
        key: items::Key,
        attribute: &str,
    ) -> Result<Option<String>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(output
            .item()
            .and_then(|i| i.get(attribute))
            .and_then(|v| v.as_n().ok())
            .cloned())
    }

    /// One strongly consistent GetItem.
    pub async fn get_token(&self, user_id: &str, uuid: &Uuid) -> Result<Option<Token>, StoreError> {
        Ok(self
            .get_token_item(user_id, uuid)
            .await?
            .map(TokenItem::into_token))
    }

    /// One strongly consistent GetItem: the token as `rotate_stored` takes it.
    pub async fn get_stored(
        &self,
        user_id: &str,
        uuid: &Uuid,
    ) -> Result<Option<StoredToken>, StoreError> {
        Ok(self
            .get_token_item(user_id, uuid)
            .await?
            .map(StoredToken::new))
    }

    pub(super) async fn get_token_item(
        &self,
        user_id: &str,
        uuid: &Uuid,
    ) -> Result<Option<TokenItem>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::token_key(user_id, uuid)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        output.item.map(TokenItem::read).transpose()
    }

    /// Every token of the user, expired ones included (TTL is lazy; see `live_tokens`).
    /// One strongly consistent Query per page, every page followed.
    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<Token>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#sk", items::SK)
            .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user_id)))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(items::TOKEN_SK_PREFIX.into()),
            )
            .consistent_read(true)
            .set_limit(self.page_size)
            .into_paginator()
            .send();
        let mut tokens = Vec::new();
        while let Some(page) = pages.next().await {
            for item in page.map_err(classify)?.items.unwrap_or_default() {
                tokens.push(TokenItem::read(item)?.into_token());
            }
        }
        Ok(tokens)
    }

    /// The user's tokens that have not expired at `now`: what both dialects list.
    pub async fn live_tokens(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Token>, StoreError> {
        let mut tokens = self.list_tokens(user_id).await?;
        tokens.retain(|t| !t.is_expired(now));
        Ok(tokens)
    }

    /// The user's token with this Unleash id: one strongly consistent Query on the local index,
    /// which fetches the token's other attributes from the table in the same request.
    pub async fn find_by_number(
        &self,
        user_id: &str,
        number: u64,
    ) -> Result<Option<StoredToken>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(items::NUMBER_INDEX)
            .key_condition_expression("#pk = :pk AND #n = :n")
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_names("#n", items::NUMBER)
            .expression_attribute_values(":pk", AttributeValue::S(items::user_pk(user_id)))
            .expression_attribute_values(":n", num(number))
            .select(Select::AllAttributes)
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        match output.items.unwrap_or_default().into_iter().next() {
            Some(item) => Ok(Some(StoredToken::new(TokenItem::read(item)?))),
            None => Ok(None),
        }
    }

    /// Revokes a token found by `find_by_number`: one TransactWriteItems.
    pub async fn revoke_stored(
        &self,
        token: &StoredToken,
        audit: &Audit,
    ) -> Result<Revoked, StoreError> {
        self.remove(&token.item, LogKind::Revoke, audit).await
    }

    /// One strongly consistent GetItem (for the secret's digest and the title), then the
    /// removal's transaction. Expired tokens not yet swept are revoked too; absent ones are
    /// `NotFound`.
    pub async fn revoke(
        &self,
        user_id: &str,
        uuid: &Uuid,
        audit: &Audit,
    ) -> Result<Revoked, StoreError> {
        match self.get_token_item(user_id, uuid).await? {
            Some(item) => self.remove(&item, LogKind::Revoke, audit).await,
            None => Ok(Revoked::NotFound),
        }
    }

    /// Removes a token in one transaction with its audit entry (`kind`, `audit`): the token (it must still exist with the secret read,
    /// so two removals never both count and a concurrent rotation is not missed), every lookup
    /// record of it (the current secret's and the superseded ones'), its place under the cap
    /// (if it had not expired) and its title's count. The two counts are decremented only while
    /// above zero; a count that is already zero is dropped from the transaction rather than
    /// blocking the removal, and a live counter found too low is recounted afterwards. A token
    /// rotated meanwhile is read again. A revoke always succeeds.
    pub(crate) async fn remove(
        &self,
        item: &TokenItem,
        kind: LogKind,
        audit: &Audit,
    ) -> Result<Revoked, StoreError> {
        let now = audit.at;
        let expired = item
            .expires_ms
            .is_some_and(|ms| items::from_millis(ms) <= now);
        let mut item = item.clone();
        let mut uncount_live = !expired;
        let mut uncount_title = true;
        let mut repair_live = false;
        for _ in 0..4 {
            let mut actions = vec![TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(items::token_key(&item.user_id, &item.token_uuid)))
                        .condition_expression("attribute_exists(#pk) AND #digest = :digest")
                        .expression_attribute_names("#pk", items::PK)
                        .expression_attribute_names("#digest", items::DIGEST)
                        .expression_attribute_values(
                            ":digest",
                            AttributeValue::S(item.digest.clone()),
                        )
                        .build()
                        .map_err(build_error)?,
                )
                .build()];
            let digests = std::iter::once(&item.digest).chain(item.superseded.iter().flatten());
            for digest in digests {
                actions.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(items::lookup_key(digest)))
                                .build()
                                .map_err(build_error)?,
                        )
                        .build(),
                );
            }
            let mut counts = Vec::new();
            if uncount_live {
                counts.push((actions.len(), items::LIVE));
                actions.push(self.decrement(items::counter_key(&item.user_id), items::LIVE)?);
            }
            if uncount_title {
                counts.push((actions.len(), items::REFS));
                actions.push(
                    self.decrement(items::title_key(&item.user_id, &item.title), items::REFS)?,
                );
            }
            actions.push(self.log_put(
                &item.user_id,
                kind,
                &item.token_uuid,
                &item.title,
                audit,
            )?);
            match self.transact(actions).await? {
                Transacted::Done => {
                    if repair_live {
                        if let Err(error) = self.recount_live(&item.user_id, now).await {
                            tracing::warn!(%error, user_id = item.user_id, "cannot recount the live counter");
                        }
                    }
                    return Ok(Revoked::Yes);
                }
                // Removed concurrently by another call, or rotated: read it again. An expiry
                // removal stops when the rotation gave the token a later expiry (the sweep
                // index's copy it started from was older).
                Transacted::ConditionFailed(failed) if failed.contains(&0) => {
                    match self.get_token_item(&item.user_id, &item.token_uuid).await? {
                        Some(fresh)
                            if kind == LogKind::Expire
                                && fresh.sweep_at.is_none_or(|due| due > now.timestamp()) =>
                        {
                            return Ok(Revoked::NotFound)
                        }
                        Some(fresh) => item = fresh,
                        None => return Ok(Revoked::NotFound),
                    }
                }
                Transacted::ConditionFailed(failed) => {
                    for (index, attribute) in counts {
                        if failed.contains(&index) && attribute == items::LIVE {
                            tracing::warn!(
                                user_id = item.user_id,
                                "live counter already at zero; it will be recounted"
                            );
                            uncount_live = false;
                            repair_live = true;
                        } else if failed.contains(&index) {
                            uncount_title = false;
                        }
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "the removal kept meeting concurrent changes".into(),
        ))
    }

    /// `attribute - 1`, only while it is above zero.
    fn decrement(&self, key: items::Key, attribute: &str) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("ADD #count :minus_one")
            .condition_expression("#count > :zero")
            .expression_attribute_names("#count", attribute)
            .expression_attribute_values(":minus_one", num(-1))
            .expression_attribute_values(":zero", num(0))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{Secret, Token};
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use chrono::Duration;

    fn item(expires: DateTime<Utc>) -> TokenItem {
        let token = Token {
            user_id: "alice".into(),
            uuid: Uuid::new_v4(),
            number: 1,
            title: "t".into(),
            created: expires - Duration::days(1),
            expires: Some(expires),
            last_used: None,
            scopes: None,
        };
        TokenItem::new(
            &token,
            &Secret::generate().unwrap().digest(),
            Duration::zero(),
        )
    }

    /// The sweep index gave a copy from before a rotation that moved the expiry out: the
    /// removal's condition on the digest fails, the token read again is not due, so the expiry
    /// removal stops after one transaction instead of deleting a live token.
    #[tokio::test]
    async fn an_expiry_removal_stops_when_a_rotation_moved_the_expiry() {
        let now = Utc::now();
        let stale = item(now - Duration::hours(1));
        let mut fresh = item(now + Duration::days(20));
        fresh.token_uuid = stale.token_uuid;
        fresh.sk = stale.sk.clone();
        let fresh_attributes = crate::store::dynamo::to_item(&fresh).unwrap();
        let cancelled = mock!(Client::transact_write_items).then_error(|| {
            let reason = |code: &str| CancellationReason::builder().code(code).build();
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .cancellation_reasons(reason("ConditionalCheckFailed"))
                    .cancellation_reasons(reason("None"))
                    .build(),
            )
        });
        let read = mock!(Client::get_item).then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(fresh_attributes.clone()))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&cancelled, &read]);
        let store = Store::new(client, "tokens");
        let removed = store
            .remove(&stale, LogKind::Expire, &Audit::system(now))
            .await
            .unwrap();
        assert_eq!(removed, Revoked::NotFound);
        assert_eq!((cancelled.num_calls(), read.num_calls()), (1, 1));
    }
}
