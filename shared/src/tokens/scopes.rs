//! OAuth scopes as this service reads them: RFC 6749 §3.3 joins scope tokens with single
//! spaces, so a space is the only separator. `"profile,user:admin"` is one (unknown) scope,
//! never `user:admin`. Every place that reads a scope list (the authorizer's JWT claims, the
//! authorizer context a route receives) splits with [`split`], and writes with [`join`].

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
