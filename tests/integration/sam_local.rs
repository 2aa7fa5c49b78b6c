//! `sam local invoke` parity without Docker: for every function in template.yaml, the binary
//! `sam build` made runs under the Lambda Runtime Interface Emulator (the one `sam local invoke`
//! runs in its container) with exactly the environment the template declares for it (plus the
//! DynamoDB Local endpoint), is invoked with its `events/` file, and must answer as expected.
//! The list of functions comes from the template, so a function added without an event file or
//! an expectation here fails this test.

use crate::support::*;
use chrono::{Duration, Utc};
use harness::github::GithubSigner;
use harness::moto::Moto;
use harness::rie::Emulator;
use harness::template::{FunctionDef, Template};
use harness::{workspace_root, DynamoLocal};
use serde_json::{json, Value};
use shared::store::NewToken;
use shared::tokens::Secret;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Every AWS::Serverless::Function, with its binary and resolved environment
/// (Globals, then its own; `!Ref` of a parameter is its default, of the table the test's table).
pub(crate) fn template_functions(template: &Template, table: &str) -> Vec<FunctionDef> {
    template.functions(table, &BTreeMap::new())
}

pub(crate) fn built_bootstrap(logical_id: &str) -> std::path::PathBuf {
    harness::events::sam_build_dir()
        .join(logical_id)
        .join("bootstrap")
}

/// The order matters: get, both rotations (by uuid, then by Unleash id 1) and revoke act on the
/// first seeded token; the authorizer accepts the second one's secret, and so do list-pats and
/// rotate-self (their events authenticate in process, as the bundle's routes do), before
/// delete-pat deletes it.
const ORDER: [&str; 20] = [
    "get-app-token",
    "rotate-app-token",
    "rotate-pat",
    "revoke-app-token",
    "authorizer",
    "list-pats",
    "rotate-self",
    "delete-pat",
    "list-user-logs",
    "list-app-tokens",
    "create-app-token",
    "create-pat",
    "cleanup",
    "notify-expiring",
    "fallback",
    "example-whoami",
    "openapi",
    "settings-page",
    // Last: GitHub's report revokes a token holding the authorizer's secret (stored afresh, since
    // delete-pat deleted the first one), then revoking it again reveals nothing.
    "secret-scanning-github",
    "revoke-credentials",
];

