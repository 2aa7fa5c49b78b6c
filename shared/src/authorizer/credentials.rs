//! The three ways a caller sends a token in `Authorization`, and a JWT session beside them:
//! `Bearer <secret>`, a bare `<secret>` (Unleash's apiKey style), `Basic base64("$app:<secret>")`
//! (Quay's docker-login style) and `Bearer <JWT>`. Pure parsing: no I/O, no checksum check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::AUTHORIZATION;
use http::HeaderMap;

/// The only Basic username that carries a token, as in Quay (`APP_SPECIFIC_TOKEN_USERNAME`).
pub const APP_TOKEN_USERNAME: &str = "$app";

/// What the header carries, not yet checked.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A personal access token's text, to be parsed and looked up.
    Secret(String),
    /// A compact JWS from the configured OIDC issuer.
    Jwt(String),
}

// Never show the credential's text, even in a test failure.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Credential::Secret(…)"),
            Credential::Jwt(_) => f.write_str("Credential::Jwt(…)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no credentials in the Authorization header")]
    Missing,
    /// RFC 6750: more than one way of sending the token is an invalid request.
    #[error("more than one Authorization header")]
    Repeated,
    #[error("the authorization scheme is not Bearer or Basic")]
    UnsupportedScheme,
    #[error("Basic credentials are not base64 of username:password")]
    MalformedBasic,
    #[error("the Basic username is not $app")]
    BasicUsername,
}

/// The credential in the request's `Authorization` header (API Gateway lowercases header names;
/// `HeaderMap` matches either case).
pub fn from_headers(headers: &HeaderMap) -> Result<Credential, CredentialError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(CredentialError::Missing)?;
    if values.next().is_some() {
        return Err(CredentialError::Repeated);
    }
    // Not visible ASCII: no token of ours, and no scheme we know.
    let text = value
        .to_str()
        .map_err(|_| CredentialError::UnsupportedScheme)?;
    parse(text)
}

/// Parses one `Authorization` value. The scheme is case-insensitive (RFC 9110 §11.1).
pub fn parse(text: &str) -> Result<Credential, CredentialError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CredentialError::Missing);
    }
    let Some((scheme, rest)) = text.split_once(|c: char| c.is_ascii_whitespace()) else {
        return Ok(Credential::Secret(text.to_owned()));
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(bearer(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        basic(rest)
    } else {
        Err(CredentialError::UnsupportedScheme)
    }
}

/// Our secrets are base62 after `pat_`, so a dot can only mean a JWS (`header.payload.signature`).
fn bearer(token: &str) -> Credential {
    if token.contains('.') {
        Credential::Jwt(token.to_owned())
    } else {
        Credential::Secret(token.to_owned())
    }
}

fn basic(encoded: &str) -> Result<Credential, CredentialError> {
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| CredentialError::MalformedBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| CredentialError::MalformedBasic)?;
    let (username, password) = text
        .split_once(':')
        .ok_or(CredentialError::MalformedBasic)?;
    if username != APP_TOKEN_USERNAME {
        return Err(CredentialError::BasicUsername);
    }
    Ok(Credential::Secret(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "pat_abc";

    fn basic_of(userpass: &str) -> String {
        format!("Basic {}", STANDARD.encode(userpass))
    }

    #[test]
    fn the_three_token_forms_carry_the_secret() {
        for header in [
            format!("Bearer {SECRET}"),
            format!("bearer   {SECRET}  "),
            SECRET.to_owned(),
            format!("  {SECRET}"),
            basic_of(&format!("$app:{SECRET}")),
            format!("BASIC {}", STANDARD.encode(format!("$app:{SECRET}"))),
        ] {
            assert_eq!(
                parse(&header),
                Ok(Credential::Secret(SECRET.into())),
                "{header}"
            );
        }
    }

    #[test]
    fn a_bearer_value_with_dots_is_a_jwt() {
        assert_eq!(
            parse("Bearer aaa.bbb.ccc"),
            Ok(Credential::Jwt("aaa.bbb.ccc".into()))
        );
        // Only Bearer carries sessions: a bare JWT is a (malformed) secret.
        assert_eq!(
            parse("aaa.bbb.ccc"),
            Ok(Credential::Secret("aaa.bbb.ccc".into()))
        );
    }

    #[test]
    fn basic_needs_the_app_username() {
        for userpass in [
            format!("alice:{SECRET}"),
            format!("$APP:{SECRET}"),
            format!(":{SECRET}"),
        ] {
            assert_eq!(
                parse(&basic_of(&userpass)),
                Err(CredentialError::BasicUsername),
                "{userpass}"
            );
        }
        assert_eq!(
            parse(&basic_of("$app")),
            Err(CredentialError::MalformedBasic)
        );
        assert_eq!(
            parse("Basic not*base64"),
            Err(CredentialError::MalformedBasic)
        );
        assert_eq!(
            parse(&format!("Basic {}", STANDARD.encode([0xff, b':', b'x']))),
            Err(CredentialError::MalformedBasic)
        );
    }

    #[test]
    fn other_schemes_and_empty_values_are_refused() {
        assert_eq!(
            parse("Digest username=x"),
            Err(CredentialError::UnsupportedScheme)
        );
        assert_eq!(parse("   "), Err(CredentialError::Missing));
    }

    #[test]
    fn headers_need_exactly_one_authorization() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers), Err(CredentialError::Missing));
        headers.insert("authorization", HeaderValue::from_static("Bearer pat_abc"));
        assert_eq!(
            from_headers(&headers),
            Ok(Credential::Secret(SECRET.into()))
        );
        headers.append("Authorization", HeaderValue::from_static("pat_def"));
        assert_eq!(from_headers(&headers), Err(CredentialError::Repeated));
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let shown = format!("{:?}", parse("Bearer pat_topsecret").unwrap());
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
