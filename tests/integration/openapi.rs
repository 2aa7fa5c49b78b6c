//! The API document: `GET /api/openapi.json` serves `openapi.yaml`; the document names every
//! route of `template.yaml`; its examples match its schemas; and the check every other test's
//! answers go through (`support.rs`'s `answer`, `harness::openapi`) refuses what is outside it.

use crate::support::*;
use harness::openapi::document;
use harness::template::Template;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

#[tokio::test]
async fn the_document_is_served_as_json() {
    let served = answer(shared::openapi::openapi(request(&event("openapi.json"))).await);
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(&served.json(), document().root());
    assert_eq!(served.json()["openapi"], "3.1.0");
}

#[test]
fn every_route_of_the_template_is_documented_and_nothing_else() {
    let declared: BTreeSet<String> = Template::load()
        .http_routes()
        .into_iter()
        .filter(|r| r.path != "/$default")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, operations) in document().root()["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
    }
    assert_eq!(documented, declared);
}

/// Every example of a response or request body, with the pointer of its schema.
fn examples() -> Vec<(String, String, Value)> {
    let doc = document().root();
    let mut found = Vec::new();
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let base = format!("/paths/{}/{method}", escape(path));
            let mut bodies = vec![(
                format!("{base}/requestBody"),
                operation.get("requestBody").cloned(),
            )];
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                bodies.push((format!("{base}/responses/{status}"), Some(response.clone())));
            }
            for (mut pointer, body) in bodies {
                let Some(mut body) = body else { continue };
                if let Some(target) = body.get("$ref").and_then(Value::as_str) {
                    pointer = target.trim_start_matches('#').to_owned();
                    body = doc.pointer(&pointer).unwrap().clone();
                }
                for (media, content) in body["content"].as_object().into_iter().flatten() {
                    let schema = format!("{pointer}/content/{}/schema", escape(media));
                    for (name, example) in content["examples"].as_object().into_iter().flatten() {
                        let value = match example.get("$ref").and_then(Value::as_str) {
                            Some(r) => {
                                doc.pointer(r.trim_start_matches('#')).unwrap()["value"].clone()
                            }
                            None => example["value"].clone(),
                        };
                        found.push((schema.clone(), format!("{pointer} {name}"), value));
                    }
                    if let Some(value) = content.get("example") {
                        found.push((schema.clone(), format!("{pointer} example"), value.clone()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_example_matches_its_schema() {
    let examples = examples();
    assert!(examples.len() >= 20, "only {} examples", examples.len());
    for (schema, name, value) in examples {
        let errors = document().schema_errors(&schema, &value);
        assert!(errors.is_empty(), "{name}: {errors:?}\n{value}");
    }
}

#[test]
fn the_check_refuses_answers_outside_the_document() {
    let doc = document();
    let json_headers = |extra: &[(&str, &str)]| -> HashMap<String, String> {
        let mut headers: HashMap<String, String> = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        headers.shrink_to_fit();
        headers
    };
    let pat = json!({"id": 1, "secret": "pat_OtA2dl2UTl4B2y35t0BBHryTcK3b9y3XKgk2",
        "description": "ci", "expiresAt": "2027-04-19T08:15:14.000Z",
        "createdAt": "2026-11-23T09:12:00.481Z", "seenAt": null});
    let create = "POST /api/admin/user/tokens";
    let location = [("location", "/api/admin/user/tokens/1")];
    assert_eq!(
        doc.check(create, 201, &json_headers(&location), &pat.to_string()),
        Ok(())
    );
    // Without Location, with a status the operation never answers, with a field missing.
    assert!(doc
        .check(create, 201, &json_headers(&[]), &pat.to_string())
        .is_err());
    assert!(doc
        .check(create, 418, &json_headers(&location), &pat.to_string())
        .is_err());
    let mut partial = pat.clone();
    partial.as_object_mut().unwrap().remove("createdAt");
    assert!(doc
        .check(create, 201, &json_headers(&location), &partial.to_string())
        .is_err());
    // A Quay error body on an Unleash route, and a body where the document has none.
    let quay_error = json!({"status": 404, "error_message": "Not Found", "title": "not_found",
        "error_type": "not_found", "detail": "Not Found", "type": "/api/v1/error/not_found"});
    assert!(doc
        .check(
            "DELETE /api/admin/user/tokens/{id}",
            404,
            &json_headers(&[]),
            &quay_error.to_string()
        )
        .is_err());
    assert!(doc
        .check(
            "DELETE /api/v1/user/apptoken/{token_uuid}",
            204,
            &json_headers(&[]),
            "{}"
        )
        .is_err());
    assert!(doc
        .check("PUT /api/admin/user/tokens", 200, &json_headers(&[]), "")
        .is_err());
}
