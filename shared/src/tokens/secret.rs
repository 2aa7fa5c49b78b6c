//! The secret a caller presents: the prefix (`pat_` unless configured), then 30 base62 characters from the OS
//! CSPRNG (178 bits), then 6 base62 characters of CRC32 over those 30, as GitHub builds its
//! tokens. The prefix lets secret scanners find leaked tokens; the checksum lets the authorizer
//! reject mistyped or made-up tokens without a database read. Only the SHA-256 digest is stored.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The prefix unless `TOKEN_PREFIX` sets another.
pub const PREFIX: &str = "pat_";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// The length of a secret with the default prefix.
pub const SECRET_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// A configured prefix: a letter, then 1 to 15 letters or digits, then `_` or `-`.
pub const MAX_PREFIX_LEN: usize = 17;
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
        f.write_str("Secret(…)")
    }
}

/// The deployment's secret format: its prefix (`TOKEN_PREFIX`), which a scanner's pattern
/// names, then the 36 base62 characters. The prefix ends in `_` or `-`, outside the base62
/// alphabet, so where it ends is never ambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFormat {
    prefix: String,
}

impl Default for SecretFormat {
    fn default() -> SecretFormat {
        SecretFormat {
            prefix: PREFIX.to_owned(),
        }
    }
}

impl SecretFormat {
    /// `prefix`: a letter, then 1 to 15 ASCII letters or digits, then `_` or `-` (`pat_`,
    /// `acme_pat_` is not: one separator, at the end; `acmepat_` is).
    pub fn new(prefix: &str) -> Result<SecretFormat, String> {
        let bytes = prefix.as_bytes();
        let well_formed = (3..=MAX_PREFIX_LEN).contains(&bytes.len())
            && bytes[0].is_ascii_alphabetic()
            && bytes[1..bytes.len() - 1]
                .iter()
                .all(u8::is_ascii_alphanumeric)
            && matches!(bytes[bytes.len() - 1], b'_' | b'-');
        if well_formed {
            Ok(SecretFormat {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(format!(
                "{prefix:?} is not a token prefix: a letter, then 1 to 15 letters or digits, then _ or - (like pat_)"
            ))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The length of every secret of this format.
    pub fn secret_len(&self) -> usize {
        self.prefix.len() + RANDOM_LEN + CHECKSUM_LEN
    }

    /// The pattern a secret scanner registers: the prefix, 36 base62 characters, and no word
    /// character on either side.
    pub fn regex(&self) -> String {
        format!(
            r"\b{}[0-9A-Za-z]{{{}}}\b",
            self.prefix.replace('-', r"\-"),
            RANDOM_LEN + CHECKSUM_LEN
        )
    }

    pub fn generate(&self) -> Result<Secret, SecretError> {
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
        let mut text = String::with_capacity(self.secret_len());
        text.push_str(&self.prefix);
        text.push_str(&random);
        text.push_str(&encode_checksum(crc32fast::hash(random.as_bytes())));
        Ok(Secret(text))
    }

    /// Checks shape, prefix and checksum; does no I/O.
    pub fn parse(&self, text: &str) -> Result<Secret, SecretError> {
        let Some(body) = text.strip_prefix(self.prefix.as_str()) else {
            return Err(SecretError::Malformed);
        };
        if body.len() != RANDOM_LEN + CHECKSUM_LEN
            || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SecretError::Malformed);
        }
        let (random, checksum) = body.split_at(RANDOM_LEN);
        match decode_checksum(checksum) {
            Some(sum) if sum == crc32fast::hash(random.as_bytes()) => Ok(Secret(text.to_owned())),
            _ => Err(SecretError::Malformed),
        }
    }
}

impl Secret {
    /// A secret of the default format (tests, benches; product code uses the configured one).
    pub fn generate() -> Result<Secret, SecretError> {
        SecretFormat::default().generate()
    }

    /// [`SecretFormat::parse`] with the default prefix.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        SecretFormat::default().parse(text)
    }

    /// The text, for the one response that shows it and for tests.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of_text(&self.0)
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
    /// SHA-256 of any text, well-formed secret or not (a leak report's `token_hash`).
    pub fn of_text(text: &str) -> SecretDigest {
        SecretDigest(Sha256::digest(text.as_bytes()).into())
    }

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
    fn a_configured_prefix_is_generated_and_required() {
        let acme = SecretFormat::new("acme-").unwrap();
        let secret = acme.generate().unwrap();
        assert!(secret.expose().starts_with("acme-"));
        assert_eq!(secret.expose().len(), acme.secret_len());
        assert_eq!(acme.parse(secret.expose()), Ok(secret.clone()));
        // Each format accepts only its own prefix.
        let body = &secret.expose()[5..];
        assert!(acme.parse(&format!("pat_{body}")).is_err());
        assert!(acme.parse(&format!("acme_{body}")).is_err());
        assert!(SecretFormat::default().parse(secret.expose()).is_err());
        assert_eq!(acme.regex(), r"\bacme\-[0-9A-Za-z]{36}\b");
        assert_eq!(SecretFormat::default().regex(), r"\bpat_[0-9A-Za-z]{36}\b");
    }

    #[test]
    fn a_prefix_must_be_a_word_and_one_separator() {
        for good in ["pat_", "ab_", "glpat-", "Acme2pat_", "a234567890123456_"] {
            assert!(SecretFormat::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "_",
            "a_",
            "pat",
            "1pat_",
            "pat__",
            "acme_pat_",
            "pa t_",
            "pät_",
            "a2345678901234567_",
            "pat_\n",
        ] {
            assert!(SecretFormat::new(bad).is_err(), "{bad:?}");
        }
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
