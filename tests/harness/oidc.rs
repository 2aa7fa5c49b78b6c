//! A local OIDC issuer for the local server: one ES256 (P-256) key pair, its JWKS, and session
//! JWTs signed with it, so the authorizer checks local sessions exactly as it checks a real
//! issuer's. The key is kept in a file, so sessions printed by an earlier start stay valid.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

pub struct LocalIssuer {
    pair: EcdsaKeyPair,
    kid: String,
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
                pair,
                kid,
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
            },
            origin,
        ))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer)
    }

    /// The public key set the authorizer fetches.
    pub fn jwks(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    /// The discovery document's essentials, for tools that start from the issuer URL.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url(),
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["id_token"],
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
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message.as_bytes())
            .map_err(|_| "ES256 signing failed".to_owned())?;
        Ok(format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
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
