//! The Lambda authorizer (API.md §3.1). Being written.
