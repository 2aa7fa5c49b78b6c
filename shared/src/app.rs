//! What every route handler is given: the store and the configuration, built once at cold start.

use crate::config::Config;
use crate::store::{NewToken, Store};
use crate::tokens::{IssuedToken, Secret};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl App {
    /// Reads the configuration and builds the DynamoDB client from the environment
    /// (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local; nothing else differs).
    pub async fn from_env() -> Result<App, InitError> {
        let config = Config::from_env()?;
        let store = Store::new(dynamodb_client().await, config.table_name.clone());
        Ok(App { store, config })
    }

    /// Generates a secret and stores the token under the caller's cap. `expires` has already
    /// been checked against the lifetime rules by the dialect.
    pub async fn issue(
        &self,
        user_id: &str,
        title: String,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, crate::error::ApiError> {
        let secret = Secret::generate().map_err(|e| {
            tracing::error!(error = %e, "cannot generate a secret");
            crate::error::ApiError::Internal
        })?;
        let new = NewToken {
            user_id: user_id.to_owned(),
            uuid: Uuid::new_v4(),
            title,
            created: crate::tokens::truncate_to_millis(now),
            expires: expires.map(crate::tokens::truncate_to_millis),
        };
        let token = self
            .store
            .create_token(
                new,
                &secret.digest(),
                self.config.max_tokens_per_user,
                self.config.ttl_grace,
            )
            .await?;
        tracing::info!(user_id, token_uuid = %token.uuid, number = token.number, "token created");
        Ok(IssuedToken { token, secret })
    }
}

pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
}
