//! Matching a request to a route as API Gateway (HTTP API) does: literal segments before
//! `{param}` ones before `{proxy+}`, an exact method before `ANY`, and `$default` last.

use std::collections::BTreeMap;

/// One route: `METHOD /path/{param}` and the function behind it.
#[derive(Debug, Clone)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The function's logical id.
    pub function: String,
    pub authorizer: Option<String>,
    segments: Vec<Segment>,
    /// The `$default` route: taken by every request no other route takes.
    catch_all: bool,
}

/// The route key of the catch-all route (SAM: an `HttpApi` event with no `Path` and `Method`).
pub const DEFAULT_ROUTE: &str = "$default";

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Route {
    pub fn new(method: &str, path: &str, function: &str, authorizer: Option<&str>) -> Route {
        let catch_all = path.trim_start_matches('/') == DEFAULT_ROUTE;
        let segments = split_path(path)
            .into_iter()
            .map(|s| {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                    Segment::Greedy(name.to_owned())
                } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Segment::Param(name.to_owned())
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        Route {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            function: function.to_owned(),
            authorizer: authorizer.map(str::to_owned),
            segments: if catch_all { Vec::new() } else { segments },
            catch_all,
        }
    }

    /// `routeKey` as API Gateway writes it.
    pub fn key(&self) -> String {
        if self.catch_all {
            DEFAULT_ROUTE.to_owned()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    /// The path parameters when this route takes the request.
    pub(super) fn matches(&self, method: &str, raw_path: &str) -> Option<BTreeMap<String, String>> {
        if self.catch_all {
            return Some(BTreeMap::new());
        }
        if self.method != "ANY" && self.method != method {
            return None;
        }
        let parts = split_path(raw_path);
        let mut params = BTreeMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy(name) => {
                    let rest = parts.get(i..).filter(|r| !r.is_empty())?;
                    params.insert(name.clone(), percent_decode(&rest.join("/")));
                    return Some(params);
                }
                Segment::Literal(literal) => {
                    if parts.get(i) != Some(&literal.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = parts.get(i).filter(|v| !v.is_empty())?;
                    params.insert(name.clone(), percent_decode(value));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// Lower is more specific: API Gateway prefers literal paths, then parameters, then
    /// greedy paths, and an exact method over ANY.
    pub(super) fn specificity(&self) -> (usize, usize, bool) {
        if self.catch_all {
            return (usize::MAX, usize::MAX, true);
        }
        let count = |greedy: bool| {
            self.segments
                .iter()
                .filter(|s| match s {
                    Segment::Greedy(_) => greedy,
                    Segment::Param(_) => !greedy,
                    Segment::Literal(_) => false,
                })
                .count()
        };
        (count(true), count(false), self.method == "ANY")
    }
}

fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// `%XX` decoded, invalid UTF-8 replaced.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
