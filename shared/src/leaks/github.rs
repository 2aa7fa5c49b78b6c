//! GitHub's secret scanning partner endpoint, `POST /api/v1/secret-scanning/github`: GitHub
//! posts `[{"token", "type", "url", "source"}]` for every match of our pattern in public code,
//! signed: `Github-Public-Key-Signature` is base64 ECDSA P-256 / SHA-256 over the raw body,
//! by the key `Github-Public-Key-Identifier` names among those published at
//! `GITHUB_PUBLIC_KEYS_URL` (`crate::keys` fetches and caches them as it does the OIDC
//! issuer's). Unsigned or badly signed: 401, nothing read. Signed: each live token is revoked
//! (`super::revoke_reported`) and the answer is GitHub's feedback,
//! `[{"token_hash", "token_type", "label"}]`, never the token itself.

use super::{revoke_reported, Reported, Reporter};
use crate::app::App;
use crate::config::ConfigError;
use crate::error::ApiError;
use crate::events::EventBus;
use crate::http;
use crate::identity::request_audit;
use crate::keys::{self, KeyCache, KeyDocument, KeyLookupError, KeySource};
use crate::response::json_response;
use crate::store::{Actor, LeakReport};
use crate::tokens::SecretDigest;
use ::http::Uri;
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where GitHub's signing keys are published (default: GitHub's own document).
pub const GITHUB_PUBLIC_KEYS_URL: &str = "GITHUB_PUBLIC_KEYS_URL";
pub const DEFAULT_PUBLIC_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// A DER ECDSA P-256 signature is at most 72 bytes; anything much longer is not one.
const MAX_SIGNATURE_CHARS: usize = 256;

/// GitHub's key document `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`:
/// each key's SubjectPublicKeyInfo (DER), by identifier. Keys no longer current still verify
/// (GitHub signs with them until they are withdrawn from the document).
#[derive(Debug, Default)]
pub struct PublicKeys {
    keys: HashMap<String, Arc<[u8]>>,
}

impl KeyDocument for PublicKeys {
    type Key = Arc<[u8]>;
    const NAME: &'static str = "GitHub's secret scanning keys";

    fn parse(document: &[u8]) -> Result<PublicKeys, String> {
        #[derive(Deserialize)]
        struct Document {
            public_keys: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            key_identifier: String,
            key: String,
        }
        let document: Document = serde_json::from_slice(document)
            .map_err(|e| format!("not GitHub's public keys document: {e}"))?;
        let keys = document
            .public_keys
            .into_iter()
            .filter_map(|entry| Some((entry.key_identifier, pem_to_der(&entry.key)?.into())))
            .collect();
        Ok(PublicKeys { keys })
    }

    fn get(&self, id: &str) -> Option<Arc<[u8]>> {
        self.keys.get(id).cloned()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The DER inside a `PUBLIC KEY` PEM block.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(base64).ok().filter(|der| !der.is_empty())
}

/// Why a report is not accepted as GitHub's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is missing or not well-formed.
    Missing,
    /// The key id is not among the published keys.
    UnknownKey,
    /// The keys could not be fetched: GitHub should retry later.
    KeysUnavailable,
    /// The signature does not verify.
    Invalid,
}

/// GitHub's keys, cached across invocations.
pub struct GithubKeys {
    cache: KeyCache<PublicKeys>,
}

