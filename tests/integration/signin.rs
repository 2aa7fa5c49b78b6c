//! The local issuer's development sign-in (`harness::signin`), which the browser tests use: a
//! code only for the known client and a redirect back to the local origin, exchanged once,
//! only with the verifier of its PKCE challenge and the same redirect URI.

use harness::gateway::Response;
use harness::oidc::{b64, LocalIssuer};
use harness::signin::{parse_form, percent_encode, SignIn};
use serde_json::Value;
use std::time::Duration;

const ORIGIN: &str = "http://127.0.0.1:3999";
const CLIENT: &str = "token-settings-page";
const REDIRECT: &str = "http://127.0.0.1:3999/tokens";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 7636's appendix B: the S256 challenge of that verifier.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn authorization(client: &str, redirect: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client.into()),
        ("redirect_uri", redirect.into()),
        ("scope", "openid user:admin".into()),
        ("state", "st&te=1".into()),
        ("nonce", "n-0S6_WzA2Mj".into()),
        ("code_challenge", CHALLENGE.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn body(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

struct Fixture {
    issuer: LocalIssuer,
    signin: SignIn,
}

impl Fixture {
    fn new() -> Fixture {
        let (issuer, _) = LocalIssuer::new(ORIGIN, "token-service-local", None).unwrap();
        let signin = SignIn::new(CLIENT, ORIGIN, Duration::from_secs(3600));
        Fixture { issuer, signin }
    }

    fn serve(&self, method: &str, path: &str, query: &str, body: &str) -> Response {
        self.signin
            .serve(&self.issuer, method, path, query, body.as_bytes())
            .expect("a sign-in path")
    }

    /// The form sent for `user`: the code from the redirect.
    fn code(&self, user: &str) -> String {
        let mut pairs: Vec<(&str, String)> = authorization(CLIENT, REDIRECT);
        pairs.push(("username", user.into()));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let back = self.serve("POST", "/authorize", "", &form(&pairs));
        assert_eq!(back.status, 303, "{}", body(&back));
        let location = header(&back, "location").expect("Location");
        let (to, query) = location.split_once('?').expect("a query");
        assert_eq!(to, REDIRECT);
        let params = parse_form(query);
        assert_eq!(params["state"], "st&te=1", "the client's state, intact");
        params["code"].clone()
    }

    fn exchange(&self, code: &str, verifier: &str, redirect: &str) -> (u16, Value) {
        let request = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", CLIENT),
            ("code_verifier", verifier),
        ]);
        let answer = self.serve("POST", "/token", "", &request);
        (
            answer.status,
            serde_json::from_str(&body(&answer)).expect("JSON"),
        )
    }
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[test]
fn the_form_names_the_user_and_the_code_is_exchanged_once_with_its_verifier() {
    let fixture = Fixture::new();
    let pairs = authorization(CLIENT, REDIRECT);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = fixture.serve("GET", "/authorize", &form(&pairs), "");
    assert_eq!(page.status, 200);
    let html = body(&page);
    assert!(html.contains("<label for=\"username\">"), "{html}");
    assert!(
        html.contains("value=\"st&amp;te=1\""),
        "state escaped: {html}"
    );

    let code = fixture.code("alice");
    let (status, tokens) = fixture.exchange(&code, VERIFIER, REDIRECT);
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (&access["sub"], &access["aud"], &access["scope"]),
        (
            &"alice".into(),
            &"token-service-local".into(),
            &"openid user:admin".into()
        )
    );
    let identity = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(identity["aud"], CLIENT);
    assert_eq!(identity["nonce"], "n-0S6_WzA2Mj");

    let (status, error) = fixture.exchange(&code, VERIFIER, REDIRECT);
    assert_eq!(
        (status, &error["error"]),
        (400, &"invalid_grant".into()),
        "used twice"
    );
}

#[test]
fn a_wrong_verifier_or_redirect_uri_gets_no_session_and_spends_the_code() {
    let fixture = Fixture::new();
    let other_verifier = b64([7u8; 32]);
    for (verifier, redirect) in [
        (other_verifier.as_str(), REDIRECT),
        (VERIFIER, "http://127.0.0.1:3999/elsewhere"),
    ] {
        let code = fixture.code("alice");
        let (status, error) = fixture.exchange(&code, verifier, redirect);
        assert_eq!(
            (status, &error["error"]),
            (400, &"invalid_grant".into()),
            "{error}"
        );
        assert_eq!(fixture.exchange(&code, VERIFIER, REDIRECT).0, 400, "spent");
    }
    let code = fixture.code("alice");
    let (status, error) = fixture.exchange(&code, "short", REDIRECT);
    assert_eq!((status, &error["error"]), (400, &"invalid_request".into()));
    assert_eq!(fixture.exchange("no-such-code", VERIFIER, REDIRECT).0, 400);
}

#[test]
fn unknown_clients_foreign_redirects_and_requests_without_pkce_are_refused() {
    let fixture = Fixture::new();
    let ask = |pairs: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fixture.serve("GET", "/authorize", &form(&pairs), "")
    };
    // Shown here, never redirected: the redirect URI cannot be trusted.
    assert_eq!(ask(authorization("someone-else", REDIRECT)).status, 400);
    assert_eq!(
        ask(authorization(CLIENT, "https://evil.example/tokens")).status,
        400
    );
    // Known client: the error goes back to it, with its state.
    let mut plain = authorization(CLIENT, REDIRECT);
    plain.retain(|(k, _)| *k != "code_challenge_method");
    let back = ask(plain);
    assert_eq!(back.status, 303);
    let location = header(&back, "location").unwrap();
    assert!(
        location.starts_with(&format!("{REDIRECT}?error=invalid_request&")),
        "{location}"
    );
    // A user name is needed.
    let mut pairs = authorization(CLIENT, REDIRECT);
    pairs.push(("username", " ".into()));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = fixture.serve("POST", "/authorize", "", &form(&pairs));
    assert_eq!(again.status, 200);
    assert!(body(&again).contains("role=\"alert\""));
}
