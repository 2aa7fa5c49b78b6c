//! The OIDC issuer's signing keys (its JWKS), fetched over HTTPS and kept in the warm process.
//!
//! Cached keys serve every request without I/O. The set is fetched again only when a token names a
//! key id (`kid`) the cache lacks (the issuer rotated keys) or the set is older than
//! [`MAX_KEY_SET_AGE`] (so a key the issuer withdrew stops working), and never more often than the
//! refetch interval, so a flood of made-up key ids cannot make us hammer the issuer.

use bytes::Bytes;
use http::header::ACCEPT;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The least time between two fetches of the key set.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// A key set older than this is fetched again on next use (kept if the fetch fails).
pub const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3_600);
/// Connect, send and read the whole key set within this, or give up.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Issuers publish a handful of keys; anything far larger is not a key set.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot load the system's root certificates: {0}")]
    RootCertificates(std::io::Error),
    #[error("cannot fetch the key set: {0}")]
    Fetch(String),
    #[error("the key set request timed out after {FETCH_TIMEOUT:?}")]
    Timeout,
    #[error("the issuer answered the key set request with HTTP {0}")]
    Status(u16),
    #[error("the key set is not a JWKS document: {0}")]
    NotAKeySet(String),
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// Not in the issuer's current key set.
    Unknown,
    /// The key set could not be fetched, and no cached key has this id.
    Unavailable,
}

/// A public key the issuer signs with, and the one algorithm it may verify.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The usable keys of a JWKS document, by key id.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Keeps the signature keys this service accepts (RSA for RS256, P-256 for ES256) that have a
    /// key id; skips the rest, so one exotic key does not make a whole set unusable.
    pub fn parse(document: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| JwksError::NotAKeySet(e.to_string()))?;
        let keys = document
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| usable_key(&jwk))
            .collect();
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.get(kid).cloned()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn usable_key(jwk: &Jwk) -> Option<(String, Arc<VerifyingKey>)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let (algorithm, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?,
        ),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?,
        ),
        _ => return None,
    };
    // A key that names its algorithm may verify only that one.
    let named_matches = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    named_matches.then(|| (kid, Arc::new(VerifyingKey { algorithm, key })))
}

/// Fetches the key set from its URL (HTTPS with the system's roots; plain HTTP is allowed by the
/// settings only for loopback addresses, for tests and local runs).
pub struct JwksSource {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl JwksSource {
    pub fn new(url: Uri) -> Result<JwksSource, JwksError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(JwksError::RootCertificates)?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(JwksSource { url, client })
    }

    pub async fn fetch(&self) -> Result<KeySet, JwksError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_document())
            .await
            .map_err(|_| JwksError::Timeout)
            .and_then(|document| KeySet::parse(&document?))
    }

    async fn fetch_document(&self) -> Result<Bytes, JwksError> {
        let request = Request::get(self.url.clone())
            .header(ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| JwksError::Fetch(e.to_string()))
    }
}

/// The key set as last fetched, and when.
#[derive(Default)]
struct Cached {
    keys: KeySet,
    fetched_at: Option<Instant>,
}

/// The last attempt to fetch, successful or not: what the refetch interval is counted from.
#[derive(Default)]
struct LastAttempt {
    at: Option<Instant>,
    failed: bool,
}

pub struct KeyCache {
    source: JwksSource,
    refetch_interval: Duration,
    /// Read on every request; never held across an await.
    cached: RwLock<Cached>,
    /// Held across a fetch, so concurrent requests that miss wait for one fetch instead of each
    /// starting their own.
    last_attempt: tokio::sync::Mutex<LastAttempt>,
}

impl KeyCache {
    pub fn new(source: JwksSource, refetch_interval: Duration) -> KeyCache {
        KeyCache {
            source,
            refetch_interval,
            cached: RwLock::default(),
            last_attempt: tokio::sync::Mutex::default(),
        }
    }

    /// The key with this id: from the cache when it is there and the set is fresh, otherwise after
    /// at most one fetch (if the refetch interval allows one).
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyLookupError> {
        if let Some(key) = self.cached_key(kid, true) {
            return Ok(key);
        }
        let mut last = self.last_attempt.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached_key(kid, true) {
            return Ok(key);
        }
        if last
            .at
            .is_none_or(|at| at.elapsed() >= self.refetch_interval)
        {
            last.at = Some(Instant::now());
            last.failed = !self.refresh().await;
        }
        match self.cached_key(kid, false) {
            Some(key) => Ok(key),
            None if last.failed => Err(KeyLookupError::Unavailable),
            None => Err(KeyLookupError::Unknown),
        }
    }

    /// Replaces the cached set with a freshly fetched one; on failure keeps the old set.
    async fn refresh(&self) -> bool {
        match self.source.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched the OIDC issuer's key set");
                if let Ok(mut cached) = self.cached.write() {
                    *cached = Cached {
                        keys,
                        fetched_at: Some(Instant::now()),
                    };
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot fetch the OIDC issuer's key set");
                false
            }
        }
    }

    fn cached_key(&self, kid: &str, fresh_only: bool) -> Option<Arc<VerifyingKey>> {
        let cached = self.cached.read().ok()?;
        let fresh = cached
            .fetched_at
            .is_some_and(|at| at.elapsed() < MAX_KEY_SET_AGE);
        if fresh_only && !fresh {
            return None;
        }
        cached.keys.get(kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A real P-256 point and a real 2048-bit modulus are not needed to test selection: the
    // components only have to be valid base64url.
    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"})
    }

    fn ec(kid: &str, crv: &str) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": crv,
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    fn set(keys: Vec<Value>) -> KeySet {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn keeps_rsa_and_p256_signature_keys_by_kid() {
        let keys = set(vec![rsa("r"), ec("e", "P-256")]);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get("r").unwrap().algorithm, Algorithm::RS256);
        assert_eq!(keys.get("e").unwrap().algorithm, Algorithm::ES256);
        assert!(keys.get("x").is_none());
    }

    #[test]
    fn skips_keys_it_cannot_or_must_not_use() {
        let mut encryption = rsa("enc");
        encryption["use"] = json!("enc");
        let mut rs384 = rsa("rs384");
        rs384["alg"] = json!("RS384");
        let mut mislabelled = ec("mis", "P-256");
        mislabelled["alg"] = json!("RS256");
        let mut no_kid = rsa("x");
        no_kid.as_object_mut().unwrap().remove("kid");
        let keys = set(vec![
            encryption,
            rs384,
            mislabelled,
            no_kid,
            ec("p384", "P-384"),
            json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            json!({"kty": "weird", "kid": "w"}),
            json!("not even an object"),
            rsa("good"),
        ]);
        assert_eq!(keys.len(), 1);
        assert!(keys.get("good").is_some());
    }

    #[test]
    fn a_document_without_keys_is_not_a_key_set() {
        assert!(KeySet::parse(b"{}").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(br#"{"keys": []}"#).unwrap().is_empty());
    }
}
