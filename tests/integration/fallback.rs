//! The `$default` route (`shared::fallback`): a known path with another method is a 405 with
//! `Allow` in the path's dialect, an unknown path under a dialect's prefix is its 404, and
//! anything else is API Gateway's own 404 body. Driven by `events/fallback.json`.

use crate::support::*;
use harness::template::Template;
use serde_json::{json, Value};

async fn ask(method: &str, path: &str) -> Answer {
    let mut event = event("fallback.json");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    answer(shared::fallback::fallback(request(&event)).await)
}

#[tokio::test]
async fn a_known_path_with_another_method_is_a_405_naming_the_methods() {
    let quay = ask("PUT", "/api/v1/user/apptoken").await;
    assert_quay_error(&quay, 405, "method_not_allowed");
    assert_eq!(quay.header("allow"), Some("POST, GET"));

    let uuid = "6b5aa827-cee5-4fbe-a434-4b7b8a245ca7";
    let one = ask("PATCH", &format!("/api/v1/user/apptoken/{uuid}")).await;
    assert_quay_error(&one, 405, "method_not_allowed");
    assert_eq!(one.header("allow"), Some("GET, DELETE"));

    let unleash = ask("PUT", "/api/admin/user/tokens").await;
    let message = assert_unleash_error(&unleash, 405, "MethodNotAllowedError");
    assert!(message.contains("PUT"), "{message}");
    assert_eq!(unleash.header("allow"), Some("POST, GET"));

    let pat = ask("GET", "/api/admin/user/tokens/7").await;
    assert_unleash_error(&pat, 405, "MethodNotAllowedError");
    assert_eq!(pat.header("allow"), Some("DELETE"));

    // Outside the dialects' prefixes, in API Gateway's words.
    for path in [
        "/api/openapi.json",
        "/example/whoami",
        "/tokens",
        "/tokens/app.js",
    ] {
        let other = ask("POST", path).await;
        assert_eq!(other.status, 405, "{path}: {}", other.text);
        assert_eq!(other.json(), json!({"message": "Method Not Allowed"}));
        assert_eq!(other.header("allow"), Some("GET"));
    }
}

#[tokio::test]
async fn an_unknown_path_is_its_dialects_404() {
    let quay = ask("GET", "/api/v1/user/tokens").await;
    let detail = assert_quay_error(&quay, 404, "not_found");
    assert!(detail.contains("/api/v1/user/tokens"), "{detail}");
    assert_eq!(quay.header("allow"), None);

    let unleash = ask("DELETE", "/api/admin/user/tokens/7/x").await;
    assert_unleash_error(&unleash, 404, "NotFoundError");

    let elsewhere = ask("GET", "/favicon.ico").await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(elsewhere.json(), json!({"message": "Not Found"}));
}

#[test]
fn the_fallback_knows_exactly_the_templates_routes() {
    let mut declared: Vec<(String, String)> = Template::load()
        .http_routes()
        .into_iter()
        .filter(|r| r.path != "/$default")
        .map(|r| (r.method, r.path))
        .collect();
    let mut known: Vec<(String, String)> = shared::fallback::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    declared.sort();
    known.sort();
    assert_eq!(known, declared);
    let fallbacks: Vec<Value> = Template::load()
        .http_routes()
        .into_iter()
        .filter(|r| r.path == "/$default")
        .map(|r| json!([r.method, r.function, r.authorizer]))
        .collect();
    assert_eq!(fallbacks, [json!(["ANY", "FallbackFunction", null])]);
}
