//! The token service's common crate: everything the Lambda binaries share.
//!
//! - `tokens`: the domain (token model, secret format, lifetime rules)
//! - `store`: DynamoDB items and calls
//! - `identity`: who is calling, from API Gateway's request context
//! - `quay`, `unleash`: the two API dialects; `error`: their error bodies
//! - `cleanup`, `notify`: the scheduled runs; `events`: what goes to EventBridge
//! - `leaks`: leaked tokens reported by GitHub's secret scanning or by anyone, revoked
//! - `keys`: public keys fetched from a URL and cached (the OIDC issuer's, GitHub's)
//! - `config`, `app`, `telemetry`: what a function builds once at cold start

pub mod app;
pub mod authorizer;
pub mod cleanup;
pub mod config;
pub mod dates;
pub mod error;
pub mod events;
pub mod example;
#[cfg(test)]
mod extreme_dates;
pub mod fallback;
pub mod http;
pub mod identity;
pub mod keys;
pub mod leaks;
pub mod logs;
pub mod notify;
pub mod oidc;
pub mod openapi;
pub mod quay;
pub mod response;
pub mod rotation;
pub mod settings_page;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod unleash;

pub use app::App;
