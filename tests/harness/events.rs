//! The shipped `events/*.json` (one per function, as `sam local invoke` takes them), and the
//! changes tests and benchmarks make to them: a caller, a body, a path parameter.

use crate::workspace_root;
use serde_json::{json, Value};

/// An event file from `events/`, as JSON to adjust.
pub fn event(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The event with this project's authorizer context for `user` (a session with `user:admin`).
pub fn as_user(mut event: Value, user: &str) -> Value {
    event["requestContext"]["authorizer"] =
        json!({"lambda": {"user_id": user, "auth": "jwt", "scopes": "openid user:admin"}});
    event
}

pub fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = Value::String(body.to_owned());
    event
}

/// An event for a route with a path parameter, the path rewritten to match.
pub fn with_path_parameter(mut event: Value, name: &str, value: &str) -> Value {
    let old = event["pathParameters"][name]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    event["pathParameters"][name] = value.into();
    for pointer in ["/rawPath", "/requestContext/http/path"] {
        if let Some(path) = event.pointer_mut(pointer) {
            if let Some(text) = path.as_str() {
                *path = Value::String(text.replace(&old, value));
            }
        }
    }
    event
}

/// Where `sam build` left the functions (`SAM_BUILD_DIR`, else `.aws-sam/build`).
pub fn sam_build_dir() -> std::path::PathBuf {
    std::env::var_os("SAM_BUILD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".aws-sam").join("build"))
}
