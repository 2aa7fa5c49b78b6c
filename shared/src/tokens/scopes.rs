//! Scopes: what a token may do. OAuth scope lists (RFC 6749 §3.3) join scope tokens with
//! single spaces, so a space is the only separator: `"profile,user:admin"` is one (unknown)
//! scope, never `user:admin`. Every place that reads a list (JWT claims, the authorizer
//! context a route receives) splits with [`split`] and writes with [`join`].
//!
//! The vocabulary is Quay's OAuth scopes plus the deployment's own (`TOKEN_SCOPES`). A token
//! holds a set of them; one stored before scopes existed holds [`ScopeSettings::legacy`].
//! What a creator may grant, and what a create without `scopes` gets, is decided here.

use std::collections::HashMap;

pub const REPO_READ: &str = "repo:read";
pub const USER_READ: &str = "user:read";
pub const USER_ADMIN: &str = "user:admin";
pub const SUPER_USER: &str = "super:user";
/// GitLab's name: a token holding it may rotate itself (`self/rotate`) within its original
/// lifetime; `user:admin` may too, without that bound.
pub const SELF_ROTATE: &str = "self_rotate";

/// The built-in vocabulary, in the order views list it: Red Hat Quay's OAuth scopes, then
/// GitLab's [`SELF_ROTATE`].
pub const BUILT_IN_SCOPES: [&str; 9] = [
    REPO_READ,
    "repo:write",
    "repo:admin",
    "repo:create",
    USER_READ,
    USER_ADMIN,
    "org:admin",
    SUPER_USER,
    SELF_ROTATE,
];

/// Deployer-defined scopes are 1 to 64 of `A-Z a-z 0-9 : . _ -`, at most this many.
pub const MAX_EXTRA_SCOPES: usize = 64;
const MAX_SCOPE_CHARS: usize = 64;

/// What a route needs of its caller: one of these scopes (as API Gateway's JWT authorizer
/// reads a route's `AuthorizationScopes`: any one of them suffices).
pub type AnyOf = &'static [&'static str];
/// Listing and reading tokens (and their log).
pub const READ_TOKENS: AnyOf = &[USER_READ, USER_ADMIN];
/// Creating, revoking and rotating tokens.
pub const MANAGE_TOKENS: AnyOf = &[USER_ADMIN];
/// A token rotating itself (`self/rotate`).
pub const ROTATE_SELF: AnyOf = &[USER_ADMIN, SELF_ROTATE];

/// The scope tokens of a space-separated list, empty tokens skipped.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(' ').filter(|s| !s.is_empty())
}

/// The list as the authorizer context carries it: space-separated.
pub fn join<S: AsRef<str>>(scopes: &[S]) -> String {
    let mut out = String::new();
    for scope in scopes {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(scope.as_ref());
    }
    out
}

/// Whether `held` contains one of `needed`.
pub fn holds_any<H: AsRef<str>, N: AsRef<str>>(held: &[H], needed: &[N]) -> bool {
    held.iter()
        .any(|h| needed.iter().any(|n| n.as_ref() == h.as_ref()))
}

/// The first scope of `held` (a target token's) missing from `grantable`: whoever may not grant
/// it may not receive a new secret of that token either (rotation).
pub fn first_missing<'a>(held: &'a [String], grantable: &[String]) -> Option<&'a str> {
    held.iter()
        .find(|scope| !grantable.contains(scope))
        .map(String::as_str)
}

/// The deployment's scope settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSettings {
    /// Quay's scopes, then the deployment's, without repeats.
    pub known: Vec<String>,
    /// What a create that names no scopes asks for; `None`: all the creator may grant.
    pub default: Option<Vec<String>>,
    /// The authorizer's gateway-side rules: route key (`GET /reports`) → any of these scopes.
    pub routes: HashMap<String, Vec<String>>,
}

/// A create asked for scopes it may not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope {0:?}")]
    Unknown(String),
    #[error("the caller cannot grant the {0} scope it does not hold")]
    NotGrantable(String),
}

