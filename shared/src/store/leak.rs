//! Leaked secrets: the token of a reported secret, revoked (`LogKind::LeakRevoke`).

use super::tokens::Revoked;
use super::{Audit, LogKind, Store, StoreError};
use crate::tokens::SecretDigest;
use uuid::Uuid;

/// A token revoked because its secret was found in public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRevoked {
    pub user_id: String,
    pub token_uuid: Uuid,
    pub title: String,
}

impl Store {
    /// Revokes the token a reported secret authenticates, with its `leak_revoke_app_specific_token`
    /// entry (the report's `url` and `source` are in `audit`). A secret that does not
    /// authenticate at `audit.at` (unknown, revoked, expired, or superseded past its grace)
    /// costs one strongly consistent GetItem and changes nothing: `None`. A live one costs that
    /// GetItem, the token's GetItem and the removal's transaction. A secret still within its
    /// rotation grace revokes the whole token: whoever holds it can use the token.
    pub async fn revoke_leaked(
        &self,
        digest: &SecretDigest,
        audit: &Audit,
    ) -> Result<Option<LeakRevoked>, StoreError> {
        let now = audit.at;
        let Some(record) = self.find_secret(digest).await? else {
            return Ok(None);
        };
        if record.ended(now).is_some() {
            return Ok(None);
        }
        let Some(item) = self
            .get_token_item(&record.user_id, &record.token_uuid)
            .await?
        else {
            return Ok(None);
        };
        let revoked = LeakRevoked {
            user_id: item.user_id.clone(),
            token_uuid: item.token_uuid,
            title: item.title.clone(),
        };
        match self.remove(&item, LogKind::LeakRevoke, audit).await? {
            Revoked::Yes => Ok(Some(revoked)),
            Revoked::NotFound => Ok(None),
        }
    }
}
