//! The settings page's function, from its shipped event: the page with its policy and caching,
//! the deployment's settings written into it, its files, and nothing inline that the policy
//! would have to allow. The browser tests (`browser.rs`) drive the page itself.

use crate::support::*;
use harness::openapi::document;
use serde_json::{json, Value};
use shared::settings_page::{Page, PageSettings, OIDC_CLIENT_ID};
use std::collections::HashMap;

struct Served {
    status: u16,
    headers: HashMap<String, String>,
    text: String,
}

/// The page's answer to `path`, checked against openapi.yaml.
fn get(page: &Page, path: &str, query: &str) -> Served {
    let mut event = event("settings-page.json");
    let asset = path.strip_prefix("/tokens/");
    let route = if asset.is_some() {
        "GET /tokens/{asset}"
    } else {
        "GET /tokens"
    };
    event["routeKey"] = route.into();
    event["requestContext"]["routeKey"] = route.into();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["rawQueryString"] = query.into();
    if let Some((name, value)) = query.split_once('=') {
        event["queryStringParameters"] = json!({ name: value });
    }
    if let Some(asset) = asset {
        event["pathParameters"] = json!({ "asset": asset });
    }
    let (parts, body) = page.respond(request(&event)).into_parts();
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let text = match body {
        lambda_http::Body::Text(text) => text,
        other => panic!("{path}: not a text body: {other:?}"),
    };
    let status = parts.status.as_u16();
    if let Err(e) = document().check(route, status, &headers, &text) {
        panic!("{e}");
    }
    Served {
        status,
        headers,
        text,
    }
}

fn settings(extra: &[(&str, &str)]) -> PageSettings {
    let mut vars: HashMap<String, String> = [
        ("TABLE_NAME", "tokens"),
        ("OIDC_ISSUER", "https://id.example.com/realms/staff"),
        ("OIDC_AUDIENCE", "token-service"),
        ("OIDC_JWKS_URL", "https://id.example.com/realms/staff/certs"),
        (OIDC_CLIENT_ID, "token-page"),
        ("TOKEN_SCOPES", "reports:read"),
        ("MAX_TOKEN_LIFETIME", "90d"),
        ("DEFAULT_TOKEN_LIFETIME", "30d"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.retain(|_, v| !v.is_empty());
    PageSettings::from_map(&vars).expect("valid settings")
}

/// The `data-config` attribute of the page, unescaped.
fn config_of(html: &str) -> Value {
    let start = html.find("data-config=\"").expect("data-config") + "data-config=\"".len();
    let end = start + html[start..].find('"').expect("closing quote");
    let text = html[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).expect("JSON in data-config")
}

#[test]
fn the_page_carries_a_strict_policy_and_the_deployments_settings() {
    let page = Page::new(&settings(&[]));
    let served = get(&page, "/tokens", "");
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(served.headers["cache-control"], "no-cache");
    assert_eq!(served.headers["x-frame-options"], "DENY");
    assert_eq!(served.headers["referrer-policy"], "no-referrer");
    let csp = &served.headers["content-security-policy"];
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self' https://id.example.com;",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-") && !csp.contains('*'), "{csp}");

    let config = config_of(&served.text);
    assert_eq!(config["issuer"], "https://id.example.com/realms/staff");
    assert_eq!(config["client_id"], "token-page");
    assert_eq!(config["scope"], "openid user:admin");
    assert!(config["scopes"]
        .as_array()
        .unwrap()
        .contains(&json!("reports:read")));
    assert_eq!(config["default_expiry"]["seconds"], 30 * 86_400);
    assert_eq!(config["max_expiry_seconds"], 90 * 86_400);
    let choices: Vec<i64> = config["expiry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(choices, [7 * 86_400, 60 * 86_400, 90 * 86_400]);
}

#[test]
fn nothing_in_the_page_needs_an_inline_exception() {
    let html = get(&Page::new(&settings(&[])), "/tokens", "").text;
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains(" style="), "inline style");
    assert!(!lower.contains("<style"), "a style element");
    assert!(!lower.contains("javascript:"), "a javascript: URL");
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap()];
        assert!(tag.contains(" src=\"tokens/"), "an inline script: {tag}");
    }
    for attribute in [" onclick=", " onload=", " onsubmit=", " onchange="] {
        assert!(!lower.contains(attribute), "{attribute}");
    }
}

#[test]
fn every_file_the_page_names_is_served_and_cached_by_version() {
    let page = Page::new(&settings(&[]));
    let html = get(&page, "/tokens", "").text;
    let mut named = 0;
    for (at, _) in html.match_indices("tokens/") {
        let reference = &html[at..at + html[at..].find('"').unwrap()];
        let (path, version) = reference.split_once("?v=").expect("a versioned reference");
        let versioned = get(&page, &format!("/{path}"), &format!("v={version}"));
        assert_eq!(versioned.status, 200, "{reference}");
        assert_eq!(
            versioned.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let media = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(versioned.headers["content-type"], media, "{path}");
        let stale = get(&page, &format!("/{path}"), "v=0");
        assert_eq!(stale.headers["cache-control"], "public, max-age=300");
        assert_eq!(stale.text, versioned.text);
        named += 1;
    }
    assert_eq!(named, 3, "app.js, signin.js, style.css");

    let missing = get(&page, "/tokens/logo.svg", "");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.headers["cache-control"], "no-store");
    assert!(missing.text.contains("logo.svg"), "{}", missing.text);
}

#[test]
fn without_a_client_id_the_page_says_sign_in_is_not_configured() {
    let page = Page::new(&settings(&[(OIDC_CLIENT_ID, "")]));
    let served = get(&page, "/tokens", "");
    let config = config_of(&served.text);
    assert_eq!(config["client_id"], Value::Null);
    assert!(served.headers["content-security-policy"]
        .contains("connect-src 'self' https://id.example.com;"));
    let app = get(&page, "/tokens/app.js", "").text;
    assert!(
        app.contains("Sign-in is not configured"),
        "the page explains it"
    );
}