impl ScopeSettings {
    /// From `TOKEN_SCOPES` (space-separated extra scopes), `DEFAULT_TOKEN_SCOPES`
    /// (space-separated) and `AUTHORIZER_ROUTE_SCOPES` (a JSON object of route key → a
    /// space-separated string or an array of scopes). Errors say what is wrong, and the caller
    /// names the variable: (0: extra, 1: default, 2: routes).
    pub fn parse(
        extra: Option<&str>,
        default: Option<&str>,
        routes: Option<&str>,
    ) -> Result<ScopeSettings, (usize, String)> {
        let mut known: Vec<String> = BUILT_IN_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let extra: Vec<&str> = extra.map(|t| split(t).collect()).unwrap_or_default();
        if extra.len() > MAX_EXTRA_SCOPES {
            return Err((0, format!("has more than {MAX_EXTRA_SCOPES} scopes")));
        }
        for scope in extra {
            if !is_well_formed(scope) {
                return Err((0, format!("{scope:?} is not a scope: use 1 to {MAX_SCOPE_CHARS} of A-Z a-z 0-9 : . _ -")));
            }
            if !known.iter().any(|k| k == scope) {
                known.push(scope.to_owned());
            }
        }
        let settings = ScopeSettings {
            known,
            default: None,
            routes: HashMap::new(),
        };
        let default = match default {
            None => None,
            Some(text) => Some(
                settings
                    .canonical(split(text))
                    .map_err(|e| (1, e.to_string()))?,
            ),
        };
        let routes = match routes {
            None => HashMap::new(),
            Some(text) => settings.parse_routes(text).map_err(|e| (2, e))?,
        };
        Ok(ScopeSettings {
            default,
            routes,
            ..settings
        })
    }

    fn parse_routes(&self, text: &str) -> Result<HashMap<String, Vec<String>>, String> {
        const SHAPE: &str =
            "must be a JSON object of route keys (\"GET /reports\") to scopes (\"reports:read\")";
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| SHAPE.to_owned())?;
        let mut routes = HashMap::new();
        for (route, value) in map {
            let listed: Vec<&str> = match &value {
                serde_json::Value::String(text) => split(text).collect(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().ok_or_else(|| SHAPE.to_owned()))
                    .collect::<Result<_, _>>()?,
                _ => return Err(SHAPE.to_owned()),
            };
            if listed.is_empty() {
                return Err(format!("route {route:?} lists no scope"));
            }
            let scopes = self
                .canonical(listed.into_iter())
                .map_err(|e| format!("route {route:?}: {e}"))?;
            routes.insert(route.trim().to_owned(), scopes);
        }
        Ok(routes)
    }

    /// Known scopes only, each once, in vocabulary order.
    pub fn canonical<'a>(
        &self,
        scopes: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<String>, ScopeError> {
        let mut wanted = Vec::new();
        for scope in scopes {
            if !self.known.iter().any(|k| k == scope) {
                return Err(ScopeError::Unknown(
                    scope.chars().take(MAX_SCOPE_CHARS).collect(),
                ));
            }
            wanted.push(scope);
        }
        Ok(self
            .known
            .iter()
            .filter(|k| wanted.contains(&k.as_str()))
            .cloned()
            .collect())
    }

    /// What a token stored before scopes existed holds: every known scope but `super:user`,
    /// the most a session without `super:user` could grant it today.
    pub fn legacy(&self) -> Vec<String> {
        self.known
            .iter()
            .filter(|s| *s != SUPER_USER)
            .cloned()
            .collect()
    }

    /// The scopes a token holds: its own, or [`Self::legacy`] when it has none stored.
    pub fn held(&self, stored: Option<&[String]>) -> Vec<String> {
        match stored {
            Some(scopes) => scopes.to_vec(),
            None => self.legacy(),
        }
    }

    /// What a caller may grant: a session any known scope but `super:user`, which it must
    /// hold itself; a token only the known scopes it holds (Quay's rule for robot tokens).
    pub fn grantable(&self, caller_scopes: &[String], session: bool) -> Vec<String> {
        self.known
            .iter()
            .filter(|k| {
                let holds = caller_scopes.contains(k);
                if session {
                    *k != SUPER_USER || holds
                } else {
                    holds
                }
            })
            .cloned()
            .collect()
    }

    /// The scopes a new token gets: those requested, each known and grantable; or, when none
    /// are named, the configured default within what the caller may grant (all of it when
    /// there is no default).
    pub fn for_new_token(
        &self,
        requested: Option<&[String]>,
        grantable: &[String],
    ) -> Result<Vec<String>, ScopeError> {
        match requested {
            Some(requested) => {
                let scopes = self.canonical(requested.iter().map(String::as_str))?;
                match first_missing(&scopes, grantable) {
                    Some(missing) => Err(ScopeError::NotGrantable(missing.to_owned())),
                    None => Ok(scopes),
                }
            }
            None => Ok(match &self.default {
                Some(default) => default
                    .iter()
                    .filter(|s| grantable.contains(s))
                    .cloned()
                    .collect(),
                None => grantable.to_vec(),
            }),
        }
    }

    /// The scopes the authorizer requires for `route_key` (one of them), if a rule names it.
    pub fn required_for(&self, route_key: &str) -> Option<&[String]> {
        self.routes.get(route_key).map(Vec::as_slice)
    }
}

