//! The API document (`openapi.yaml`) as the tests hold every answer to it: the status must be
//! documented for the operation, the body must match that response's schema (JSON Schema
//! 2020-12, formats checked), and the response's required headers must be there.

use crate::workspace_root;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Document {
    root: Value,
    /// Validators by the JSON pointer of their schema, built on first use.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// `openapi.yaml`, read once per process.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = workspace_root().join("openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        Document {
            root,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// One segment of a JSON pointer (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl Document {
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Follows a `$ref` (local only), returning the target and its pointer.
    fn resolve<'a>(&'a self, value: &'a Value, pointer: String) -> (&'a Value, String) {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let target = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("only local references: {reference}"));
                let resolved = self
                    .root
                    .pointer(target)
                    .unwrap_or_else(|| panic!("dangling reference {reference}"));
                self.resolve(resolved, target.to_owned())
            }
            None => (value, pointer),
        }
    }

    /// The operation of `route_key` (`"GET /api/admin/user/tokens"`, as API Gateway names a
    /// route), and its pointer.
    fn operation(&self, route_key: &str) -> Option<(&Value, String)> {
        let (method, path) = route_key.split_once(' ')?;
        let method = method.to_ascii_lowercase();
        let operation = self.root.get("paths")?.get(path)?.get(&method)?;
        Some((operation, format!("/paths/{}/{method}", escape(path))))
    }

    /// Whether the document has an operation for this route key.
    pub fn has_operation(&self, route_key: &str) -> bool {
        self.operation(route_key).is_some()
    }

    /// Checks one answer of the route `route_key`. `headers` are lower-case names.
    pub fn check(
        &self,
        route_key: &str,
        status: u16,
        headers: &HashMap<String, String>,
        body: &str,
    ) -> Result<(), String> {
        let (operation, pointer) = self
            .operation(route_key)
            .ok_or_else(|| format!("openapi.yaml has no operation {route_key}"))?;
        let responses = &operation["responses"];
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let (key, response) = [code.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|key| responses.get(key).map(|r| (key, r)))
            .ok_or_else(|| format!("{route_key}: status {status} is not documented"))?;
        let (response, pointer) =
            self.resolve(response, format!("{pointer}/responses/{}", escape(key)));

        for (name, header) in response
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let (header, _) = self.resolve(header, String::new());
            let required = header.get("required").and_then(Value::as_bool) == Some(true);
            if required && !headers.contains_key(&name.to_ascii_lowercase()) {
                return Err(format!("{route_key} {status}: no {name} header"));
            }
        }

        let content = response.get("content").and_then(Value::as_object);
        match content {
            None if body.is_empty() => Ok(()),
            None => Err(format!(
                "{route_key} {status}: a body where the document has none: {body}"
            )),
            Some(_) if body.is_empty() => Err(format!(
                "{route_key} {status}: no body where the document has one"
            )),
            Some(content) => {
                let media = headers
                    .get("content-type")
                    .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
                    .unwrap_or_default();
                let media_type = content.get(&media).ok_or_else(|| {
                    format!("{route_key} {status}: content type {media:?} is not documented")
                })?;
                let Some(schema) = media_type.get("schema") else {
                    return Ok(());
                };
                let schema_pointer = format!("{pointer}/content/{}/schema", escape(&media));
                let (_, schema_pointer) = self.resolve(schema, schema_pointer);
                let instance: Value = serde_json::from_str(body)
                    .map_err(|e| format!("{route_key} {status}: body is not JSON ({e}): {body}"))?;
                let errors = self.schema_errors(&schema_pointer, &instance);
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{route_key} {status}: the body does not match {schema_pointer}: {}\nbody: {body}",
                        errors.join("; ")
                    ))
                }
            }
        }
    }

    /// The problems of `instance` against the schema at `pointer` (none: it matches).
    pub fn schema_errors(&self, pointer: &str, instance: &Value) -> Vec<String> {
        self.validator(pointer)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// A validator for the schema at `pointer`: the whole document is its root, so the
    /// schema's `#/components/...` references resolve as they do in the document.
    fn validator(&self, pointer: &str) -> Arc<jsonschema::Validator> {
        let mut validators = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        validators
            .entry(pointer.to_owned())
            .or_insert_with(|| {
                let mut schema = self.root.clone();
                // A URI fragment: the pointer's braces (path templates) percent-encoded.
                let fragment = pointer
                    .replace('%', "%25")
                    .replace('{', "%7B")
                    .replace('}', "%7D");
                schema["$ref"] = Value::String(format!("#{fragment}"));
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
                Arc::new(validator)
            })
            .clone()
    }
}
