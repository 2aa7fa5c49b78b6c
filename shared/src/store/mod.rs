//! Tokens in one DynamoDB table. A token item and its lookup record are always written and
//! deleted in one transaction, so neither exists without the other. The store knows nothing
//! of the dialects; it speaks in `Token`s.
//!
//! - `create`: a new token, under the cap and its title's rule;
//! - `tokens`: list, get and revoke (with `create`, what the management routes call);
//! - `rotate`: a new secret for a token, the old one kept for its grace;
//! - `audit`: the log entry every change writes in its transaction, and reading the log;
//! - `auth`: find a secret's lookup record and record its use (the authorizer's path);
//! - `leak`: revoke the token of a secret found in public;
//! - `sweep`: the scheduled removal of expired tokens;
//! - `notice`: what expiry notifications read (the sweep index) and mark;
//! - `items`: item types and key formats, the only place that names attributes;
//! - `dynamo`: transactions, retries, backoff and error classification.

mod audit;
mod auth;
mod create;
mod dynamo;
pub mod items;
mod leak;
mod notice;
mod rotate;
mod sweep;
mod tokens;

pub use audit::{is_log_sk_within, Actor, Audit, LeakReport, LogEntry, LogKind, LogPage};
pub use auth::{SecretEnded, SecretRecord};
pub use create::{NewToken, TitleRule};
pub use leak::LeakRevoked;
pub use notice::WindowRead;
pub use rotate::{reuse_window, Rotated, Rotation, MAX_SUPERSEDED};
pub use sweep::{SweepLimits, SweepReport};
pub use tokens::{Revoked, StoredToken};

use aws_sdk_dynamodb::Client;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, or DynamoDB unreachable: the caller may retry later.
    #[error("DynamoDB is unavailable: {0}")]
    Unavailable(String),
    #[error("the limit of {cap} live tokens is reached")]
    CapReached { cap: u32 },
    /// A create whose title must be unique among the user's live tokens, and is not.
    #[error("the title is already used by a live token")]
    TitleInUse,
    #[error("malformed item in the table: {0}")]
    Corrupt(String),
    #[error("DynamoDB request failed: {0}")]
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    /// `Limit` of list and sweep Queries; `None` reads DynamoDB's whole 1 MB pages (about
    /// 3,000 tokens), so a user's list is one Query.
    page_size: Option<i32>,
    /// How long audit log entries are kept (their `ttl`).
    log_retention: chrono::Duration,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
            page_size: None,
            log_retention: audit::default_retention(),
        }
    }

    /// Items per Query page (default: as many as fit DynamoDB's 1 MB page). Lists and sweeps
    /// always follow every page; this only sets their size, for tests of the paging.
    pub fn with_page_size(mut self, page_size: i32) -> Store {
        self.page_size = Some(page_size.max(1));
        self
    }

    /// How long audit log entries are kept (default 400 days).
    pub fn with_log_retention(mut self, retention: chrono::Duration) -> Store {
        self.log_retention = retention;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}
