//! What the settings page is told about the deployment, read once at cold start: the issuer
//! and the page's OIDC client id, the lifetimes a create may ask for, the grace a rotation may
//! give, and the scope vocabulary.

use crate::config::{Config, ConfigError, Lifetime};
use crate::oidc::{OidcSettings, OIDC_ISSUER};
use crate::tokens::describe_duration;
use crate::tokens::scopes::USER_ADMIN;
use chrono::Duration;
use http::Uri;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The page's client id at the issuer (a public client: no secret).
pub const OIDC_CLIENT_ID: &str = "OIDC_CLIENT_ID";

/// What the page asks the issuer for: a session that may manage tokens.
const REQUESTED_SCOPE: &str = "openid";

/// The expiry choices GitHub offers, and a year; those within the maximum are shown.
const EXPIRY_CHOICES_DAYS: [i64; 6] = [7, 30, 60, 90, 180, 365];
/// Graces a rotation may offer; those within `MAX_ROTATION_GRACE` are shown.
const GRACE_CHOICES: [(&str, i64); 3] = [("1h", 3_600), ("1d", 86_400), ("7d", 604_800)];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSettings {
    /// The issuer, when sessions are accepted (`OIDC_ISSUER`).
    pub issuer: Option<String>,
    /// `None`: sign-in is not configured, and the page says so.
    pub client_id: Option<String>,
    pub default_lifetime: Lifetime,
    pub max_lifetime: Lifetime,
    pub max_rotation_grace: Duration,
    pub scopes: Vec<String>,
    pub default_scopes: Option<Vec<String>>,
}

