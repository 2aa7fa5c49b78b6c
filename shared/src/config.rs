//! Configuration, read once at cold start from the environment the template declares.
//! A bad value stops the function at init with a message naming the variable.

use crate::tokens::scopes::ScopeSettings;
use crate::tokens::SecretFormat;
use chrono::Duration;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error in {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// A token lifetime: a duration, or none at all ("never expires" / "no maximum").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    Never,
    For(Duration),
}

impl Lifetime {
    /// Parses Quay's duration syntax (`90d`, `4w`, `12h`, `30m` = minutes, `45s`, `1y` = 365 days)
    /// or `never`/`none`.
    pub fn parse(text: &str) -> Result<Lifetime, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("never") || text.eq_ignore_ascii_case("none") {
            return Ok(Lifetime::Never);
        }
        parse_duration(text).map(Lifetime::For)
    }
}

/// `<digits><unit>` with unit one of s, m (minutes), h, d, w, y.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // The unit is the last character, whatever its width (the text may come from a request).
    let unit_at = text.char_indices().last().map_or(0, |(at, _)| at);
    let (digits, unit) = text.split_at(unit_at);
    let count: i64 = digits
        .parse()
        .ok()
        .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{text:?} is not a duration like 90d, 4w, 12h, 30m, 45s or 1y"))?;
    let seconds_per_unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "y" => 31_536_000,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit; use s, m, h, d, w or y"
            ))
        }
    };
    count
        .checked_mul(seconds_per_unit)
        .filter(|s| *s <= 100 * 31_536_000)
        .map(Duration::seconds)
        .ok_or_else(|| format!("{text:?} is longer than 100 years"))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Applied when a create request names no expiry; may be `Never`.
    pub default_lifetime: Lifetime,
    /// Requests beyond it are refused; `Never` means no maximum.
    pub max_lifetime: Lifetime,
    /// Live tokens one user may hold.
    pub max_tokens_per_user: u32,
    /// How long an expired token stays before cleanup (and DynamoDB TTL) removes it.
    pub ttl_grace: Duration,
    /// `last used` is written at most once per this window per token.
    pub last_used_throttle: Duration,
    /// How long audit log entries are kept.
    pub audit_log_retention: Duration,
    /// The longest `grace` a rotation may give the secret it replaces.
    pub max_rotation_grace: Duration,
    /// The scope vocabulary, the default of a create, and the authorizer's route rules.
    pub scopes: ScopeSettings,
    /// The EventBridge bus expiry notifications and leak reports go to (a name or an ARN).
    pub event_bus_name: String,
    /// How secrets look: the prefix scanners find them by.
    pub secret_format: SecretFormat,
}

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const DEFAULT_TOKEN_LIFETIME: &str = "DEFAULT_TOKEN_LIFETIME";
pub const MAX_TOKEN_LIFETIME: &str = "MAX_TOKEN_LIFETIME";
pub const MAX_TOKENS_PER_USER: &str = "MAX_TOKENS_PER_USER";
pub const TOKEN_TTL_GRACE: &str = "TOKEN_TTL_GRACE";
pub const LAST_USED_THROTTLE: &str = "LAST_USED_THROTTLE";
pub const MAX_ROTATION_GRACE: &str = "MAX_ROTATION_GRACE";
pub const AUDIT_LOG_RETENTION: &str = "AUDIT_LOG_RETENTION";
/// Space-separated scopes the deployment adds to Quay's.
pub const TOKEN_SCOPES: &str = "TOKEN_SCOPES";
/// Space-separated scopes a create without `scopes` asks for (unset: all the creator may grant).
pub const DEFAULT_TOKEN_SCOPES: &str = "DEFAULT_TOKEN_SCOPES";
/// JSON object: route key → the scopes (any one) the authorizer requires for it.
pub const AUTHORIZER_ROUTE_SCOPES: &str = "AUTHORIZER_ROUTE_SCOPES";
/// The EventBridge bus of the bundle's events (default: the account's `default` bus).
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
/// The prefix of new secrets (default `pat_`), the pattern a deployment registers with scanners.
pub const TOKEN_PREFIX: &str = "TOKEN_PREFIX";

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_map(&std::env::vars().collect())
    }

    /// Reads the same variables from a map; unset or empty means the default.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let lifetime = |name: &'static str, default: &str| {
            Lifetime::parse(get(name).unwrap_or(default)).map_err(|problem| ConfigError {
                variable: name,
                problem,
            })
        };
        let duration = |name: &'static str, default: &str| {
            parse_duration(get(name).unwrap_or(default)).map_err(|problem| ConfigError {
                variable: name,
                problem,
            })
        };

        let table_name = get(TABLE_NAME)
            .ok_or_else(|| ConfigError {
                variable: TABLE_NAME,
                problem: "is not set".into(),
            })?
            .to_owned();
        let default_lifetime = lifetime(DEFAULT_TOKEN_LIFETIME, "90d")?;
        let max_lifetime = lifetime(MAX_TOKEN_LIFETIME, "366d")?;
        let max_tokens_per_user = match get(MAX_TOKENS_PER_USER) {
            None => 100,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| ConfigError {
                    variable: MAX_TOKENS_PER_USER,
                    problem: format!("{text:?} is not a whole number from 1 to 10000"),
                })?,
        };
        let ttl_grace = duration(TOKEN_TTL_GRACE, "1d")?;
        let last_used_throttle = duration(LAST_USED_THROTTLE, "60s")?;
        let max_rotation_grace = duration(MAX_ROTATION_GRACE, "7d")?;
        let audit_log_retention = duration(AUDIT_LOG_RETENTION, "400d")?;
        let scopes = ScopeSettings::parse(
            get(TOKEN_SCOPES),
            get(DEFAULT_TOKEN_SCOPES),
            get(AUTHORIZER_ROUTE_SCOPES),
        )
        .map_err(|(at, problem)| ConfigError {
            variable: [TOKEN_SCOPES, DEFAULT_TOKEN_SCOPES, AUTHORIZER_ROUTE_SCOPES][at.min(2)],
            problem,
        })?;

        let event_bus_name = get(EVENT_BUS_NAME).unwrap_or("default").to_owned();
        let bus_char = |c: char| c.is_ascii_alphanumeric() || "._-/:".contains(c);
        if event_bus_name.len() > 1600 || !event_bus_name.chars().all(bus_char) {
            return Err(ConfigError {
                variable: EVENT_BUS_NAME,
                problem: format!(
                    "{event_bus_name:?} is not an event bus name or ARN (A-Z a-z 0-9 . _ - / :)"
                ),
            });
        }

        let secret_format = match get(TOKEN_PREFIX) {
            None => SecretFormat::default(),
            Some(prefix) => SecretFormat::new(prefix).map_err(|problem| ConfigError {
                variable: TOKEN_PREFIX,
                problem,
            })?,
        };

        if let (Lifetime::For(default), Lifetime::For(max)) = (default_lifetime, max_lifetime) {
            if default > max {
                return Err(ConfigError {
                    variable: DEFAULT_TOKEN_LIFETIME,
                    problem: format!("is longer than {MAX_TOKEN_LIFETIME}"),
                });
            }
        }
        if default_lifetime == Lifetime::Never && max_lifetime != Lifetime::Never {
            return Err(ConfigError {
                variable: DEFAULT_TOKEN_LIFETIME,
                problem: format!("is 'never' but {MAX_TOKEN_LIFETIME} sets a maximum"),
            });
        }
        Ok(Config {
            table_name,
            default_lifetime,
            max_lifetime,
            max_tokens_per_user,
            ttl_grace,
            last_used_throttle,
            max_rotation_grace,
            audit_log_retention,
            scopes,
            event_bus_name,
            secret_format,
        })
    }

    /// Quay's `expiring=true` window: 10% of the default lifetime (of 4 weeks when there is none),
    /// rounded up to whole seconds, at least one second.
    pub fn expiring_soon_window(&self) -> Duration {
        let lifetime = match self.default_lifetime {
            Lifetime::For(d) => d,
            Lifetime::Never => Duration::weeks(4),
        };
        let tenth = (lifetime.num_seconds() + 9) / 10;
        Duration::seconds(tenth.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_only_the_table_is_set() {
        let config = Config::from_map(&vars(&[(TABLE_NAME, "tokens")])).unwrap();
        assert_eq!(config.table_name, "tokens");
        assert_eq!(config.default_lifetime, Lifetime::For(Duration::days(90)));
        assert_eq!(config.max_lifetime, Lifetime::For(Duration::days(366)));
        assert_eq!(config.max_tokens_per_user, 100);
        assert_eq!(config.ttl_grace, Duration::days(1));
        assert_eq!(config.last_used_throttle, Duration::seconds(60));
        assert_eq!(config.max_rotation_grace, Duration::days(7));
        assert_eq!(config.secret_format.prefix(), "pat_");
        let acme = Config::from_map(&vars(&[(TABLE_NAME, "t"), (TOKEN_PREFIX, "acme_")])).unwrap();
        assert_eq!(acme.secret_format.prefix(), "acme_");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            (vec![], TABLE_NAME),
            (
                vec![(DEFAULT_TOKEN_LIFETIME, "90 days")],
                DEFAULT_TOKEN_LIFETIME,
            ),
            (vec![(MAX_TOKEN_LIFETIME, "12x")], MAX_TOKEN_LIFETIME),
            (vec![(MAX_TOKENS_PER_USER, "0")], MAX_TOKENS_PER_USER),
            (vec![(MAX_TOKENS_PER_USER, "many")], MAX_TOKENS_PER_USER),
            (vec![(TOKEN_TTL_GRACE, "-1d")], TOKEN_TTL_GRACE),
            (vec![(LAST_USED_THROTTLE, "never")], LAST_USED_THROTTLE),
            (vec![(TOKEN_SCOPES, "a,b")], TOKEN_SCOPES),
            (vec![(TOKEN_PREFIX, "acme_pat_")], TOKEN_PREFIX),
            (vec![(MAX_ROTATION_GRACE, "7 days")], MAX_ROTATION_GRACE),
            (vec![(AUDIT_LOG_RETENTION, "forever")], AUDIT_LOG_RETENTION),
            (
                vec![(DEFAULT_TOKEN_SCOPES, "repo:rea")],
                DEFAULT_TOKEN_SCOPES,
            ),
            (
                vec![(AUTHORIZER_ROUTE_SCOPES, "GET /x: repo:read")],
                AUTHORIZER_ROUTE_SCOPES,
            ),
            (
                vec![(DEFAULT_TOKEN_LIFETIME, "400d")],
                DEFAULT_TOKEN_LIFETIME,
            ),
            (
                vec![(DEFAULT_TOKEN_LIFETIME, "never")],
                DEFAULT_TOKEN_LIFETIME,
            ),
        ];
        for (extra, variable) in cases {
            let mut map = vars(&extra);
            if variable != TABLE_NAME {
                map.insert(TABLE_NAME.into(), "t".into());
            }
            let err = Config::from_map(&map).unwrap_err();
            assert_eq!(err.variable, variable, "{extra:?}");
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn never_is_allowed_for_both_lifetimes_together() {
        let config = Config::from_map(&vars(&[
            (TABLE_NAME, "t"),
            (DEFAULT_TOKEN_LIFETIME, "never"),
            (MAX_TOKEN_LIFETIME, "none"),
        ]))
        .unwrap();
        assert_eq!(config.default_lifetime, Lifetime::Never);
        assert_eq!(config.max_lifetime, Lifetime::Never);
    }

    #[test]
    fn durations_follow_quay_units() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("4w").unwrap(), Duration::weeks(4));
        assert_eq!(parse_duration("1y").unwrap(), Duration::days(365));
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("+5d").is_err());
        assert!(parse_duration("999999999999y").is_err());
        assert!(parse_duration("5µ").is_err());
        assert!(parse_duration("µ").is_err());
        assert!(parse_duration("X\u{c}\u{b}b}Rhµ").is_err());
    }

    #[test]
    fn expiring_window_is_a_tenth_of_the_default_lifetime() {
        let mut config = Config::from_map(&vars(&[(TABLE_NAME, "t")])).unwrap();
        assert_eq!(config.expiring_soon_window(), Duration::days(9));
        config.default_lifetime = Lifetime::Never;
        assert_eq!(config.expiring_soon_window(), Duration::seconds(241_920));
        config.default_lifetime = Lifetime::For(Duration::seconds(5));
        assert_eq!(config.expiring_soon_window(), Duration::seconds(1));
    }
}
