//! Public keys published at a URL (an OIDC issuer's JWKS, GitHub's secret scanning keys), fetched
//! over HTTPS and kept in the warm process.
//!
//! Cached keys serve every request without I/O. The document is fetched again only when a request
//! names a key id the cache lacks (the publisher rotated keys) or the cached one is older than
//! [`MAX_KEY_SET_AGE`] (so a withdrawn key stops working), and never more often than the refetch
//! interval, so a flood of made-up key ids cannot make us hammer the publisher. A fetch is one
//! GET within [`FETCH_TIMEOUT`] and [`MAX_DOCUMENT_BYTES`].

use crate::config::ConfigError;
use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The least time between two fetches of a key document.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// A document older than this is fetched again on next use (kept if the fetch fails).
pub const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3_600);
/// Connect, send and read the whole document within this, or give up.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Publishers list a handful of keys; anything far larger is not a key document.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot load the system's root certificates: {0}")]
    RootCertificates(std::io::Error),
    #[error("cannot fetch the keys: {0}")]
    Fetch(String),
    #[error("the keys request timed out after {FETCH_TIMEOUT:?}")]
    Timeout,
    #[error("the keys request was answered with HTTP {0}")]
    Status(u16),
    #[error("not a key document: {0}")]
    NotKeys(String),
}

/// Why no key could be found for an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// Not in the publisher's current keys.
    Unknown,
    /// The keys could not be fetched, and no cached key has this id.
    Unavailable,
}

/// A parsed key document: its usable keys by id.
pub trait KeyDocument: Default + Send + Sync {
    type Key: Clone;
    /// What the log calls it ("the OIDC issuer's key set").
    const NAME: &'static str;
    fn parse(document: &[u8]) -> Result<Self, String>;
    fn get(&self, id: &str) -> Option<Self::Key>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// HTTPS, or plain HTTP to a loopback address (tests, local runs): keys fetched over plain HTTP
/// from anywhere else could be swapped in transit. Decided on the parsed address, never on a
/// prefix of the host name. `variable` names the setting in the error.
pub fn parse_key_url(variable: &'static str, text: &str) -> Result<Uri, ConfigError> {
    let problem = |problem: String| ConfigError { variable, problem };
    let url: Uri = text
        .parse()
        .map_err(|e| problem(format!("{text:?} is not a URL: {e}")))?;
    let host = url
        .host()
        .ok_or_else(|| problem(format!("{text:?} has no host")))?;
    // The host as an address, not a prefix: `127.0.0.1.example.com` is a DNS name anywhere.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme_str() {
        Some("https") => Ok(url),
        Some("http") if loopback => Ok(url),
        _ => Err(problem(format!(
            "{text:?} must be an https:// URL (http:// only for a loopback address)"
        ))),
    }
}

/// Fetches a key document from its URL (HTTPS with the system's roots; plain HTTP only where
/// [`parse_key_url`] allowed it).
pub struct KeySource {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl KeySource {
    pub fn new(url: Uri) -> Result<KeySource, FetchError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(FetchError::RootCertificates)?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(KeySource { url, client })
    }

    pub async fn fetch<D: KeyDocument>(&self) -> Result<D, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_document())
            .await
            .map_err(|_| FetchError::Timeout)
            .and_then(|document| D::parse(&document?).map_err(FetchError::NotKeys))
    }

    async fn fetch_document(&self) -> Result<Bytes, FetchError> {
        let request = Request::get(self.url.clone())
            .header(ACCEPT, "application/json")
            // GitHub's API refuses requests without one.
            .header(USER_AGENT, "token-service")
            .body(Empty::new())
            .map_err(|e| FetchError::Fetch(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| FetchError::Fetch(e.to_string()))
    }
}

/// The document as last fetched, and when.
#[derive(Default)]
struct Cached<D> {
    keys: D,
    fetched_at: Option<Instant>,
}

/// The last attempt to fetch, successful or not: what the refetch interval is counted from.
#[derive(Default)]
struct LastAttempt {
    at: Option<Instant>,
    failed: bool,
}

pub struct KeyCache<D> {
    source: KeySource,
    refetch_interval: Duration,
    /// Read on every request; never held across an await.
    cached: RwLock<Cached<D>>,
    /// Held across a fetch, so concurrent requests that miss wait for one fetch instead of each
    /// starting their own.
    last_attempt: tokio::sync::Mutex<LastAttempt>,
}

impl<D: KeyDocument> KeyCache<D> {
    pub fn new(source: KeySource, refetch_interval: Duration) -> KeyCache<D> {
        KeyCache {
            source,
            refetch_interval,
            cached: RwLock::default(),
            last_attempt: tokio::sync::Mutex::default(),
        }
    }

    /// The key with this id: from the cache when it is there and fresh, otherwise after at most
    /// one fetch (if the refetch interval allows one).
    pub async fn key(&self, id: &str) -> Result<D::Key, KeyLookupError> {
        if let Some(key) = self.cached_key(id, true) {
            return Ok(key);
        }
        let mut last = self.last_attempt.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached_key(id, true) {
            return Ok(key);
        }
        if last
            .at
            .is_none_or(|at| at.elapsed() >= self.refetch_interval)
        {
            last.at = Some(Instant::now());
            last.failed = !self.refresh().await;
        }
        match self.cached_key(id, false) {
            Some(key) => Ok(key),
            None if last.failed => Err(KeyLookupError::Unavailable),
            None => Err(KeyLookupError::Unknown),
        }
    }

    /// Replaces the cached document with a freshly fetched one; on failure keeps the old one.
    async fn refresh(&self) -> bool {
        match self.source.fetch::<D>().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched {}", D::NAME);
                if let Ok(mut cached) = self.cached.write() {
                    *cached = Cached {
                        keys,
                        fetched_at: Some(Instant::now()),
                    };
                }
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot fetch {}", D::NAME);
                false
            }
        }
    }

    fn cached_key(&self, id: &str, fresh_only: bool) -> Option<D::Key> {
        let cached = self.cached.read().ok()?;
        let fresh = cached
            .fetched_at
            .is_some_and(|at| at.elapsed() < MAX_KEY_SET_AGE);
        if fresh_only && !fresh {
            return None;
        }
        cached.keys.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARIABLE: &str = "SOME_KEYS_URL";

    #[test]
    fn the_url_must_be_https_unless_loopback() {
        for good in [
            "https://issuer.example.com/keys",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
            "http://127.8.9.10/jwks",
        ] {
            assert!(parse_key_url(VARIABLE, good).is_ok(), "{good}");
        }
        for bad in [
            "http://127.0.0.1.example.com/keys",
            "http://127.evil.example/keys",
            "http://[::2]/keys",
            "http://issuer.example.com/keys",
            "ftp://issuer.example.com/keys",
            "/jwks",
            "not a url",
        ] {
            let err = parse_key_url(VARIABLE, bad).unwrap_err();
            assert_eq!(err.variable, VARIABLE, "{bad}");
        }
    }
}
