//! The local issuer's development sign-in, what the settings page needs of an OIDC provider:
//! `GET /authorize` shows a form asking only for a user name (no password: anyone at this
//! machine is anyone), its `POST` sends the browser back to the client with a single-use `code`
//! and the client's `state`, and `POST /token` exchanges the code for a session (the
//! authorization code grant, RFC 6749 §4.1) once the PKCE verifier matches the S256 challenge
//! (RFC 7636) and the client and redirect URI are the ones the code was issued to.

use crate::gateway::{percent_decode, Response};
use crate::oidc::{b64, LocalIssuer};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const AUTHORIZE_PATH: &str = "/authorize";
pub const TOKEN_PATH: &str = "/token";
/// How long a code may wait for its exchange (RFC 6749 suggests at most 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// A code issued and not yet exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    user: String,
    scope: String,
    nonce: Option<String>,
    issued: Instant,
}

pub struct SignIn {
    client_id: String,
    /// Redirect URIs must be on this origin (`http://127.0.0.1:<port>`): never an open redirect.
    origin: String,
    session_lifetime: Duration,
    codes: Mutex<HashMap<String, Grant>>,
}

type Params = HashMap<String, String>;

/// `a=1&b=2` (form or query encoding) as a map; the first of repeated names wins.
pub fn parse_form(text: &str) -> Params {
    let mut params = Params::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        params.entry(decode(name)).or_insert_with(|| decode(value));
    }
    params
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A PKCE verifier or S256 challenge: 43 to 128 unreserved characters.
fn is_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn answer(status: u16, media: &str, body: String, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("content-type".to_owned(), media.to_owned()),
        ("cache-control".to_owned(), "no-store".to_owned()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Response {
        status,
        headers,
        body: Bytes::from(body),
    }
}

/// An error of the token endpoint (RFC 6749 §5.2).
fn token_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    answer(400, "application/json", body.to_string(), &[])
}

