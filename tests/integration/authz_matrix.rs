//! Runs every cell of the authorization table (`authz_table.rs`) through the real function
//! binaries under the Lambda runtime emulator, against DynamoDB Local, and fails listing every
//! cell whose status differs. Also checks that docs/authorization.md shows the same table.

use crate::authz_table::{rules, CallerKind, Cell, Operation, TABLE};
use crate::sam_local::{built_bootstrap, template_functions};
use crate::support::*;
use chrono::{Duration, Utc};
use harness::events::with_path_parameter;
use harness::rie::Emulator;
use harness::template::Template;
use harness::{workspace_root, DynamoLocal};
use serde_json::{json, Value};
use shared::store::{Audit, NewToken, Rotation};
use shared::tokens::{Secret, Token};
use std::collections::HashMap;
use uuid::Uuid;

/// A user's token, and its secret.
struct Held {
    token: Token,
    secret: Secret,
}

async fn issue(env: &TestEnv, user: &str, scopes: &[String]) -> Held {
    let issued = issue_token(env, user, scopes, Duration::days(2)).await;
    Held {
        token: issued.token,
        secret: issued.secret,
    }
}

/// The caller's `Authorization` (or authorizer context), after making its token.
async fn caller(env: &TestEnv, user: &str, kind: &CallerKind) -> (Option<String>, Option<Value>) {
    let now = Utc::now();
    let bearer = |secret: &Secret| Some(format!("Bearer {}", secret.expose()));
    match kind {
        CallerKind::Anonymous => (None, None),
        CallerKind::Session(scopes) => (
            None,
            Some(json!({"lambda": {"user_id": user, "auth": "jwt", "scopes": scopes}})),
        ),
        CallerKind::Pat(scopes) => (bearer(&issue(env, user, scopes).await.secret), None),
        CallerKind::InGrace(scopes) => {
            let held = issue(env, user, scopes).await;
            let rotation = Rotation {
                digest: Secret::generate().expect("secret").digest(),
                expires: held.token.expires,
                grace: Duration::hours(1),
                ttl_grace: env.app.config.ttl_grace,
                presented: None,
                within_lifetime: false,
                audit: Audit::system(now),
            };
            let rotated = env
                .app
                .store
                .rotate(user, &held.token.uuid, &rotation)
                .await;
            assert!(
                matches!(rotated, Ok(shared::store::Rotated::Yes(_))),
                "{rotated:?}"
            );
            (bearer(&held.secret), None)
        }
        CallerKind::Revoked(scopes) => {
            let held = issue(env, user, scopes).await;
            let revoked = env
                .app
                .store
                .revoke(user, &held.token.uuid, &Audit::system(now))
                .await;
            assert!(
                matches!(revoked, Ok(shared::store::Revoked::Yes)),
                "{revoked:?}"
            );
            (bearer(&held.secret), None)
        }
        CallerKind::Expired(scopes) => {
            let secret = Secret::generate().expect("secret");
            let new = NewToken {
                user_id: user.to_owned(),
                uuid: Uuid::new_v4(),
                title: "expired".into(),
                created: now - Duration::days(2),
                expires: Some(now - Duration::minutes(1)),
                scopes: Some(scopes.clone()),
            };
            let stored = env
                .app
                .store
                .create_token(new, &secret.digest(), 100, env.app.config.ttl_grace)
                .await;
            assert!(stored.is_ok(), "{stored:?}");
            (bearer(&secret), None)
        }
    }
}

