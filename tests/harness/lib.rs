//! Test and local-run harness: real DynamoDB Local (one per process, on a free port, gone when
//! the process exits), tables created from `template.yaml` itself, DynamoDB clients that
//! count the requests they send, and moto as the local EventBridge.

pub mod dynamodb_local;
pub mod events;
pub mod fresh;
pub mod gateway;
pub mod github;
pub mod iam;
pub mod iam_calls;
pub mod moto;
pub mod oidc;
pub mod openapi;
pub mod ports;
pub mod rie;
pub mod signin;
pub mod template;
pub mod watchdog;

pub use dynamodb_local::DynamoLocal;

use std::path::PathBuf;

/// The repository root (this package's manifest lives there).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `scripts/bootstrap` installs the external tools.
pub fn tools_dir() -> PathBuf {
    workspace_root().join(".tools")
}

/// The line the local server (`./scripts/run`) prints once it answers; tests and
/// `scripts/bench` wait for it.
pub const LOCAL_API_READY: &str = "local-api ready on";

/// How to fix a missing tool, said the same way everywhere.
pub const INSTALL_HINT: &str = "run ./scripts/bootstrap (./scripts/test runs it for you)";
