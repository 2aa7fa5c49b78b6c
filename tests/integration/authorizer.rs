//! Authorizer integration tests. Being written.
