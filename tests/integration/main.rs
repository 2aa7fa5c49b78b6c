//! Integration tests: every handler against real DynamoDB Local, fed from `events/*.json`.
//! One test binary, so one DynamoDB Local serves the whole run; each test gets its own table.

mod support;

mod audit;
mod authorizer;
mod authz_matrix;
mod authz_table;
mod browser;
mod cleanup;
mod fallback;
mod faults;
mod iam;
mod leaks;
mod local_run;
mod notify;
mod openapi;
mod quay;
mod rotation;
mod rotation_rules;
mod route_auth;
mod sam_local;
mod scopes;
mod settings_page;
mod signin;
mod store;
mod unleash;
