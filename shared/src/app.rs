//! What every function is given: the store, the configuration and the session verifier, built
//! once at cold start.

use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::identity::Caller;
use crate::oidc::{JwtVerifier, OidcSettings};
use crate::store::{Audit, NewToken, Store, TitleRule};
use crate::tokens::scopes::ScopeError;
use crate::tokens::{IssuedToken, Secret, SecretFormat};
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A create may list at most this many scopes (repeats included).
pub const MAX_REQUESTED_SCOPES: usize = 100;

#[derive(Clone, Debug)]
pub struct App {
    pub store: Store,
    pub config: Config,
    /// Verifies session JWTs of the configured OIDC issuer (its key set cached across
    /// invocations); `None`: no issuer configured, JWTs are refused.
    pub jwt: Option<Arc<JwtVerifier>>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Limits on every DynamoDB call. DynamoDB answers in milliseconds; a connection that stalls
/// gives up after `ATTEMPT`, is retried once or twice by the SDK's standard retries (which
/// also retry throttling), and the call fails after `OPERATION`: the handler answers 503 with
/// `Retry-After` well inside the function's 10 s timeout instead of running into it.
pub const DYNAMODB_CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_500);
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_millis(3_000);

pub fn dynamodb_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(DYNAMODB_CONNECT_TIMEOUT)
        .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
        .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
        .build()
}

/// Endpoint variables the SDK reads. Set but empty, the SDK would accept them at init and
/// panic at the first request ("URL was unset"); refuse them at init instead, by name.
pub const ENDPOINT_VARIABLES: [&str; 3] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
];

pub fn check_endpoint_variables(
    vars: &std::collections::HashMap<String, String>,
) -> Result<(), ConfigError> {
    for variable in ENDPOINT_VARIABLES {
        if vars.get(variable).is_some_and(|v| v.trim().is_empty()) {
            return Err(ConfigError {
                variable,
                problem: "is set but empty: unset it, or set it to the service's URL".into(),
            });
        }
    }
    Ok(())
}

impl App {
    /// The store keeps audit entries for `config.audit_log_retention`.
    pub fn new(store: Store, config: Config, jwt: Option<JwtVerifier>) -> App {
        App {
            store: store.with_log_retention(config.audit_log_retention),
            config,
            jwt: jwt.map(Arc::new),
        }
    }

    /// Reads the configuration (`TABLE_NAME`, the lifetimes, `LAST_USED_THROTTLE`, ... and the
    /// three `OIDC_*` variables) and builds the DynamoDB client. A bad value stops the function
    /// at init with a message naming the variable. No key set is fetched before the first session.
    pub async fn from_env() -> Result<App, InitError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let config = Config::from_map(&vars)?;
        let jwt = OidcSettings::from_map(&vars)?
            .map(JwtVerifier::new)
            .transpose()?;
        let store = Store::new(dynamodb_client().await?, config.table_name.clone());
        Ok(App::new(store, config, jwt))
    }

    /// The scopes a new token of `caller` gets from a create body's `scopes` (absent or null:
    /// the deployment's default within what the caller may grant). 400 for a value that is not
    /// an array of strings or names an unknown scope; 403 naming a scope the caller cannot grant.
    pub fn new_token_scopes(
        &self,
        caller: &Caller,
        requested: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        const SHAPE: &str = "'scopes' must be an array of scope names";
        let requested: Option<Vec<String>> = match requested {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.len() <= MAX_REQUESTED_SCOPES => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| ApiError::bad_field("scopes", SHAPE))?,
            ),
            Some(_) => return Err(ApiError::bad_field("scopes", SHAPE)),
        };
        let settings = &self.config.scopes;
        settings
            .for_new_token(requested.as_deref(), &caller.grantable(settings))
            .map_err(|e| match e {
                ScopeError::Unknown(scope) => ApiError::bad_field(
                    "scopes",
                    format!(
                        "Unknown scope {scope:?}; known scopes: {}",
                        settings.known.join(", ")
                    ),
                ),
                ScopeError::NotGrantable(scope) => ApiError::CannotGrant(scope),
            })
    }

    /// Generates a secret and stores the token under the caller's cap, with the dialect's rule
    /// for titles. `expires` has already been checked against the lifetime rules by the dialect,
    /// and `scopes` by [`Self::new_token_scopes`].
    pub async fn issue(
        &self,
        user_id: &str,
        title: String,
        expires: Option<DateTime<Utc>>,
        scopes: Vec<String>,
        rule: TitleRule,
        audit: &Audit,
    ) -> Result<IssuedToken, ApiError> {
        let now = audit.at;
        let secret = generate_secret(&self.config.secret_format)?;
        let new = NewToken {
            user_id: user_id.to_owned(),
            uuid: Uuid::new_v4(),
            title,
            created: crate::tokens::truncate_to_millis(now),
            expires: expires.map(crate::tokens::truncate_to_millis),
            scopes: Some(scopes),
        };
        let token = self
            .store
            .create_token_with(
                new,
                &secret.digest(),
                self.config.max_tokens_per_user,
                self.config.ttl_grace,
                rule,
                audit,
            )
            .await?;
        tracing::info!(user_id, token_uuid = %token.uuid, number = token.number, "token created");
        Ok(IssuedToken { token, secret })
    }
}

/// A new secret of `format` from the OS CSPRNG; a failing CSPRNG is a 500, logged.
pub fn generate_secret(format: &SecretFormat) -> Result<Secret, ApiError> {
    format.generate().map_err(|e| {
        tracing::error!(error = %e, "cannot generate a secret");
        ApiError::Internal
    })
}

/// The DynamoDB client, from the environment as Lambda sets it (`AWS_ENDPOINT_URL_DYNAMODB`
/// points it at DynamoDB Local; nothing else differs), with `dynamodb_timeouts`.
pub async fn dynamodb_client() -> Result<aws_sdk_dynamodb::Client, InitError> {
    check_endpoint_variables(&std::env::vars().collect())?;
    let config = aws_config::from_env()
        .timeout_config(dynamodb_timeouts())
        .load()
        .await;
    Ok(aws_sdk_dynamodb::Client::new(&config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_endpoint_variable_stops_init_by_name() {
        for variable in ENDPOINT_VARIABLES {
            let vars = [(variable.to_owned(), " ".to_owned())].into();
            let err = check_endpoint_variables(&vars).unwrap_err();
            assert_eq!(err.variable, variable);
            assert!(err.to_string().contains(variable), "{err}");
        }
        let vars = [(
            "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
            "http://127.0.0.1:8000".to_owned(),
        )]
        .into();
        assert!(check_endpoint_variables(&vars).is_ok());
        assert!(check_endpoint_variables(&Default::default()).is_ok());
    }

    #[tokio::test]
    async fn the_client_has_the_timeouts() {
        let client = dynamodb_client().await.unwrap();
        let timeouts = client.config().timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(DYNAMODB_CONNECT_TIMEOUT));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(DYNAMODB_ATTEMPT_TIMEOUT)
        );
        assert_eq!(
            timeouts.operation_timeout(),
            Some(DYNAMODB_OPERATION_TIMEOUT)
        );
    }
}
