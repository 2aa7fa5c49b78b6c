//! A stand-in for GitHub's secret scanning: a P-256 key pair whose public half is published in
//! GitHub's key document format, and signatures of report bodies as GitHub makes them (base64
//! DER ECDSA over SHA-256). The local server publishes [`GithubSigner::test_key`], the key the
//! shipped `events/secret-scanning-github.json` is signed with.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// The path the local server publishes the test key document at.
pub const KEYS_PATH: &str = "/.well-known/github-secret-scanning-keys.json";
/// The identifier of [`GithubSigner::test_key`] (what the shipped event names).
pub const TEST_KEY_ID: &str = "local-github-test-key-1";
/// PKCS#8 (DER, base64) of a key made for this repository's tests and local runs only: it
/// signs nothing anywhere else. Never configure a deployment to trust it.
const TEST_KEY_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCSbey07NKlwzJZFhWbIMNZboYgl6czPaDwve8Uare5qhRANCAASEXShdAGb1oPQif56KBTzXRJecI2GZF0doe+cEN0OioaZczUTw3E6ghRo62XY6GG6GkEAw7CmCwYEmzPJr88Ey";

pub struct GithubSigner {
    pair: EcdsaKeyPair,
    pub key_id: String,
}

impl GithubSigner {
    /// The repository's test key (see [`TEST_KEY_PKCS8`]).
    pub fn test_key() -> GithubSigner {
        let pkcs8 = STANDARD
            .decode(TEST_KEY_PKCS8)
            .expect("the test key is base64");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .expect("the test key is a P-256 PKCS#8 key");
        GithubSigner {
            pair,
            key_id: TEST_KEY_ID.to_owned(),
        }
    }

    /// A fresh key pair named `key_id`.
    pub fn generate(key_id: &str) -> GithubSigner {
        GithubSigner {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key"),
            key_id: key_id.to_owned(),
        }
    }

    /// The public key as GitHub publishes it: SubjectPublicKeyInfo in a PEM block.
    pub fn public_pem(&self) -> String {
        let der = self
            .pair
            .public_key()
            .as_der()
            .expect("an encodable public key");
        let base64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = base64
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// GitHub's document `{"public_keys": [...]}` of `signers`, the first one current.
    pub fn document(signers: &[&GithubSigner]) -> Value {
        let keys: Vec<Value> = signers
            .iter()
            .enumerate()
            .map(|(at, s)| json!({"key_identifier": s.key_id, "key": s.public_pem(), "is_current": at == 0}))
            .collect();
        json!({ "public_keys": keys })
    }

    /// `Github-Public-Key-Signature` of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), body)
            .expect("ECDSA signing");
        STANDARD.encode(signature.as_ref())
    }
}
