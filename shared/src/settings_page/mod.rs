//! `GET /tokens` and `GET /tokens/{asset}` (public): the token settings page. The HTML, script
//! and style sheet are built into the binary (`page/`); the page signs in with the configured
//! OIDC issuer (authorization code + PKCE, as a public client) and calls the bundle's own API
//! with the session, so this function reads no table and holds no secret.
//!
//! What the page needs from the deployment (issuer, client id, lifetimes, scopes) is written
//! into the HTML once at cold start (`settings.rs`), as a `data-config` attribute: the strict
//! Content-Security-Policy allows no inline script.

mod settings;

pub use settings::{PageSettings, OIDC_CLIENT_ID};

use crate::config::ConfigError;
use crate::http::{path_parameter, query_parameter};
use crate::response::{empty_response, json_response};
use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

const INDEX: &str = include_str!("page/index.html");

/// The assets under `/tokens/`, with their media types.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "signin.js",
        "text/javascript; charset=utf-8",
        include_str!("page/signin.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("page/style.css"),
    ),
];

/// The page may be revalidated on every visit (a deploy shows at once); an asset asked for
/// with the current version (`?v=`, which the HTML writes) never changes, any other only briefly.
const HTML_CACHE: &str = "no-cache";
const VERSIONED_ASSET_CACHE: &str = "public, max-age=31536000, immutable";
const ASSET_CACHE: &str = "public, max-age=300";

/// The page as this deployment serves it, built once at cold start.
#[derive(Debug, Clone)]
pub struct Page {
    html: String,
    csp: String,
    version: String,
}

impl Page {
    /// From the environment: the page's settings (`OIDC_ISSUER`, `OIDC_CLIENT_ID`, lifetimes,
    /// scopes). A bad value stops the function at init, naming the variable.
    pub fn from_env() -> Result<Page, ConfigError> {
        Ok(Page::new(&PageSettings::from_map(
            &std::env::vars().collect(),
        )?))
    }

    pub fn new(settings: &PageSettings) -> Page {
        let mut digest = Sha256::new();
        for (_, _, text) in ASSETS {
            digest.update(text.as_bytes());
        }
        let version = hex::encode(&digest.finalize()[..6]);
        let html = INDEX.replace("{{VERSION}}", &version).replace(
            "{{CONFIG}}",
            &escape_attribute(&settings.to_json().to_string()),
        );
        Page {
            html,
            csp: content_security_policy(settings.issuer_origin().as_deref()),
            version,
        }
    }

    /// The handler of both routes (both bound to GET; other methods reach `$default`).
    pub fn respond(&self, request: Request) -> Response<Body> {
        let Some(name) = path_parameter(&request, "asset") else {
            return self.answer(HTML_CACHE, "text/html; charset=utf-8", &self.html);
        };
        let Some((_, media, text)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
            let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
            let mut response = json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": format!("No asset {name:?}; the page has {}", names.join(", "))}),
            );
            self.secure(&mut response);
            return response;
        };
        let cache = if query_parameter(&request, "v").as_deref() == Some(&self.version) {
            VERSIONED_ASSET_CACHE
        } else {
            ASSET_CACHE
        };
        self.answer(cache, media, text)
    }

    fn answer(&self, cache: &'static str, media: &'static str, text: &str) -> Response<Body> {
        let mut response = empty_response(StatusCode::OK);
        *response.body_mut() = Body::Text(text.to_owned());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        self.secure(&mut response);
        response
    }

    /// The headers every answer of the page carries: its policy, no framing, no referrer
    /// (the address holds the sign-in's `code` for a moment).
    fn secure(&self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        if let Ok(csp) = HeaderValue::from_str(&self.csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
}

/// Scripts and styles from this origin only, never inline; connections to this origin (the
/// API) and the issuer's (discovery, token endpoint); never framed.
fn content_security_policy(issuer_origin: Option<&str>) -> String {
    let connect = match issuer_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Text safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_cannot_be_closed_by_the_configuration() {
        assert_eq!(
            escape_attribute(r#"{"a":"<b>&'"}"#),
            "{&quot;a&quot;:&quot;&lt;b&gt;&amp;&#39;&quot;}"
        );
    }

    #[test]
    fn the_policy_names_the_issuer_only_when_there_is_one() {
        let with = content_security_policy(Some("https://id.example.com"));
        assert!(with.contains("connect-src 'self' https://id.example.com;"));
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        for directive in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(with.contains(directive), "{with}");
        }
        assert!(!with.contains("unsafe"), "{with}");
    }
}
