//! The secret a caller presents: the prefix `pat_`, then 30 base62 characters from the OS
//! CSPRNG (178 bits), then 6 base62 characters of CRC32 over those 30, as GitHub builds its
//! tokens. The prefix lets secret scanners find leaked tokens; the checksum lets the authorizer
//! reject mistyped or made-up tokens without a database read. Only the SHA-256 digest is stored.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "pat_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
pub const SECRET_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Bytes at or above this are rejected so every base62 digit is equally likely (248 = 4 * 62).
const UNBIASED_LIMIT: u8 = 248;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// One answer for every kind of malformation, so a caller learns nothing about which check failed.
    #[error("malformed token")]
    Malformed,
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
}

/// A well-formed secret. Its `Debug` never shows the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(pat_…)")
    }
}

impl Secret {
    pub fn generate() -> Result<Secret, SecretError> {
        let mut random = String::with_capacity(RANDOM_LEN);
        let mut pool = [0u8; 64];
        while random.len() < RANDOM_LEN {
            getrandom::fill(&mut pool).map_err(|e| SecretError::Randomness(e.to_string()))?;
            for &byte in pool.iter().filter(|b| **b < UNBIASED_LIMIT) {
                if random.len() == RANDOM_LEN {
                    break;
                }
                random.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
        let mut text = String::with_capacity(SECRET_LEN);
        text.push_str(PREFIX);
        text.push_str(&random);
        text.push_str(&encode_checksum(crc32fast::hash(random.as_bytes())));
        Ok(Secret(text))
    }

    /// Checks shape, prefix and checksum; does no I/O.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        if text.len() != SECRET_LEN || !text.starts_with(PREFIX) {
            return Err(SecretError::Malformed);
        }
        let body = &text[PREFIX.len()..];
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SecretError::Malformed);
        }
        let (random, checksum) = body.split_at(RANDOM_LEN);
        match decode_checksum(checksum) {
            Some(sum) if sum == crc32fast::hash(random.as_bytes()) => Ok(Secret(text.to_owned())),
            _ => Err(SecretError::Malformed),
        }
    }

    /// The text, for the one response that shows it and for tests.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// SHA-256 of the full secret text: what the store keeps instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({})", self.to_hex())
    }
}

impl SecretDigest {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<SecretDigest> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(SecretDigest(bytes))
    }

    /// Constant-time equality, so comparing a presented secret's digest leaks no timing.
    pub fn matches(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

fn encode_checksum(mut value: u32) -> String {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| b as char).collect()
}

fn decode_checksum(text: &str) -> Option<u32> {
    let mut value: u64 = 0;
    for byte in text.bytes() {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'A'..=b'Z' => byte - b'A' + 10,
            b'a'..=b'z' => byte - b'a' + 36,
            _ => return None,
        };
        value = value * 62 + u64::from(digit);
    }
    u32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_secret_has_the_documented_shape() {
        let secret = Secret::generate().expect("random source");
        let text = secret.expose();
        assert_eq!(text.len(), 40);
        assert!(text.starts_with("pat_"));
        assert!(text[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(Secret::parse(text), Ok(secret.clone()));
    }

    #[test]
    fn generated_secrets_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn rejects_wrong_prefix_length_and_alphabet() {
        let good = Secret::generate().unwrap().expose().to_owned();
        for bad in [
            String::new(),
            "pat_".to_owned(),
            good.replacen("pat_", "tap_", 1),
            format!("{good}0"),
            good[..39].to_owned(),
            format!("pat_{}", "-".repeat(36)),
            good.to_uppercase().replacen("PAT_", "pat_", 1),
        ] {
            if bad != good {
                assert_eq!(Secret::parse(&bad), Err(SecretError::Malformed), "{bad:?}");
            }
        }
    }

    #[test]
    fn rejects_checksum_above_u32() {
        // "zzzzzz" decodes to 62^6 - 1, beyond any CRC32 value.
        let body = "a".repeat(30);
        assert_eq!(
            Secret::parse(&format!("pat_{body}zzzzzz")),
            Err(SecretError::Malformed)
        );
    }

    #[test]
    fn checksum_round_trips_at_the_edges() {
        for value in [0, 1, 61, 62, u32::MAX / 2, u32::MAX] {
            assert_eq!(decode_checksum(&encode_checksum(value)), Some(value));
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = Secret::generate().unwrap();
        assert!(!format!("{secret:?}").contains(&secret.expose()[4..]));
    }

    #[test]
    fn digest_is_sha256_of_the_text_and_compares_in_constant_time() {
        let secret = Secret::generate().unwrap();
        let digest = secret.digest();
        assert_eq!(
            digest.to_hex(),
            hex::encode(Sha256::digest(secret.expose().as_bytes()))
        );
        assert_eq!(SecretDigest::from_hex(&digest.to_hex()), Some(digest));
        assert!(digest.matches(&digest));
        assert!(!digest.matches(&Secret::generate().unwrap().digest()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_generated_secret_parses(_round in 0u32..1000) {
            let secret = Secret::generate().unwrap();
            prop_assert_eq!(Secret::parse(secret.expose()), Ok(secret.clone()));
        }

        #[test]
        fn any_one_character_change_is_rejected(position in 0usize..SECRET_LEN, replacement in any::<char>()) {
            let secret = Secret::generate().unwrap();
            let mut chars: Vec<char> = secret.expose().chars().collect();
            prop_assume!(chars[position] != replacement);
            chars[position] = replacement;
            let changed: String = chars.into_iter().collect();
            prop_assert_eq!(Secret::parse(&changed), Err(SecretError::Malformed));
        }

        #[test]
        fn any_one_alphanumeric_change_in_the_body_is_caught_by_the_checksum(
            position in PREFIX.len()..SECRET_LEN,
            replacement in proptest::sample::select(ALPHABET.to_vec()),
        ) {
            let secret = Secret::generate().unwrap();
            let mut bytes = secret.expose().as_bytes().to_vec();
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(Secret::parse(&changed), Err(SecretError::Malformed));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,60}") {
            let _ = Secret::parse(&text);
        }
    }
}