fn is_well_formed(scope: &str) -> bool {
    (1..=MAX_SCOPE_CHARS).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_spaces_separate_scopes() {
        assert_eq!(
            split("openid  user:admin ").collect::<Vec<_>>(),
            ["openid", "user:admin"]
        );
        assert_eq!(
            split("profile,user:admin").collect::<Vec<_>>(),
            ["profile,user:admin"]
        );
        assert_eq!(split("").count(), 0);
        assert_eq!(join(&["a", "b:c"]), "a b:c");
        assert_eq!(join::<&str>(&[]), "");
    }

    #[test]
    fn settings_parse_and_refuse_by_position() {
        let s = ScopeSettings::parse(
            Some("reports:read  reports:write repo:read"),
            Some("repo:read reports:read"),
            Some(r#"{"GET /reports": "reports:read reports:write", "POST /reports": ["reports:write"]}"#),
        )
        .unwrap();
        assert_eq!(
            s.known.len(),
            11,
            "8 of Quay, self_rotate, 2 of the deployment"
        );
        assert_eq!(s.default, Some(owned(&["repo:read", "reports:read"])));
        assert_eq!(
            s.required_for("GET /reports"),
            Some(&owned(&["reports:read", "reports:write"])[..])
        );
        assert_eq!(s.required_for("GET /other"), None);
        for (args, at) in [
            ((Some("bad scope,"), None, None), 0),
            ((Some("x".repeat(65).as_str()), None, None), 0),
            ((None, Some("repo:read nope"), None), 1),
            ((None, None, Some("[]")), 2),
            ((None, None, Some(r#"{"GET /a": ""}"#)), 2),
            ((None, None, Some(r#"{"GET /a": "nope"}"#)), 2),
            ((None, None, Some(r#"{"GET /a": [1]}"#)), 2),
        ] {
            let (extra, default, routes) = args;
            let err = ScopeSettings::parse(extra, default, routes).unwrap_err();
            assert_eq!(err.0, at, "{args:?}: {}", err.1);
        }
        let many = (0..65)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            ScopeSettings::parse(Some(&many), None, None).unwrap_err().0,
            0
        );
    }

    #[test]
    fn creators_grant_at_most_what_they_may() {
        let s = ScopeSettings::parse(Some("reports:read"), None, None).unwrap();
        let session = s.grantable(&owned(&["openid", "user:admin"]), true);
        assert!(!session.contains(&SUPER_USER.to_owned()));
        assert!(session.contains(&"reports:read".to_owned()));
        assert!(s
            .grantable(&owned(&["super:user"]), true)
            .contains(&SUPER_USER.to_owned()));
        let token = s.grantable(&owned(&["user:admin", "repo:read", "gone:away"]), false);
        assert_eq!(token, owned(&["repo:read", "user:admin"]));

        assert_eq!(
            s.for_new_token(
                Some(&owned(&["user:admin", "repo:read", "repo:read"])),
                &token
            ),
            Ok(owned(&["repo:read", "user:admin"]))
        );
        assert_eq!(
            s.for_new_token(Some(&owned(&["repo:write"])), &token),
            Err(ScopeError::NotGrantable("repo:write".into()))
        );
        assert_eq!(
            s.for_new_token(Some(&owned(&["repo:wrote"])), &token),
            Err(ScopeError::Unknown("repo:wrote".into()))
        );
        assert_eq!(s.for_new_token(Some(&[]), &token), Ok(vec![]));
        assert_eq!(s.for_new_token(None, &token), Ok(token.clone()));
        let with_default = ScopeSettings::parse(None, Some("repo:read repo:write"), None).unwrap();
        assert_eq!(
            with_default.for_new_token(None, &token),
            Ok(owned(&["repo:read"]))
        );
        assert!(!s.legacy().contains(&SUPER_USER.to_owned()));
        assert_eq!(s.held(None), s.legacy());
        assert_eq!(s.held(Some(&owned(&["repo:read"]))), owned(&["repo:read"]));
    }
}