impl SignIn {
    pub fn new(client_id: &str, origin: &str, session_lifetime: Duration) -> SignIn {
        SignIn {
            client_id: client_id.to_owned(),
            origin: origin.trim_end_matches('/').to_owned(),
            session_lifetime,
            codes: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for one of the sign-in's paths; `None` for any other request.
    pub fn serve(
        &self,
        issuer: &LocalIssuer,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Option<Response> {
        let form = || parse_form(&String::from_utf8_lossy(body));
        Some(match (method, path) {
            ("GET", AUTHORIZE_PATH) => self.authorize(&parse_form(query), None),
            ("POST", AUTHORIZE_PATH) => self.signed_in(&form()),
            ("POST", TOKEN_PATH) => self.exchange(issuer, &form()),
            (_, AUTHORIZE_PATH) | (_, TOKEN_PATH) => {
                answer(405, "text/plain", "Method Not Allowed\n".into(), &[])
            }
            _ => return None,
        })
    }

    /// The request's client and redirect URI are known: errors after this point may be sent
    /// back to the client; before it, they are shown here (RFC 6749 §4.1.2.1).
    fn check_client(&self, params: &Params) -> Result<(), String> {
        let client = params.get("client_id").map(String::as_str);
        if client != Some(self.client_id.as_str()) {
            return Err(format!(
                "unknown client_id {client:?}; this issuer knows {:?}",
                self.client_id
            ));
        }
        let redirect = params.get("redirect_uri").map(String::as_str).unwrap_or("");
        if !redirect.starts_with(&format!("{}/", self.origin)) || redirect.contains('#') {
            return Err(format!(
                "redirect_uri {redirect:?} is not a page of {}",
                self.origin
            ));
        }
        Ok(())
    }

    fn check_request(params: &Params) -> Result<(), &'static str> {
        if params.get("response_type").map(String::as_str) != Some("code") {
            return Err("response_type must be code");
        }
        if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return Err("code_challenge_method must be S256 (PKCE is required)");
        }
        if !params
            .get("code_challenge")
            .is_some_and(|c| is_pkce_text(c))
        {
            return Err("code_challenge must be 43 to 128 characters of base64url");
        }
        Ok(())
    }

    fn back_to_client(params: &Params, query: &str) -> Response {
        let mut location = format!("{}?{query}", params["redirect_uri"]);
        if let Some(state) = params.get("state") {
            location.push_str(&format!("&state={}", percent_encode(state)));
        }
        answer(303, "text/plain", String::new(), &[("location", &location)])
    }

    /// The sign-in form, carrying the request's parameters; or why there is none.
    fn authorize(&self, params: &Params, problem: Option<&str>) -> Response {
        if let Err(problem) = self.check_client(params) {
            let page = format!(
                "<!doctype html><title>Sign-in refused</title><h1>Sign-in refused</h1><p>{}</p>",
                escape_html(&problem)
            );
            return answer(400, "text/html; charset=utf-8", page, &[]);
        }
        if let Err(problem) = Self::check_request(params) {
            let query = format!(
                "error=invalid_request&error_description={}",
                percent_encode(problem)
            );
            return Self::back_to_client(params, &query);
        }
        let mut hidden = String::new();
        for name in [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ] {
            if let Some(value) = params.get(name) {
                hidden.push_str(&format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                    escape_html(value)
                ));
            }
        }
        let problem = problem
            .map(|p| format!("<p role=\"alert\"><strong>{}</strong></p>", escape_html(p)))
            .unwrap_or_default();
        let scope = escape_html(params.get("scope").map_or("", String::as_str));
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Local sign-in</title></head><body>\n\
             <h1>Local sign-in (development only)</h1>\n\
             <p>The local issuer of <code>./scripts/run</code> signs in whoever you name: there is no password.</p>\n\
             <p>Requested scope: <code>{scope}</code></p>\n{problem}\
             <form method=\"post\" action=\"{AUTHORIZE_PATH}\">\n{hidden}\
             <label for=\"username\">User name</label>\n\
             <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\n\
             <button type=\"submit\" id=\"sign-in\">Sign in</button>\n</form></body></html>\n"
        );
        let csp = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        answer(
            200,
            "text/html; charset=utf-8",
            page,
            &[("content-security-policy", csp)],
        )
    }

    /// The form was sent: a code for the named user, and the browser back to the client.
    fn signed_in(&self, params: &Params) -> Response {
        if self.check_client(params).is_err() || Self::check_request(params).is_err() {
            return self.authorize(params, None);
        }
        let user = params.get("username").map_or("", |u| u.trim());
        let well_formed = !user.is_empty()
            && user.len() <= 64
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if !well_formed {
            return self.authorize(
                params,
                Some("Enter a user name: 1 to 64 letters, digits, '.', '_', '@' or '-'."),
            );
        }
        let mut bytes = [0u8; 32];
        if SystemRandom::new().fill(&mut bytes).is_err() {
            return answer(500, "text/plain", "no randomness\n".into(), &[]);
        }
        let code = b64(bytes);
        let grant = Grant {
            client_id: params["client_id"].clone(),
            redirect_uri: params["redirect_uri"].clone(),
            challenge: params["code_challenge"].clone(),
            user: user.to_owned(),
            scope: params.get("scope").cloned().unwrap_or_default(),
            nonce: params.get("nonce").cloned(),
            issued: Instant::now(),
        };
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, g| g.issued.elapsed() < CODE_LIFETIME);
        codes.insert(code.clone(), grant);
        Self::back_to_client(params, &format!("code={code}"))
    }

    /// `POST /token`: the authorization code grant, with every check RFC 6749 and 7636 ask.
    fn exchange(&self, issuer: &LocalIssuer, params: &Params) -> Response {
        let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
        if get("grant_type") != "authorization_code" {
            let body = json!({"error": "unsupported_grant_type",
                "error_description": "only authorization_code"});
            return answer(400, "application/json", body.to_string(), &[]);
        }
        // Single use: the code is gone whatever the outcome.
        let grant = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(get("code"));
        let Some(grant) = grant.filter(|g| g.issued.elapsed() < CODE_LIFETIME) else {
            return token_error("invalid_grant", "unknown, used or expired code");
        };
        if get("client_id") != grant.client_id {
            return token_error("invalid_grant", "the code was issued to another client");
        }
        if get("redirect_uri") != grant.redirect_uri {
            return token_error(
                "invalid_grant",
                "redirect_uri differs from the authorization request's",
            );
        }
        let verifier = get("code_verifier");
        if !is_pkce_text(verifier) {
            return token_error(
                "invalid_request",
                "code_verifier must be 43 to 128 unreserved characters",
            );
        }
        if b64(digest(&SHA256, verifier.as_bytes())) != grant.challenge {
            return token_error(
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            );
        }
        match self.tokens(issuer, &grant) {
            Ok(body) => answer(200, "application/json", body.to_string(), &[]),
            Err(e) => answer(
                500,
                "application/json",
                json!({"error": e}).to_string(),
                &[],
            ),
        }
    }

    /// The access token is a session the bundle accepts; the ID token is for the client.
    fn tokens(&self, issuer: &LocalIssuer, grant: &Grant) -> Result<Value, String> {
        let access = issuer.session(&grant.user, &grant.scope, self.session_lifetime)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut claims = json!({
            "iss": issuer.issuer, "aud": grant.client_id, "sub": grant.user,
            "preferred_username": grant.user, "iat": now,
            "exp": now + self.session_lifetime.as_secs(),
        });
        if let Some(nonce) = &grant.nonce {
            claims["nonce"] = nonce.clone().into();
        }
        Ok(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.session_lifetime.as_secs(),
            "scope": grant.scope,
            "id_token": issuer.sign(&claims)?,
        }))
    }
}