impl GithubKeys {
    /// `GITHUB_PUBLIC_KEYS_URL` (HTTPS, or HTTP to a loopback address), or GitHub's.
    pub fn from_env() -> Result<GithubKeys, ConfigError> {
        let url = std::env::var(GITHUB_PUBLIC_KEYS_URL)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PUBLIC_KEYS_URL.to_owned());
        GithubKeys::new(&url, keys::DEFAULT_REFETCH_INTERVAL)
    }

    /// Builds the HTTPS client, fetches nothing until the first report.
    pub fn new(url: &str, refetch_interval: Duration) -> Result<GithubKeys, ConfigError> {
        let url: Uri = keys::parse_key_url(GITHUB_PUBLIC_KEYS_URL, url.trim())?;
        let source = KeySource::new(url).map_err(|e| ConfigError {
            variable: GITHUB_PUBLIC_KEYS_URL,
            problem: e.to_string(),
        })?;
        Ok(GithubKeys {
            cache: KeyCache::new(source, refetch_interval),
        })
    }

    /// Whether `signature` (base64 DER) is the key `key_id`'s over `body`.
    pub async fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return Err(SignatureError::Missing);
        };
        if key_id.is_empty() || signature.len() > MAX_SIGNATURE_CHARS {
            return Err(SignatureError::Missing);
        }
        let signature = STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::Missing)?;
        let key = self.cache.key(key_id).await.map_err(|e| match e {
            KeyLookupError::Unknown => SignatureError::UnknownKey,
            KeyLookupError::Unavailable => SignatureError::KeysUnavailable,
        })?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key[..])
            .verify(body, &signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// One match GitHub reports.
#[derive(Debug, Deserialize)]
struct Match {
    token: String,
    #[serde(rename = "type", default)]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// `POST /api/v1/secret-scanning/github` → 200 GitHub's feedback array.
pub async fn report(
    app: &App,
    bus: &EventBus,
    keys: &GithubKeys,
    request: Request,
) -> Response<Body> {
    crate::quay::respond(&request, handle(app, bus, keys, &request, Utc::now())).await
}

async fn handle(
    app: &App,
    bus: &EventBus,
    keys: &GithubKeys,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ApiError> {
    http::require_method(request, Method::POST)?;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let body = http::body_bytes(request);
    keys.verify(header(KEY_ID_HEADER), header(SIGNATURE_HEADER), body)
        .await
        .map_err(|e| match e {
            SignatureError::KeysUnavailable => ApiError::Unavailable,
            _ => ApiError::InvalidCredentials(
                "Missing or invalid Github-Public-Key-Signature".into(),
            ),
        })?;
    // Signed by GitHub: the body may be as large as the gateway allows.
    let value = http::json_body(request, usize::MAX)?;
    let matches: Vec<Match> = serde_json::from_value(value).map_err(|e| {
        ApiError::bad(format!(
            "The body must be an array of {{\"token\", \"type\", \"url\", \"source\"}}: {e}"
        ))
    })?;
    let reported: Vec<Reported> = matches
        .iter()
        .map(|m| Reported {
            text: &m.token,
            report: LeakReport::new(m.url.as_deref(), m.source.as_deref()),
        })
        .collect();
    let audit = request_audit(request, Actor::System, now);
    let revoked =
        revoke_reported(app, bus, &reported, &audit, Reporter::GithubSecretScanning).await?;
    let feedback: Vec<_> = matches
        .iter()
        .zip(revoked)
        .map(|(m, revoked)| {
            json!({
                "token_hash": SecretDigest::of_text(&m.token).to_hex(),
                "token_type": m.token_type,
                "label": if revoked { "true_positive" } else { "false_positive" },
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &feedback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn pem(der: &[u8]) -> String {
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn parses_githubs_document_and_skips_keys_it_cannot_read() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let document = json!({"public_keys": [
            {"key_identifier": "good", "key": pem(der.as_ref()), "is_current": true},
            {"key_identifier": "not-pem", "key": "MFkwEwYH", "is_current": false},
            {"key_identifier": "empty", "key": "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----", "is_current": false},
        ]});
        let keys = PublicKeys::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(&keys.get("good").unwrap()[..], der.as_ref());
        assert!(PublicKeys::parse(b"{\"keys\": []}").is_err());
        assert!(PublicKeys::parse(b"[]").is_err());
    }

    #[test]
    fn a_signature_verifies_over_exactly_the_body() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let body = br#"[{"token":"pat_x","type":"t","url":"u","source":"content"}]"#;
        let signature = pair.sign(&SystemRandom::new(), body).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let key = pem_to_der(&pem(der.as_ref())).unwrap();
        let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key);
        assert!(verifier.verify(body, signature.as_ref()).is_ok());
        assert!(verifier.verify(b"[]", signature.as_ref()).is_err());
    }
}