impl PageSettings {
    /// The bundle's configuration, the `OIDC_*` settings and `OIDC_CLIENT_ID`: at most 255
    /// visible ASCII characters (RFC 6749's client id), and only with an issuer.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<PageSettings, ConfigError> {
        let config = Config::from_map(vars)?;
        let oidc = OidcSettings::from_map(vars)?;
        let client_id = vars
            .get(OIDC_CLIENT_ID)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let problem = |problem: String| ConfigError {
            variable: OIDC_CLIENT_ID,
            problem,
        };
        if let Some(id) = client_id {
            if id.len() > 255 || !id.chars().all(|c| (' '..='~').contains(&c)) {
                return Err(problem(format!(
                    "{id:?} is not a client id (1 to 255 visible ASCII characters)"
                )));
            }
            if oidc.is_none() {
                return Err(problem(format!(
                    "is set but {OIDC_ISSUER} is not: the page signs in with that issuer"
                )));
            }
        }
        Ok(PageSettings {
            issuer: oidc.map(|o| o.issuer),
            client_id: client_id.map(str::to_owned),
            default_lifetime: config.default_lifetime,
            max_lifetime: config.max_lifetime,
            max_rotation_grace: config.max_rotation_grace,
            scopes: config.scopes.known,
            default_scopes: config.scopes.default,
        })
    }

    /// `scheme://host[:port]` of the issuer, for the page's `connect-src`.
    pub fn issuer_origin(&self) -> Option<String> {
        let uri: Uri = self.issuer.as_deref()?.parse().ok()?;
        Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
    }

    /// The object the page reads from its `data-config` attribute.
    pub fn to_json(&self) -> Value {
        let within = |seconds: i64| match self.max_lifetime {
            Lifetime::Never => true,
            Lifetime::For(max) => seconds <= max.num_seconds(),
        };
        let choice = |seconds: i64| json!({"label": describe_duration(Duration::seconds(seconds)), "seconds": seconds});
        let default = match self.default_lifetime {
            Lifetime::For(d) => choice(d.num_seconds()),
            Lifetime::Never => json!({"label": "No expiration", "seconds": null}),
        };
        let expiry: Vec<Value> = EXPIRY_CHOICES_DAYS
            .iter()
            .map(|days| days * 86_400)
            .filter(|s| within(*s) && default["seconds"] != *s)
            .map(choice)
            .collect();
        let grace: Vec<Value> = GRACE_CHOICES
            .iter()
            .filter(|(_, s)| *s <= self.max_rotation_grace.num_seconds())
            .map(|(value, s)| {
                json!({"value": value, "label": describe_duration(Duration::seconds(*s))})
            })
            .collect();
        let enabled = self.issuer.is_some() && self.client_id.is_some();
        json!({
            "issuer": if enabled { self.issuer.as_deref() } else { None },
            "client_id": if enabled { self.client_id.as_deref() } else { None },
            "scope": format!("{REQUESTED_SCOPE} {USER_ADMIN}"),
            "scopes": self.scopes,
            "default_scopes": self.default_scopes,
            "default_expiry": default,
            "expiry": expiry,
            "max_expiry_seconds": match self.max_lifetime {
                Lifetime::For(max) => Some(max.num_seconds()),
                Lifetime::Never => None,
            },
            "grace": grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("TABLE_NAME".into(), "tokens".into());
        map
    }

    const OIDC: [(&str, &str); 3] = [
        ("OIDC_ISSUER", "https://id.example.com/realms/x"),
        ("OIDC_AUDIENCE", "token-service"),
        ("OIDC_JWKS_URL", "https://id.example.com/realms/x/certs"),
    ];

    #[test]
    fn the_client_id_is_checked_and_needs_an_issuer() {
        let with = |id: &str| {
            let mut map = vars(&OIDC);
            map.insert(OIDC_CLIENT_ID.into(), id.into());
            PageSettings::from_map(&map)
        };
        let settings = with("token-page").unwrap();
        assert_eq!(settings.client_id.as_deref(), Some("token-page"));
        assert_eq!(
            settings.issuer_origin().as_deref(),
            Some("https://id.example.com")
        );
        for bad in ["tab\there", "é", &"x".repeat(256)] {
            assert_eq!(with(bad).unwrap_err().variable, OIDC_CLIENT_ID, "{bad:?}");
        }
        let err = PageSettings::from_map(&vars(&[(OIDC_CLIENT_ID, "page")])).unwrap_err();
        assert_eq!(err.variable, OIDC_CLIENT_ID);
        assert!(err.to_string().contains(OIDC_ISSUER), "{err}");
    }

    #[test]
    fn without_a_client_id_the_page_offers_no_sign_in() {
        let settings = PageSettings::from_map(&vars(&OIDC)).unwrap();
        let page = settings.to_json();
        assert_eq!(
            (&page["issuer"], &page["client_id"]),
            (&Value::Null, &Value::Null)
        );
    }

    #[test]
    fn expiry_choices_stay_within_the_maximum() {
        let settings = PageSettings::from_map(&vars(&[
            ("MAX_TOKEN_LIFETIME", "30d"),
            ("DEFAULT_TOKEN_LIFETIME", "7d"),
        ]))
        .unwrap();
        let page = settings.to_json();
        assert_eq!(
            page["default_expiry"],
            json!({"label": "7 days", "seconds": 604_800})
        );
        assert_eq!(
            page["expiry"],
            json!([{"label": "30 days", "seconds": 2_592_000}])
        );
        assert_eq!(page["max_expiry_seconds"], 2_592_000);
        let values: Vec<&Value> = page["grace"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| &g["value"])
            .collect();
        assert_eq!(values, ["1h", "1d", "7d"]);

        let never = PageSettings::from_map(&vars(&[
            ("MAX_TOKEN_LIFETIME", "none"),
            ("DEFAULT_TOKEN_LIFETIME", "never"),
            ("MAX_ROTATION_GRACE", "2h"),
        ]))
        .unwrap()
        .to_json();
        assert_eq!(never["default_expiry"]["seconds"], Value::Null);
        assert_eq!(never["expiry"].as_array().map(Vec::len), Some(6));
        assert_eq!(never["grace"], json!([{"value": "1h", "label": "1 hour"}]));
    }
}