/// The function and event of one cell in one dialect (`unleash`), after making its target.
async fn request_of(
    env: &TestEnv,
    cell: &Cell,
    user: &str,
    unleash: bool,
) -> (&'static str, Value) {
    let target = |scopes: &[&str]| scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let on = |name: &'static str, held: &Held| {
        let e = event(&format!("{name}.json"));
        if unleash {
            with_path_parameter(e, "id", &held.token.number.to_string())
        } else {
            with_path_parameter(e, "token_uuid", &held.token.uuid.to_string())
        }
    };
    match (cell.operation, unleash) {
        (Operation::List, false) => ("list-app-tokens", event("list-app-tokens.json")),
        (Operation::List, true) => ("list-pats", event("list-pats.json")),
        (Operation::Get, _) => {
            let held = issue(env, user, &target(&["repo:read"])).await;
            ("get-app-token", on("get-app-token", &held))
        }
        (Operation::Logs, _) => ("list-user-logs", event("list-user-logs.json")),
        (Operation::Create(scope), false) => {
            let body = json!({"title": "made", "scopes": [scope]}).to_string();
            (
                "create-app-token",
                with_body(event("create-app-token.json"), &body),
            )
        }
        (Operation::Create(scope), true) => {
            let expires = (Utc::now() + Duration::days(3)).to_rfc3339();
            let body = json!({"description": "made", "expiresAt": expires, "scopes": [scope]});
            (
                "create-pat",
                with_body(event("create-pat.json"), &body.to_string()),
            )
        }
        (Operation::Rotate(_) | Operation::RotateOthers, _) => {
            let (owner, scopes) = match cell.operation {
                Operation::Rotate(scope) => (user.to_owned(), target(&[scope])),
                _ => (format!("{user}-other"), target(&["repo:read"])),
            };
            let mut held = issue(env, &owner, &scopes).await;
            if cell.operation == Operation::RotateOthers {
                // Unleash ids are per user: the other user's third token has an id the
                // caller's user (one or two tokens) does not.
                for _ in 0..2 {
                    held = issue(env, &owner, &scopes).await;
                }
            }
            let name = if unleash {
                "rotate-pat"
            } else {
                "rotate-app-token"
            };
            (name, with_body(on(name, &held), "{}"))
        }
        (Operation::RotateSelf, _) => ("rotate-self", with_body(event("rotate-self.json"), "{}")),
        (Operation::Revoke, _) => {
            let held = issue(env, user, &target(&["repo:read"])).await;
            let name = if unleash {
                "delete-pat"
            } else {
                "revoke-app-token"
            };
            (name, on(name, &held))
        }
    }
}

#[tokio::test]
async fn every_caller_and_operation_answers_as_the_table_says_under_the_runtime_emulator() {
    let env = TestEnv::new().await;
    let functions = template_functions(&Template::load(), env.table());
    let mut emulators: HashMap<&'static str, Emulator> = HashMap::new();
    let mut differences = Vec::new();
    let cells = rules();
    assert!(cells.len() >= 100, "{} cells", cells.len());
    for (n, cell) in cells.iter().enumerate() {
        let dialects = [Some((false, cell.quay)), cell.unleash.map(|s| (true, s))];
        for (unleash, expected) in dialects.into_iter().flatten() {
            let user = format!("matrix-{n}-{}", if unleash { "u" } else { "q" });
            let (authorization, context) = caller(&env, &user, &cell.caller).await;
            let (binary, mut payload) = request_of(&env, cell, &user, unleash).await;
            let headers = payload["headers"].as_object_mut().expect("headers");
            headers.remove("authorization");
            if let Some(value) = authorization {
                headers.insert("authorization".into(), value.into());
            }
            let context_of = payload["requestContext"].as_object_mut().expect("context");
            context_of.remove("authorizer");
            if let Some(authorizer) = context {
                context_of.insert("authorizer".into(), authorizer);
            }
            if !emulators.contains_key(binary) {
                let function = functions
                    .iter()
                    .find(|f| f.binary == binary)
                    .expect("in the template");
                let mut environment: Vec<(String, String)> =
                    function.environment.clone().into_iter().collect();
                environment.extend(DynamoLocal::shared().environment());
                let started = Emulator::start(&built_bootstrap(&function.logical_id), &environment)
                    .unwrap_or_else(|e| panic!("{e}"));
                emulators.insert(binary, started);
            }
            let answer = emulators[binary]
                .invoke(&payload)
                .await
                .unwrap_or_else(|e| panic!("{binary}: {e}"));
            let got = answer["statusCode"].as_u64().unwrap_or_default();
            if got != u64::from(expected) {
                differences.push(format!(
                    "{} | {:?} | {}: expected {expected}, got {got}: {}",
                    cell.row,
                    cell.operation,
                    if unleash { "Unleash" } else { "Quay" },
                    answer["body"]
                ));
            }
        }
    }
    for (_, emulator) in emulators {
        emulator.stop();
    }
    assert!(
        differences.is_empty(),
        "{} cells differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_docs_show_the_table_the_test_runs() {
    let path = workspace_root().join("docs").join("authorization.md");
    let docs = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for line in TABLE.lines() {
        assert!(
            docs.contains(line),
            "docs/authorization.md lacks the table's line\n{line}"
        );
    }
}