#[tokio::test]
async fn every_template_function_answers_its_event_under_the_runtime_emulator() {
    let env = TestEnv::new().await;
    let template = Template::load();
    let functions = template_functions(&template, env.table());
    assert!(
        functions.len() >= 20,
        "template lists {} functions",
        functions.len()
    );
    for function in &functions {
        assert!(
            workspace_root()
                .join("events")
                .join(format!("{}.json", function.binary))
                .is_file(),
            "{} has no events/{}.json",
            function.logical_id,
            function.binary
        );
        assert!(
            ORDER.contains(&function.binary.as_str()),
            "no expectation for {} in this test",
            function.binary
        );
    }

    // The tokens the shipped events name: the uuid of get/revoke, Unleash id 2 of delete-pat,
    // and the secret in the authorizer's Authorization header.
    let now = Utc::now();
    let store = &env.app.store;
    let seed = |uuid: Uuid| NewToken {
        user_id: "alice".into(),
        uuid,
        title: "seeded".into(),
        created: now,
        expires: Some(now + Duration::days(1)),
        scopes: None,
    };
    let get_uuid = Uuid::parse_str(
        event("get-app-token.json")["pathParameters"]["token_uuid"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    store
        .create_token(
            seed(get_uuid),
            &Secret::generate().unwrap().digest(),
            100,
            Duration::days(1),
        )
        .await
        .unwrap();
    let authorizer_event = event("authorizer.json");
    let header = authorizer_event["headers"]["authorization"]
        .as_str()
        .unwrap();
    let secret = Secret::parse(header.trim_start_matches("Bearer ").trim())
        .expect("the event's token is well-formed");
    let second = store
        .create_token(
            seed(Uuid::new_v4()),
            &secret.digest(),
            100,
            Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(second.number, 2);
    // Bob's token expires within 7 days: notify-expiring announces it on the test's own bus.
    let bob = store
        .create_token(
            NewToken {
                user_id: "bob".into(),
                expires: Some(now + Duration::days(3)),
                ..seed(Uuid::new_v4())
            },
            &Secret::generate().unwrap().digest(),
            100,
            Duration::days(1),
        )
        .await
        .unwrap();
    let moto = Moto::shared();
    let bus = format!("parity-{}", std::process::id());
    let events = moto
        .bus_to_queue(&bus, &format!("{bus}-queue"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The stand-in for GitHub's key document: the shipped report is signed with the test key.
    let github_keys =
        harness::oidc::JwksServer::serving(&GithubSigner::document(&[&GithubSigner::test_key()]))
            .await;

    let local = DynamoLocal::shared();
    let mut reported = None;
    for binary in ORDER {
        if binary == "secret-scanning-github" {
            let token = store
                .create_token(
                    seed(Uuid::new_v4()),
                    &secret.digest(),
                    100,
                    Duration::days(1),
                )
                .await
                .expect("the reported token");
            reported = Some(token.uuid);
        }
        let Some(function) = functions.iter().find(|f| f.binary == binary) else {
            panic!("template.yaml has no function with binary {binary}");
        };
        let mut environment: Vec<(String, String)> =
            function.environment.clone().into_iter().collect();
        environment.extend(local.environment());
        if binary == "secret-scanning-github" {
            environment.retain(|(name, _)| name != "GITHUB_PUBLIC_KEYS_URL");
            environment.push(("GITHUB_PUBLIC_KEYS_URL".into(), github_keys.url.clone()));
        }
        if [
            "notify-expiring",
            "secret-scanning-github",
            "revoke-credentials",
        ]
        .contains(&binary)
        {
            environment.extend(moto.environment());
            environment.retain(|(name, _)| name != "EVENT_BUS_NAME");
            environment.push(("EVENT_BUS_NAME".into(), bus.clone()));
        }
        let emulator = Emulator::start(&built_bootstrap(&function.logical_id), &environment)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut payload = event(&format!("{binary}.json"));
        if binary == "create-pat" {
            // The shipped body names a fixed date; keep it in the future whenever this runs.
            let expires = (now + Duration::days(30)).format("%Y-%m-%dT%H:%M:%S%.3fZ");
            payload["body"] =
                json!({"description": "deploy bot", "expiresAt": expires.to_string()})
                    .to_string()
                    .into();
        }
        let answer = emulator
            .invoke(&payload)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", function.logical_id));
        check(binary, &answer, &second);
        if binary == "notify-expiring" {
            let delivered = events.drain().await;
            assert_eq!(delivered.len(), 1, "{delivered:?}");
            assert_eq!(delivered[0]["detail"]["user_id"], "bob");
            assert_eq!(
                delivered[0]["detail"]["tokens"][0]["uuid"],
                bob.uuid.to_string()
            );
        }
        if binary == "secret-scanning-github" {
            let delivered = events.drain().await;
            assert_eq!(delivered.len(), 1, "{delivered:?}");
            assert_eq!(delivered[0]["detail-type"], "Personal Access Token Leaked");
            let reported = reported.expect("seeded above");
            assert_eq!(delivered[0]["detail"]["uuid"], reported.to_string());
            let gone = store.get_token("alice", &reported).await.unwrap();
            assert!(gone.is_none(), "the reported token is revoked");
        }
        emulator.stop();
    }
}

fn check(binary: &str, answer: &Value, authorized: &shared::tokens::Token) {
    let authorized_uuid = &authorized.uuid;
    let http = |status: u64| -> Value {
        assert_eq!(answer["statusCode"], status, "{binary}: {answer}");
        let body = answer["body"].as_str().unwrap_or_default();
        if body.is_empty() {
            Value::Null
        } else {
            assert_eq!(
                answer["headers"]["content-type"], "application/json",
                "{binary}: {answer}"
            );
            serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{binary}: body is not JSON ({e}): {body}"))
        }
    };
    match binary {
        "get-app-token" => assert_eq!(http(200)["token"]["title"], "seeded"),
        "revoke-app-token" => assert_eq!(http(204), Value::Null),
        "rotate-app-token" | "rotate-self" => {
            let token = &http(200)["token"];
            assert_eq!(token["title"], "seeded", "{token}");
            assert!(Secret::parse(token["token_code"].as_str().unwrap_or_default()).is_ok());
            if binary == "rotate-self" {
                assert_eq!(token["uuid"], authorized_uuid.to_string());
            }
        }
        // The shipped event asks for 12/01/2026-12/03/2026; seeds are logged when this runs.
        "list-user-logs" => {
            let page = http(200);
            assert!(page["logs"].is_array(), "{page}");
            assert_eq!(
                page["start_time"], "Tue, 01 Dec 2026 00:00:00 -0000",
                "{page}"
            );
        }
        "rotate-pat" => {
            let pat = http(200);
            assert_eq!(pat["id"], 1, "{pat}");
            assert!(Secret::parse(pat["secret"].as_str().unwrap_or_default()).is_ok());
        }
        "delete-pat" => assert_eq!(http(200), Value::Null),
        "list-app-tokens" => assert_eq!(http(200), json!({"tokens": [], "only_expiring": true})),
        "list-pats" => {
            let pats = http(200);
            assert_eq!(pats["pats"].as_array().map(Vec::len), Some(1), "{pats}");
            assert_eq!(pats["pats"][0]["id"], 2, "{pats}");
        }
        "create-app-token" => {
            let token = &http(201)["token"];
            assert_eq!(token["title"], "ci-pipeline");
            assert!(Secret::parse(token["token_code"].as_str().unwrap()).is_ok());
        }
        "create-pat" => {
            let pat = http(201);
            assert_eq!(
                (pat["id"].as_u64(), pat["description"].as_str()),
                (Some(4), Some("deploy bot")),
                "{pat}"
            );
            assert_eq!(answer["headers"]["location"], "/api/admin/user/tokens/4");
        }
        "authorizer" => assert_eq!(
            answer,
            &json!({"isAuthorized": true, "context": {
                "user_id": "alice", "auth": "pat", "token_uuid": authorized_uuid.to_string(),
                "scopes": "repo:read repo:write repo:admin repo:create user:read user:admin org:admin self_rotate",
                "expires": authorized.expires.map(|at| at.timestamp().to_string()).unwrap_or_default()
            }})
        ),
        "cleanup" => {
            for key in ["deleted", "examined", "remaining", "duration_ms"] {
                assert!(
                    answer[key].is_u64(),
                    "cleanup summary lacks {key}: {answer}"
                );
            }
            assert_eq!(answer["stopped_early"], false);
        }
        "notify-expiring" => {
            assert_eq!(
                (answer["events"].as_u64(), answer["announced"].as_u64()),
                (Some(1), Some(1)),
                "{answer}"
            );
            assert_eq!(answer["stopped_early"], false);
        }
        "fallback" => {
            // PUT on the Quay collection: a 405 in Quay's body, naming the methods it has.
            let body = http(405);
            assert_eq!(body["error_type"], "method_not_allowed", "{body}");
            assert_eq!(answer["headers"]["allow"], "POST, GET", "{answer}");
        }
        "example-whoami" => assert_eq!(
            http(200),
            json!({"user_id": "alice", "auth": "pat",
                   "token_uuid": "6b5aa827-cee5-4fbe-a434-4b7b8a245ca7", "scopes": ["repo:read"]})
        ),
        "openapi" => {
            let served = http(200);
            let text = std::fs::read_to_string(harness::workspace_root().join("openapi.yaml"))
                .expect("openapi.yaml");
            let document: Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
            assert_eq!(served, document, "the served document is openapi.yaml");
        }
        // The template's defaults: no issuer, so a page that says sign-in is not configured.
        "settings-page" => {
            assert_eq!(answer["statusCode"], 200, "{answer}");
            let headers = &answer["headers"];
            assert_eq!(
                headers["content-type"], "text/html; charset=utf-8",
                "{answer}"
            );
            assert_eq!(headers["cache-control"], "no-cache");
            let csp = headers["content-security-policy"]
                .as_str()
                .unwrap_or_default();
            assert!(csp.contains("script-src 'self';"), "{csp}");
            let body = answer["body"].as_str().unwrap_or_default();
            assert!(body.contains("&quot;client_id&quot;:null"), "{body}");
        }
        "secret-scanning-github" => {
            let reported = event("secret-scanning-github.json");
            let matches: Vec<Value> =
                serde_json::from_str(reported["body"].as_str().unwrap()).unwrap();
            let hash = |m: &Value| {
                shared::tokens::SecretDigest::of_text(m["token"].as_str().unwrap()).to_hex()
            };
            assert_eq!(
                http(200),
                json!([
                    {"token_hash": hash(&matches[0]), "token_type": "token_service_pat", "label": "true_positive"},
                    {"token_hash": hash(&matches[1]), "token_type": "token_service_pat", "label": "false_positive"},
                ])
            );
        }
        "revoke-credentials" => assert_eq!(http(202), Value::Null),
        other => panic!("no expectation for {other}"),
    }
}
