//! The authorization rules as one table (issue 31): for each kind of caller and each operation
//! of the token routes, the status each dialect answers, `Quay / Unleash`, or one status where
//! only Quay has the route. `authz_matrix.rs` runs every cell through the real function binaries
//! under the Lambda runtime emulator against DynamoDB Local; docs/authorization.md shows this
//! same table (a test checks that it does, line for line).
//!
//! Each cell starts from fresh tokens of a user of its own: the caller's (for a PAT caller) and
//! the target (a token holding the column's scopes; "another user's" belongs to someone else).
//! Creates ask for the named scopes; rotations send `{}`; `self/rotate` rotates the token presented
//! in `Authorization`, so a session (this project's authorizer context with the named scopes)
//! has none to present there: 401. A PAT is sent as `Authorization: Bearer`. "Another user's"
//! token is named by its uuid, or by an Unleash id the caller's user does not have.

pub const TABLE: &str = "\
| caller | list | get | logs | create `repo:read` | create `super:user` | rotate a `repo:read` token | rotate a `super:user` token | rotate another user's | `self/rotate` | revoke |
|---|---|---|---|---|---|---|---|---|---|---|
| session `user:admin` | 200 / 200 | 200 | 200 | 201 / 201 | 403 / 403 | 200 / 200 | 403 / 403 | 404 / 404 | 401 | 204 / 200 |
| session `user:admin super:user` | 200 / 200 | 200 | 200 | 201 / 201 | 201 / 201 | 200 / 200 | 200 / 200 | 404 / 404 | 401 | 204 / 200 |
| session `user:read` | 200 / 200 | 200 | 200 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 401 | 403 / 403 |
| PAT `user:admin` | 200 / 200 | 200 | 200 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 404 / 404 | 200 | 204 / 200 |
| PAT `repo:read user:admin` | 200 / 200 | 200 | 200 | 201 / 201 | 403 / 403 | 200 / 200 | 403 / 403 | 404 / 404 | 200 | 204 / 200 |
| PAT `user:read` | 200 / 200 | 200 | 200 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 | 403 / 403 |
| PAT `repo:read` | 403 / 403 | 403 | 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 | 403 / 403 |
| PAT `repo:read self_rotate` | 403 / 403 | 403 | 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 403 / 403 | 200 | 403 / 403 |
| PAT `repo:read user:admin`, in its grace | 401 / 401 | 401 | 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 | 401 / 401 |
| PAT `user:admin`, revoked | 401 / 401 | 401 | 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 | 401 / 401 |
| PAT `user:admin`, expired | 401 / 401 | 401 | 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 | 401 / 401 |
| no credentials | 401 / 401 | 401 | 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 / 401 | 401 | 401 / 401 |
";

/// Who calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    Session(String),
    Pat(Vec<String>),
    InGrace(Vec<String>),
    Revoked(Vec<String>),
    Expired(Vec<String>),
    Anonymous,
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    List,
    Get,
    Logs,
    Create(&'static str),
    Rotate(&'static str),
    RotateOthers,
    RotateSelf,
    Revoke,
}

/// One cell: the caller, the operation, and the statuses expected from Quay's route and
/// (where it has one) Unleash's.
#[derive(Debug, Clone)]
pub struct Cell {
    pub row: String,
    pub caller: CallerKind,
    pub operation: Operation,
    pub quay: u16,
    pub unleash: Option<u16>,
}

/// The header's columns, in order.
pub fn operation(column: &str) -> Operation {
    match column {
        "list" => Operation::List,
        "get" => Operation::Get,
        "logs" => Operation::Logs,
        "create `repo:read`" => Operation::Create("repo:read"),
        "create `super:user`" => Operation::Create("super:user"),
        "rotate a `repo:read` token" => Operation::Rotate("repo:read"),
        "rotate a `super:user` token" => Operation::Rotate("super:user"),
        "rotate another user's" => Operation::RotateOthers,
        "`self/rotate`" => Operation::RotateSelf,
        "revoke" => Operation::Revoke,
        other => panic!("the table has an unknown column {other:?}"),
    }
}

fn caller(row: &str) -> CallerKind {
    let scopes = |text: &str| -> Vec<String> {
        let inner = text.split('`').nth(1).unwrap_or_default();
        inner.split(' ').map(str::to_owned).collect()
    };
    if row == "no credentials" {
        CallerKind::Anonymous
    } else if let Some(rest) = row.strip_prefix("session ") {
        CallerKind::Session(rest.trim_matches('`').to_owned())
    } else if row.ends_with(", in its grace") {
        CallerKind::InGrace(scopes(row))
    } else if row.ends_with(", revoked") {
        CallerKind::Revoked(scopes(row))
    } else if row.ends_with(", expired") {
        CallerKind::Expired(scopes(row))
    } else if row.starts_with("PAT ") {
        CallerKind::Pat(scopes(row))
    } else {
        panic!("the table has an unknown caller {row:?}")
    }
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

/// Every cell of [`TABLE`].
pub fn rules() -> Vec<Cell> {
    let mut lines = TABLE.lines();
    let header = cells(lines.next().expect("a header"));
    let operations: Vec<Operation> = header[1..].iter().map(|c| operation(c)).collect();
    let mut out = Vec::new();
    for line in lines.skip(1) {
        let row = cells(line);
        assert_eq!(row.len(), header.len(), "{line}");
        for (operation, statuses) in operations.iter().zip(&row[1..]) {
            let mut parts = statuses.split(" / ").map(|s| {
                s.parse::<u16>()
                    .unwrap_or_else(|_| panic!("{s:?} in {line}"))
            });
            out.push(Cell {
                row: row[0].to_owned(),
                caller: caller(row[0]),
                operation: *operation,
                quay: parts.next().expect("a status"),
                unleash: parts.next(),
            });
        }
    }
    out
}
