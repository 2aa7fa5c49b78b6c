//! What the server prints once it is up: the routes, the issuer, a session JWT for the local
//! user, and the whole token flow as commands that work when pasted into a shell.

use crate::{
    App, Options, CLIENT_ID, LOCAL_SCOPE, LOCAL_USER, PAGE_PATH, SESSION_LIFETIME, SESSION_PATH,
};
use harness::LOCAL_API_READY as READY;
use std::time::Instant;

pub fn print(app: &App, options: &Options, port: u16, started: Instant) {
    let api = format!("http://127.0.0.1:{port}");
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };

    line(String::new());
    line(format!(
        "Token API on {api}: every HttpApi route of template.yaml, as API Gateway runs it"
    ));
    for route in app.gateway.routes() {
        let behind = route
            .authorizer
            .as_deref()
            .and_then(|name| app.gateway.authorizer(name))
            .map(|a| format!(" (authorizer: {})", a.function))
            .unwrap_or_default();
        line(format!(
            "  {:<7} {:<40} {}{behind}",
            route.method, route.path, route.function
        ));
    }
    line(format!(
        "Local OIDC issuer {api} (audience {}), keys at {}",
        app.issuer.audience,
        app.issuer.jwks_url()
    ));
    line(format!(
        "  another session: curl -sS '{api}{SESSION_PATH}?sub=alice&scope=openid+user:admin'"
    ));
    line(format!(
        "  sign-in for the settings page: client id {CLIENT_ID}, a development form asking only for a user name"
    ));
    line(format!(
        "Events (expiry notices, leaked tokens) reach the queue {}: curl -sS '{}?Action=ReceiveMessage&MaxNumberOfMessages=10'",
        app.events_queue, app.events_queue
    ));
    line(format!(
        "GitHub secret scanning stand-in: its keys at {api}{}, key {} (events/secret-scanning-github.json is signed with it)",
        harness::github::KEYS_PATH,
        harness::github::TEST_KEY_ID
    ));
    line(match &options.data_dir {
        Some(dir) => format!(
            "Data: {} (tokens and the issuer key survive restarts; --in-memory keeps nothing)",
            dir.display()
        ),
        None => "Data: in memory (gone when this stops)".to_owned(),
    });
    line(String::new());
    line(format!(
        "Settings page: {api}{PAGE_PATH} (open it in a browser; sign in with any user name)"
    ));

    let (jwt, expires) = match app
        .issuer
        .session(LOCAL_USER, LOCAL_SCOPE, SESSION_LIFETIME)
    {
        Ok(jwt) => (jwt, chrono::Utc::now() + SESSION_LIFETIME),
        Err(e) => {
            println!("{out}cannot sign a session: {e}");
            return;
        }
    };
    line(String::new());
    line(format!(
        "A session for {LOCAL_USER} (scope \"{LOCAL_SCOPE}\", until {} UTC) and the whole flow; paste it into a shell:",
        expires.format("%Y-%m-%d %H:%M")
    ));
    line(String::new());
    for command in flow(&api, &jwt) {
        line(command);
    }
    line(String::new());
    line(format!(
        "{READY} {api} in {:.1} s. Ctrl-C stops it, the emulators and DynamoDB Local.",
        started.elapsed().as_secs_f64()
    ));
    print!("{out}");
}

/// Create with the session (Quay), list (Unleash), list with the new token, revoke (Quay),
/// and the revoked token refused.
fn flow(api: &str, jwt: &str) -> Vec<String> {
    let field = |name: &str| {
        format!(
            "printf '%s' \"$CREATED\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"][\"{name}\"])'"
        )
    };
    vec![
        format!("API={api}"),
        format!("JWT={jwt}"),
        "echo '1. Create a token with the session (Quay route); its secret is shown only here:'".into(),
        "CREATED=$(curl -sS -X POST \"$API/api/v1/user/apptoken\" -H \"Authorization: Bearer $JWT\" -H 'Content-Type: application/json' -d '{\"title\": \"my laptop\"}'); printf '%s\\n' \"$CREATED\"".into(),
        format!("PAT=$({})", field("token_code")),
        format!("UUID=$({})", field("uuid")),
        "echo '2. List tokens with the session (Unleash route):'".into(),
        "curl -sS \"$API/api/admin/user/tokens\" -H \"Authorization: Bearer $JWT\"; echo".into(),
        "echo '3. List again, authenticated by the new token:'".into(),
        "curl -sS \"$API/api/admin/user/tokens\" -H \"Authorization: Bearer $PAT\"; echo".into(),
        "echo '4. Revoke it (Quay route), expect 204:'".into(),
        "curl -sS -o /dev/null -w '%{http_code}\\n' -X DELETE \"$API/api/v1/user/apptoken/$UUID\" -H \"Authorization: Bearer $JWT\"".into(),
        "echo '5. The revoked token is refused, expect 401:'".into(),
        "curl -sS -w ' %{http_code}\\n' \"$API/api/admin/user/tokens\" -H \"Authorization: Bearer $PAT\"".into(),
    ]
}
