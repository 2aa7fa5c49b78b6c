//! Sessions: `Authorization: Bearer <JWT>` signed by the configured OIDC issuer.
//!
//! Only RS256 and ES256 are accepted (never `none`, never HMAC: an HMAC "signature" keyed with a
//! public key is the classic forgery). The key comes from the issuer's JWKS by the token's `kid`,
//! and must be of the token's algorithm. A `typ` header, when present, must name an access token
//! (`at+jwt`, RFC 9068) or a plain `JWT`, so other JWTs of the issuer (logout tokens, DPoP
//! proofs) are refused. `iss`, `aud`, `exp` and `sub` are required; `exp` and `nbf` are checked
//! with [`LEEWAY_SECONDS`] of allowance for clock skew between us and the issuer.

use super::jwks::KeySet;
use super::{OidcSettings, OIDC_JWKS_URL};
use crate::config::ConfigError;
use crate::keys::{KeyCache, KeyLookupError, KeySource, DEFAULT_REFETCH_INTERVAL};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use std::time::Duration;

/// Allowance for clock skew on `exp` and `nbf` (JWTs only; our own tokens' expiry is exact).
pub const LEEWAY_SECONDS: u64 = 30;
/// Far above any real session token; refused before any parsing.
const MAX_JWT_BYTES: usize = 16 * 1024;
/// Same bound as the route handlers' caller identity puts on user ids.
const MAX_SUBJECT_BYTES: usize = 512;

/// Why a JWT was refused; `code` is what the decision log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    #[error("not a well-formed JWS")]
    Malformed,
    #[error("the algorithm is not RS256 or ES256, or not the key's")]
    AlgorithmNotAllowed,
    #[error("the header's typ is not at+jwt or JWT")]
    TypeNotAllowed,
    #[error("the header names no key id")]
    MissingKeyId,
    #[error("the key id is not in the issuer's key set")]
    UnknownKey,
    #[error("the issuer's key set cannot be fetched")]
    KeysUnavailable,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("issued by another issuer")]
    WrongIssuer,
    #[error("issued for another audience")]
    WrongAudience,
    #[error("a required claim (exp, iss, aud, sub) is missing")]
    MissingClaim,
    #[error("the subject is empty, too long or has control characters")]
    BadSubject,
}

impl JwtRejection {
    pub fn code(self) -> &'static str {
        match self {
            JwtRejection::Malformed => "jwt_malformed",
            JwtRejection::AlgorithmNotAllowed => "jwt_algorithm_not_allowed",
            JwtRejection::TypeNotAllowed => "jwt_type_not_allowed",
            JwtRejection::MissingKeyId => "jwt_missing_kid",
            JwtRejection::UnknownKey => "jwt_unknown_kid",
            JwtRejection::KeysUnavailable => "jwt_keys_unavailable",
            JwtRejection::BadSignature => "jwt_bad_signature",
            JwtRejection::Expired => "jwt_expired",
            JwtRejection::NotYetValid => "jwt_not_yet_valid",
            JwtRejection::WrongIssuer => "jwt_wrong_issuer",
            JwtRejection::WrongAudience => "jwt_wrong_audience",
            JwtRejection::MissingClaim => "jwt_missing_claim",
            JwtRejection::BadSubject => "jwt_bad_subject",
        }
    }
}

/// Who a verified session belongs to, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub subject: String,
    pub scopes: Vec<String>,
}

pub struct JwtVerifier {
    settings: OidcSettings,
    keys: KeyCache<KeySet>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Builds the HTTPS client (loading the system's root certificates) but fetches nothing:
    /// the key set is fetched on the first session, then cached.
    pub fn new(settings: OidcSettings) -> Result<JwtVerifier, ConfigError> {
        JwtVerifier::with_refetch_interval(settings, DEFAULT_REFETCH_INTERVAL)
    }

    /// As `new`, with another least time between key set fetches (tests use zero).
    pub fn with_refetch_interval(
        settings: OidcSettings,
        refetch_interval: Duration,
    ) -> Result<JwtVerifier, ConfigError> {
        let source = KeySource::new(settings.jwks_url.clone()).map_err(|e| ConfigError {
            variable: OIDC_JWKS_URL,
            problem: e.to_string(),
        })?;
        Ok(JwtVerifier {
            settings,
            keys: KeyCache::new(source, refetch_interval),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    pub async fn verify(&self, token: &str) -> Result<Session, JwtRejection> {
        if token.len() > MAX_JWT_BYTES {
            return Err(JwtRejection::Malformed);
        }
        let header = peek_header(token)?;
        let algorithm = accepted_algorithm(&header.alg)?;
        accepted_type(header.typ.as_deref())?;
        let kid = header.kid.ok_or(JwtRejection::MissingKeyId)?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyLookupError::Unknown => JwtRejection::UnknownKey,
            KeyLookupError::Unavailable => JwtRejection::KeysUnavailable,
        })?;
        if key.algorithm != algorithm {
            return Err(JwtRejection::AlgorithmNotAllowed);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(algorithm))
            .map_err(|e| rejection(e.kind()))?
            .claims;
        session(claims)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }
}

/// The header fields that choose the key and say what the token is, read before anything is
/// verified (as every JWS verifier must); the library parses the header again when it verifies.
#[derive(serde::Deserialize)]
struct PeekedHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

fn peek_header(token: &str) -> Result<PeekedHeader, JwtRejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtRejection::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtRejection::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| JwtRejection::Malformed)
}

fn accepted_algorithm(alg: &str) -> Result<Algorithm, JwtRejection> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        _ => Err(JwtRejection::AlgorithmNotAllowed),
    }
}

