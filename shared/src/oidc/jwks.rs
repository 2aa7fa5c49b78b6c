//! The OIDC issuer's signing keys: its JWKS document, as `crate::keys` fetches and caches it.

use crate::keys::KeyDocument;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

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
    pub fn parse(document: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| format!("not a JWKS document: {e}"))?;
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

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyDocument for KeySet {
    type Key = Arc<VerifyingKey>;
    const NAME: &'static str = "the OIDC issuer's key set";

    fn parse(document: &[u8]) -> Result<KeySet, String> {
        KeySet::parse(document)
    }

    fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        KeySet::get(self, kid)
    }

    fn len(&self) -> usize {
        self.keys.len()
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
