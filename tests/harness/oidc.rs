//! A local OIDC issuer for the local server: one ES256 (P-256) key pair, its JWKS, and session
//! JWTs signed with it, so the authorizer checks local sessions exactly as it checks a real
//! issuer's. The key is kept in a file, so sessions printed by an earlier start stay valid.
//!
//! The signer (`SigningKey`: ES256 or RS256) and a JWKS server that counts its fetches
//! (`JwksServer`) are the same ones the authorizer's tests use.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

pub struct LocalIssuer {
    key: SigningKey,
    pub issuer: String,
    pub audience: String,
}

/// Where the signing key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the key file of an earlier start.
    Loaded,
    /// Made now and written to the key file.
    Generated,
    /// Made now, kept in memory only.
    Ephemeral,
}

impl LocalIssuer {
    /// The issuer `issuer` (also the base of its JWKS URL) for `audience`, with the key in
    /// `key_file` (made there on first use, owner-only), or a fresh in-memory key.
    pub fn new(
        issuer: &str,
        audience: &str,
        key_file: Option<&Path>,
    ) -> Result<(LocalIssuer, KeyOrigin), String> {
        let (pair, origin) = match key_file {
            Some(path) if path.exists() => {
                let pkcs8 = std::fs::read(path)
                    .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(|e| {
                        format!(
                            "{} is not a P-256 PKCS#8 key ({e}); delete it to make a new one",
                            path.display()
                        )
                    })?;
                (pair, KeyOrigin::Loaded)
            }
            Some(path) => {
                let pair = generate()?;
                let pkcs8 = pair
                    .to_pkcs8v1()
                    .map_err(|_| "cannot encode the signing key".to_owned())?;
                write_private(path, pkcs8.as_ref())?;
                (pair, KeyOrigin::Generated)
            }
            None => (generate()?, KeyOrigin::Ephemeral),
        };
        // The kid is a digest of the public key: a new key never reuses an old kid.
        let kid = format!(
            "local-{}",
            hex_prefix(digest(&SHA256, pair.public_key().as_ref()).as_ref())
        );
        Ok((
            LocalIssuer {
                key: SigningKey {
                    kid,
                    kind: KeyKind::Es256(pair),
                },
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
            },
            origin,
        ))
    }

    pub fn kid(&self) -> &str {
        &self.key.kid
    }

    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer)
    }

    /// The public key set the authorizer fetches.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.key.jwk()] })
    }

    /// The discovery document's essentials, for tools that start from the issuer URL, with
    /// the development sign-in's endpoints (`crate::signin`): the code flow with PKCE only.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url(),
            "authorization_endpoint": format!("{}{}", self.issuer, crate::signin::AUTHORIZE_PATH),
            "token_endpoint": format!("{}{}", self.issuer, crate::signin::TOKEN_PATH),
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "user:read", "user:admin"],
            "subject_types_supported": ["public"],
        })
    }

    /// A session JWT for `sub` with `scope`, valid from now for `lifetime`.
    pub fn session(&self, sub: &str, scope: &str, lifetime: Duration) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| format!("clock before 1970: {e}"))?
            .as_secs();
        self.sign(&json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime.as_secs(),
        }))
    }

    /// A compact JWS (ES256) over these claims.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        Ok(self.key.sign(claims))
    }
}

fn generate() -> Result<EcdsaKeyPair, String> {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| "cannot generate a P-256 key pair".to_owned())
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Writes a new file readable by its owner only; never replaces an existing one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

enum KeyKind {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// A key pair that signs JWTs (ES256 or RS256), made with aws-lc-rs directly: independent of
/// the verifier under test. The local issuer signs its sessions with one.
pub struct SigningKey {
    pub kid: String,
    kind: KeyKind,
}

/// Base64url without padding, as JWS and JWK use it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    pub fn es256(kid: &str) -> SigningKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key");
        SigningKey {
            kid: kid.into(),
            kind: KeyKind::Es256(pair),
        }
    }

    pub fn rs256(kid: &str) -> SigningKey {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        SigningKey {
            kid: kid.into(),
            kind: KeyKind::Rs256(pair),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.kind {
            KeyKind::Es256(_) => "ES256",
            KeyKind::Rs256(_) => "RS256",
        }
    }

    pub fn jwk(&self) -> Value {
        match &self.kind {
            KeyKind::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            KeyKind::Rs256(pair) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
        }
    }

    /// A JWS over exactly this header and these claims.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.kind {
            KeyKind::Es256(pair) => pair
                .sign(&rng, message.as_bytes())
                .expect("ES256 signature")
                .as_ref()
                .to_vec(),
            KeyKind::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature)
                    .expect("RS256 signature");
                signature
            }
        };
        format!("{message}.{}", b64(signature))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// A JWKS document on 127.0.0.1 that counts the GETs it answers, with the status it is told
/// to answer (200 unless `answer_status` says otherwise).
pub struct JwksServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    document: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let hits = Arc::new(AtomicUsize::new(0));
        let document = Arc::new(Mutex::new(String::new()));
        let status = Arc::new(AtomicU16::new(200));
        let (served_hits, served_document, served_status) =
            (hits.clone(), document.clone(), status.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (hits, document) = (served_hits.clone(), served_document.clone());
                let status = served_status.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    if !request.starts_with(b"GET ") {
                        return;
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = document.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} Status\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        let server = JwksServer {
            url,
            hits,
            status,
            document,
            task,
        };
        server.publish(keys);
        server
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        self.publish_json(&json!({ "keys": keys }));
    }

    /// A server of any JSON document (GitHub's public keys, for one), on every path.
    pub async fn serving(document: &Value) -> JwksServer {
        let server = JwksServer::start(&[]).await;
        server.publish_json(document);
        server
    }

    pub fn publish_json(&self, document: &Value) {
        *self.document.lock().unwrap() = document.to_string();
    }

    /// From now on, every GET is answered with this status (and the document as its body).
    pub fn answer_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