/// An absent `typ` is accepted (many issuers omit it); otherwise an access token's (RFC 9068
/// `at+jwt`) or a plain `JWT`, case-insensitive, with or without the `application/` prefix
/// (RFC 7515 §4.1.9). Anything else (`dpop+jwt`, `logout+jwt`, ...) is another kind of token.
fn accepted_type(typ: Option<&str>) -> Result<(), JwtRejection> {
    let Some(typ) = typ else { return Ok(()) };
    let lower = typ.to_ascii_lowercase();
    let media_type = lower.strip_prefix("application/").unwrap_or(&lower);
    match media_type {
        "at+jwt" | "jwt" => Ok(()),
        _ => Err(JwtRejection::TypeNotAllowed),
    }
}

fn rejection(kind: &ErrorKind) -> JwtRejection {
    match kind {
        ErrorKind::ExpiredSignature => JwtRejection::Expired,
        ErrorKind::ImmatureSignature => JwtRejection::NotYetValid,
        ErrorKind::InvalidIssuer => JwtRejection::WrongIssuer,
        ErrorKind::InvalidAudience => JwtRejection::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => JwtRejection::MissingClaim,
        ErrorKind::InvalidSubject => JwtRejection::BadSubject,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => JwtRejection::AlgorithmNotAllowed,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidClaimFormat(_) => JwtRejection::Malformed,
        // Signature failures, and key errors (a published key that cannot verify anything).
        _ => JwtRejection::BadSignature,
    }
}

/// The claims this service reads; `iss`, `aud`, `exp` and `nbf` are checked by the library.
#[derive(serde::Deserialize)]
struct Claims {
    sub: Option<String>,
    /// OAuth's space-separated `scope` (RFC 8693 §4.2); some issuers send an array.
    #[serde(default)]
    scope: Option<Value>,
    /// `scp`: Azure AD sends a space-separated string, Okta an array.
    #[serde(default)]
    scp: Option<Value>,
}

fn session(claims: Claims) -> Result<Session, JwtRejection> {
    let subject = claims.sub.ok_or(JwtRejection::MissingClaim)?;
    if subject.is_empty()
        || subject.len() > MAX_SUBJECT_BYTES
        || subject.chars().any(char::is_control)
    {
        return Err(JwtRejection::BadSubject);
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in [&claims.scope, &claims.scp]
        .into_iter()
        .flatten()
        .flat_map(scope_values)
    {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    Ok(Session { subject, scopes })
}

fn scope_values(claim: &Value) -> Vec<String> {
    let words = |text: &str| {
        crate::tokens::scopes::split(text)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    match claim {
        Value::String(text) => words(text),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(words)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_come_from_scope_and_scp_as_strings_or_arrays() {
        let s = session(claims(
            json!({"sub": "bob", "scope": "openid user:admin", "scp": ["user:admin", "repo:read"]}),
        ))
        .unwrap();
        assert_eq!(s.subject, "bob");
        assert_eq!(s.scopes, ["openid", "user:admin", "repo:read"]);
        assert_eq!(
            session(claims(json!({"sub": "bob"}))).unwrap().scopes,
            Vec::<String>::new()
        );
        assert_eq!(
            session(claims(json!({"sub": "bob", "scp": "a  b"})))
                .unwrap()
                .scopes,
            ["a", "b"]
        );
    }

    #[test]
    fn the_subject_must_be_a_plausible_user_id() {
        for bad in [json!(""), json!("a\nb"), json!("x".repeat(513))] {
            assert_eq!(
                session(claims(json!({ "sub": bad }))),
                Err(JwtRejection::BadSubject)
            );
        }
        assert_eq!(session(claims(json!({}))), Err(JwtRejection::MissingClaim));
    }

    #[test]
    fn only_rs256_and_es256_pass_the_header_check() {
        let header = |alg: &str| {
            format!(
                "{}.e30.sig",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k"}).to_string())
            )
        };
        for alg in ["RS256", "ES256"] {
            let peeked = peek_header(&header(alg)).unwrap();
            assert!(accepted_algorithm(&peeked.alg).is_ok());
            assert_eq!(peeked.kid.as_deref(), Some("k"));
        }
        for alg in ["none", "HS256", "RS384", "PS256", "ES384", "EdDSA", ""] {
            let peeked = peek_header(&header(alg)).unwrap();
            assert_eq!(
                accepted_algorithm(&peeked.alg),
                Err(JwtRejection::AlgorithmNotAllowed)
            );
        }
        for malformed in ["", "a.b", "a.b.c.d", "!!.e30.x", "e30"] {
            assert!(peek_header(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn only_access_token_and_plain_jwt_types_pass() {
        let header = |typ: Value| {
            let header = json!({"alg": "ES256", "kid": "k", "typ": typ});
            format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(header.to_string()))
        };
        let typ_of = |typ: Value| peek_header(&header(typ)).unwrap().typ;
        assert_eq!(typ_of(Value::Null), None);
        assert_eq!(accepted_type(None), Ok(()));
        for good in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "JWT",
            "jwt",
            "application/jwt",
        ] {
            assert_eq!(
                accepted_type(typ_of(json!(good)).as_deref()),
                Ok(()),
                "{good}"
            );
        }
        for bad in [
            "dpop+jwt",
            "logout+jwt",
            "id_token",
            "secevent+jwt",
            "JOSE",
            "",
            "at+jwt2",
        ] {
            let typ = typ_of(json!(bad));
            assert_eq!(
                accepted_type(typ.as_deref()),
                Err(JwtRejection::TypeNotAllowed),
                "{bad}"
            );
        }
        // Not even a string: not a header this service reads.
        assert!(peek_header(&header(json!(1))).is_err());
    }

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }
}
