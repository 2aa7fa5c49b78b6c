//! Sessions from an OIDC issuer: which issuer is accepted (here), its key set (`jwks`) and
//! the verification of its JWTs (`jwt`). Which issuer's sessions are accepted: three variables, read once at cold start, all set
//! or none. The key set's URL must be HTTPS, or plain HTTP to a loopback address (tests, local
//! runs), decided on the parsed address, never on a prefix of the host name.

pub mod jwks;
pub mod jwt;

pub use jwt::{JwtRejection, JwtVerifier, Session};

use crate::config::ConfigError;
use http::Uri;
use std::collections::HashMap;

pub const OIDC_ISSUER: &str = "OIDC_ISSUER";
pub const OIDC_AUDIENCE: &str = "OIDC_AUDIENCE";
pub const OIDC_JWKS_URL: &str = "OIDC_JWKS_URL";

/// Which issuer's sessions are accepted, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// Compared exactly with the `iss` claim.
    pub issuer: String,
    /// Must appear in the `aud` claim.
    pub audience: String,
    pub jwks_url: Uri,
}

impl OidcSettings {
    /// All three variables set: sessions are accepted. All unset or empty: JWTs are refused.
    /// Anything in between is a configuration error naming the first missing variable.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Option<OidcSettings>, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let names = [OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL];
        let values = names.map(get);
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let [Some(issuer), Some(audience), Some(url)] = values else {
            let missing = names
                .iter()
                .zip(values)
                .find_map(|(name, value)| value.is_none().then_some(*name))
                .unwrap_or(OIDC_ISSUER);
            return Err(ConfigError {
                variable: missing,
                problem: format!(
                    "is not set; set {OIDC_ISSUER}, {OIDC_AUDIENCE} and {OIDC_JWKS_URL} together to accept JWTs, or none of them to refuse JWTs"
                ),
            });
        };
        Ok(Some(OidcSettings {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks_url: crate::keys::parse_key_url(OIDC_JWKS_URL, url)?,
        }))
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

    const ALL: [(&str, &str); 3] = [
        (OIDC_ISSUER, "https://issuer.example.com"),
        (OIDC_AUDIENCE, "token-service"),
        (
            OIDC_JWKS_URL,
            "https://issuer.example.com/.well-known/jwks.json",
        ),
    ];

    #[test]
    fn all_three_settings_or_none() {
        assert_eq!(OidcSettings::from_map(&vars(&[])), Ok(None));
        assert_eq!(
            OidcSettings::from_map(&vars(&[(OIDC_ISSUER, " "), (OIDC_AUDIENCE, "")])),
            Ok(None)
        );
        let settings = OidcSettings::from_map(&vars(&ALL)).unwrap().unwrap();
        assert_eq!(settings.issuer, "https://issuer.example.com");
        assert_eq!(settings.audience, "token-service");
        assert_eq!(settings.jwks_url.host(), Some("issuer.example.com"));
    }

    #[test]
    fn a_partial_set_names_the_missing_variable() {
        for missing in [OIDC_ISSUER, OIDC_AUDIENCE, OIDC_JWKS_URL] {
            let partial: Vec<(&str, &str)> =
                ALL.iter().copied().filter(|(k, _)| *k != missing).collect();
            let err = OidcSettings::from_map(&vars(&partial)).unwrap_err();
            assert_eq!(err.variable, missing);
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn the_jwks_url_must_be_https_unless_loopback() {
        // The rule itself is `crate::keys::parse_key_url`'s, tested there.
        for (url, ok) in [
            ("http://127.0.0.1:8080/jwks", true),
            ("http://issuer.example.com/keys", false),
        ] {
            let mut map = vars(&ALL);
            map.insert(OIDC_JWKS_URL.into(), url.into());
            let result = OidcSettings::from_map(&map);
            assert_eq!(result.is_ok(), ok, "{url}");
            if let Err(err) = result {
                assert_eq!(err.variable, OIDC_JWKS_URL);
            }
        }
    }
}
