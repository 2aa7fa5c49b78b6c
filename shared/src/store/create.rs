//! Creating a token: its item, its lookup record, the user's live counter (the cap) and the
//! count of its title change together in one transaction; the Unleash number is issued first.

use super::audit::{Audit, LogKind};
use super::dynamo::{
    build_error, classify, is_condition_failure, num, retry_on_conflict, to_item, Transacted,
};
use super::items::{self, TokenItem};
use super::{Store, StoreError};
use crate::tokens::{SecretDigest, Token};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// The fields of a token to create; the store issues its Unleash number.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: String,
    pub uuid: Uuid,
    pub title: String,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    /// `None` stores no scopes: a token as stored before scopes existed (tests of old items).
    pub scopes: Option<Vec<String>>,
}

/// Whether a create may share its title with another live token of the user (Quay's titles)
/// or must not (Unleash's descriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleRule {
    Shared,
    Unique,
}

/// How the create transaction treats the title's count.
#[derive(Debug, Clone, Copy)]
enum TitleGuard {
    /// Count it, whatever it was.
    None,
    /// Only if no stored token carries the title.
    Free,
    /// Only if the count is still what was read (`None`: no title item): the holders it
    /// counts have all expired.
    Observed(Option<i64>),
}

enum Inserted {
    Done,
    CapReached,
    TitleTaken,
}

/// Rounds of a create: a recount of the cap, and re-reads of a title held by expired tokens.
const CREATE_ROUNDS: usize = 5;

impl Store {
    /// Creates a token whose title other live tokens may share (Quay's rule), logged as made
    /// by this service (what tests and benchmarks seed with).
    pub async fn create_token(
        &self,
        new: NewToken,
        digest: &SecretDigest,
        cap: u32,
        grace: Duration,
    ) -> Result<Token, StoreError> {
        let audit = Audit::system(new.created);
        self.create_token_with(new, digest, cap, grace, TitleRule::Shared, &audit)
            .await
    }

    /// Creates a token and its lookup record in one transaction that also counts it against
    /// the user's cap, counts its title and writes its audit entry (`audit`). Calls: UpdateItem (issue the number) +
    /// TransactWriteItems; with `TitleRule::Unique`, one Query first (a live token with the
    /// title is refused before a number is issued) and the transaction's condition on the
    /// title's count makes concurrent creates of one title yield exactly one token. On a full
    /// cap: one recount (GetItem + Query) and one more transaction.
    pub async fn create_token_with(
        &self,
        new: NewToken,
        digest: &SecretDigest,
        cap: u32,
        grace: Duration,
        rule: TitleRule,
        audit: &Audit,
    ) -> Result<Token, StoreError> {
        let now = new.created;
        if rule == TitleRule::Unique && self.title_is_live(&new.user_id, &new.title, now).await? {
            return Err(StoreError::TitleInUse);
        }
        let number = self.issue_number(&new.user_id).await?;
        let token = Token {
            user_id: new.user_id,
            uuid: new.uuid,
            number,
            title: new.title,
            created: new.created,
            expires: new.expires,
            last_used: None,
            scopes: new.scopes,
        };
        let item = TokenItem::new(&token, digest, grace);
        let mut guard = match rule {
            TitleRule::Shared => TitleGuard::None,
            TitleRule::Unique => TitleGuard::Free,
        };
        let mut recounted = false;
        for _ in 0..CREATE_ROUNDS {
            match self.insert(&item, cap, guard, audit).await? {
                Inserted::Done => return Ok(token),
                Inserted::TitleTaken => {
                    if self
                        .title_is_live(&token.user_id, &token.title, now)
                        .await?
                    {
                        return Err(StoreError::TitleInUse);
                    }
                    guard =
                        TitleGuard::Observed(self.title_count(&token.user_id, &token.title).await?);
                }
                Inserted::CapReached
                    if !recounted && self.recount_live(&token.user_id, now).await? =>
                {
                    recounted = true;
                }
                Inserted::CapReached => return Err(StoreError::CapReached { cap }),
            }
        }
        Err(StoreError::Unavailable(
            "the create kept meeting concurrent changes".into(),
        ))
    }

