//! The token domain: one model both dialects are views of, and the lifetime rules.
//! No HTTP and no DynamoDB types here.

pub mod scopes;
pub mod secret;

use crate::config::{Config, Lifetime};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub use secret::{Secret, SecretDigest, SecretError, SecretFormat};

pub const TITLE_MAX_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub user_id: String,
    /// Stable id, shown by the Quay dialect.
    pub uuid: Uuid,
    /// Integer id, unique per user and never reused, shown by the Unleash dialect.
    pub number: u64,
    /// Quay's `title`, Unleash's `description`.
    pub title: String,
    pub created: DateTime<Utc>,
    /// `None` never expires.
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    /// What it may do; `None`: stored before scopes existed (see `scopes::ScopeSettings::held`).
    pub scopes: Option<Vec<String>>,
}

impl Token {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        matches!(self.expires, Some(at) if at <= now)
    }
}

/// A freshly issued token with its secret, which exists only until the create response is sent.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Token,
    pub secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 255 characters")]
    TooLong,
}

/// Trims and checks a title: 1..=255 characters after trimming.
pub fn validate_title(raw: &str) -> Result<String, TitleError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err(TitleError::Empty)
    } else if trimmed.chars().count() > TITLE_MAX_CHARS {
        Err(TitleError::TooLong)
    } else {
        Ok(trimmed.to_owned())
    }
}

/// What a create request asked for as expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedExpiry {
    /// Nothing given: the configured default lifetime applies.
    Default,
    At(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    #[error("must be in the future")]
    InPast,
    #[error("must be at most {max} from now")]
    BeyondMaximum { max: String },
    /// Past the last instant both dialects can write (and, with the removal grace added, store).
    #[error("must be before the year 10000")]
    TooFar,
}

/// The latest expiry a token may have: the end of year 9999, the last both dialects' date
/// formats can write. With any configured grace (at most 100 years) added, it is still far from
/// chrono's maximum, so the store's `expires + grace` cannot overflow.
pub fn latest_expiry() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(253_402_300_799_999).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Resolves a requested expiry against the configured default and maximum lifetimes.
pub fn resolve_expiry(
    requested: RequestedExpiry,
    now: DateTime<Utc>,
    config: &Config,
) -> Result<Option<DateTime<Utc>>, ExpiryError> {
    let expires = match requested {
        RequestedExpiry::Default => match config.default_lifetime {
            Lifetime::Never => return Ok(None),
            Lifetime::For(d) => now.checked_add_signed(d).ok_or(ExpiryError::TooFar)?,
        },
        RequestedExpiry::At(at) => at,
    };
    if expires <= now {
        return Err(ExpiryError::InPast);
    }
    if let Lifetime::For(max) = config.max_lifetime {
        // No limit representable is no limit exceeded; `latest_expiry` still applies.
        if now
            .checked_add_signed(max)
            .is_some_and(|limit| expires > limit)
        {
            return Err(ExpiryError::BeyondMaximum {
                max: describe_duration(max),
            });
        }
    }
    if expires > latest_expiry() || expires.checked_add_signed(config.ttl_grace).is_none() {
        return Err(ExpiryError::TooFar);
    }
    Ok(Some(expires))
}

/// "366 days", "12 hours": for error messages.
pub fn describe_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    let (count, unit) = if secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs % 3_600 == 0 {
        (secs / 3_600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// Dates are kept to the millisecond: the finest either dialect shows.
pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(default: &str, max: &str) -> Config {
        let vars: HashMap<String, String> = [
            ("TABLE_NAME", "t"),
            ("DEFAULT_TOKEN_LIFETIME", default),
            ("MAX_TOKEN_LIFETIME", max),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Config::from_map(&vars).unwrap()
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(validate_title("  ci  "), Ok("ci".to_owned()));
        assert_eq!(validate_title(" \t\n"), Err(TitleError::Empty));
        assert_eq!(validate_title(&"é".repeat(255)), Ok("é".repeat(255)));
        assert_eq!(validate_title(&"é".repeat(256)), Err(TitleError::TooLong));
    }

    #[test]
    fn default_expiry_follows_config() {
        let now = Utc::now();
        assert_eq!(
            resolve_expiry(RequestedExpiry::Default, now, &config("7d", "30d")),
            Ok(Some(now + Duration::days(7)))
        );
        assert_eq!(
            resolve_expiry(RequestedExpiry::Default, now, &config("never", "never")),
            Ok(None)
        );
    }

    #[test]
    fn requested_expiry_must_be_future_and_within_maximum() {
        let now = Utc::now();
        let c = config("7d", "30d");
        assert_eq!(
            resolve_expiry(RequestedExpiry::At(now), now, &c),
            Err(ExpiryError::InPast)
        );
        assert_eq!(
            resolve_expiry(RequestedExpiry::At(now + Duration::days(31)), now, &c),
            Err(ExpiryError::BeyondMaximum {
                max: "30 days".into()
            })
        );
        let at = now + Duration::days(30);
        assert_eq!(
            resolve_expiry(RequestedExpiry::At(at), now, &c),
            Ok(Some(at))
        );
        let far = now + Duration::days(365 * 1000);
        assert_eq!(
            resolve_expiry(RequestedExpiry::At(far), now, &config("never", "never")),
            Ok(Some(far))
        );
    }
}