    async fn title_is_live(
        &self,
        user_id: &str,
        title: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .live_tokens(user_id, now)
            .await?
            .iter()
            .any(|t| t.title == title))
    }

    /// The title item's count, strongly consistent; `None` when there is no title item.
    async fn title_count(&self, user_id: &str, title: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .read_count(items::title_key(user_id, title), items::REFS)
            .await?
            .and_then(|n| n.parse().ok()))
    }

    async fn issue_number(&self, user_id: &str) -> Result<u64, StoreError> {
        let key = items::counter_key(user_id);
        let output = retry_on_conflict(|| {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression("ADD #n :one")
                .expression_attribute_names("#n", items::LAST_NUMBER)
                .expression_attribute_values(":one", num(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
        })
        .await?;
        output
            .attributes()
            .and_then(|a| a.get(items::LAST_NUMBER))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("counter returned no number".into()))
    }

    async fn insert(
        &self,
        item: &TokenItem,
        cap: u32,
        guard: TitleGuard,
        audit: &Audit,
    ) -> Result<Inserted, StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::counter_key(&item.user_id)))
            .update_expression("SET #live = if_not_exists(#live, :zero) + :one")
            .condition_expression("attribute_not_exists(#live) OR #live < :cap")
            .expression_attribute_names("#live", items::LIVE)
            .expression_attribute_values(":zero", num(0))
            .expression_attribute_values(":one", num(1))
            .expression_attribute_values(":cap", num(cap))
            .build()
            .map_err(build_error)?;
        let new_item = |attributes| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(attributes))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", items::PK)
                .build()
                .map_err(build_error)
        };
        let put_token = new_item(to_item(item)?)?;
        let put_lookup = new_item(to_item(&item.lookup())?)?;
        let mut title = Update::builder()
            .table_name(&self.table)
            .set_key(Some(items::title_key(&item.user_id, &item.title)))
            .update_expression("ADD #refs :one")
            .expression_attribute_names("#refs", items::REFS)
            .expression_attribute_values(":one", num(1));
        title = match guard {
            TitleGuard::None => title,
            TitleGuard::Free => title
                .condition_expression("attribute_not_exists(#refs) OR #refs <= :zero")
                .expression_attribute_values(":zero", num(0)),
            TitleGuard::Observed(None) => title.condition_expression("attribute_not_exists(#refs)"),
            TitleGuard::Observed(Some(count)) => title
                .condition_expression("#refs = :observed")
                .expression_attribute_values(":observed", num(count)),
        };
        let actions = vec![
            TransactWriteItem::builder().update(count).build(),
            TransactWriteItem::builder().put(put_token).build(),
            TransactWriteItem::builder().put(put_lookup).build(),
            TransactWriteItem::builder()
                .update(title.build().map_err(build_error)?)
                .build(),
            self.log_put(
                &item.user_id,
                LogKind::Create,
                &item.token_uuid,
                &item.title,
                audit,
            )?,
        ];
        match self.transact(actions).await? {
            Transacted::Done => Ok(Inserted::Done),
            Transacted::ConditionFailed(failed) if failed.contains(&1) || failed.contains(&2) => {
                Err(StoreError::Failed(
                    "token uuid or secret digest already in use".into(),
                ))
            }
            Transacted::ConditionFailed(failed) if failed.contains(&3) => Ok(Inserted::TitleTaken),
            Transacted::ConditionFailed(_) => Ok(Inserted::CapReached),
        }
    }

    /// The live counter is an upper bound: tokens that expire, or that cleanup and DynamoDB TTL
    /// delete, are not subtracted, and it is never trusted further than that. When the cap is
    /// hit, or a revoke finds the counter lower than it should be, count the user's unexpired
    /// tokens and set the counter to that, conditional on it being unchanged since it was read
    /// (read before the tokens, so a create or revoke in between makes the condition fail).
    /// Returns whether the counter was changed.
    pub async fn recount_live(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(observed) = self
            .read_count(items::counter_key(user_id), items::LIVE)
            .await?
        else {
            return Ok(false);
        };
        let observed_count: i64 = observed
            .parse()
            .map_err(|_| StoreError::Corrupt("live counter".into()))?;
        let live = self.live_tokens(user_id, now).await?.len() as i64;
        if live == observed_count {
            return Ok(false);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::counter_key(user_id)))
            .update_expression("SET #live = :live")
            .condition_expression("#live = :observed")
            .expression_attribute_names("#live", items::LIVE)
            .expression_attribute_values(":live", num(live))
            .expression_attribute_values(":observed", AttributeValue::N(observed))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}
