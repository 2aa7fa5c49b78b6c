//! The IAM side of `template.yaml`: each function's `Policies` (inline statements and the SAM
//! policy templates the template may use) resolved to (effect, actions, resource ARNs) in a
//! made-up account, and the check that a call is allowed, with IAM's wildcard matching. What a
//! function's code calls is recorded by [`crate::iam_calls`]; DynamoDB Local and moto ignore IAM,
//! so this is the only place a missing action shows before AWS.

use crate::template::{str_at, Template, TABLE_RESOURCE};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The account every ARN (recorded or resolved) is written in.
pub const PARTITION: &str = "aws";
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// A DynamoDB table's ARN in that account.
pub fn table_arn(table: &str) -> String {
    format!("arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

/// An EventBridge bus's ARN in that account (a bus named by its ARN is that ARN).
pub fn bus_arn(bus: &str) -> String {
    if bus.starts_with("arn:") {
        return bus.to_owned();
    }
    format!("arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{bus}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
}

/// What a deployment names: the table's physical name, and parameter values over the defaults.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub parameters: BTreeMap<String, String>,
}

impl Template {
    /// Every function's statements by its binary name (functions without `Policies` have none).
    pub fn policies(&self, deployment: &Deployment) -> BTreeMap<String, Vec<Statement>> {
        let resolver = Resolver::new(self, deployment);
        self.resources()
            .iter()
            .filter(|(_, r)| {
                r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
            })
            .map(|(id, resource)| {
                let binary = str_at(&resource["Metadata"]["BuildProperties"], "Binary");
                let id = id.as_str().unwrap_or_default();
                let statements = match resource["Properties"].get("Policies") {
                    None => Vec::new(),
                    Some(Value::Sequence(entries)) => entries
                        .iter()
                        .flat_map(|entry| resolver.policy(id, entry))
                        .collect(),
                    Some(single) => resolver.policy(id, single),
                };
                (binary.to_owned(), statements)
            })
            .collect()
    }
}

/// Whether the statements allow `action` on `resource`: an Allow matches and no Deny does.
pub fn allows(statements: &[Statement], action: &str, resource: &str) -> bool {
    let matches = |s: &&Statement| {
        s.actions
            .iter()
            .any(|a| wildcard(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && s.resources.iter().any(|r| wildcard(r, resource))
    };
    let statements = || statements.iter().filter(matches);
    statements().any(|s| s.allow) && !statements().any(|s| !s.allow)
}

/// IAM's matching: `*` any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

struct Resolver {
    table: String,
    parameters: BTreeMap<String, String>,
}

impl Resolver {
    fn new(template: &Template, deployment: &Deployment) -> Resolver {
        let mut parameters = BTreeMap::new();
        if let Some(declared) = template.root.get("Parameters").and_then(Value::as_mapping) {
            for (name, parameter) in declared {
                let value = match parameter.get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                parameters.insert(name.as_str().unwrap_or_default().to_owned(), value);
            }
        }
        parameters.extend(deployment.parameters.clone());
        Resolver {
            table: deployment.table.clone(),
            parameters,
        }
    }

    /// One entry of `Policies`.
    fn policy(&self, function: &str, entry: &Value) -> Vec<Statement> {
        let fail = |why: &str| -> ! { panic!("{function}: Policies entry {entry:?}: {why}") };
        let Some(mapping) = entry.as_mapping() else {
            // A managed policy by name or ARN: only the ones that grant no table or bus access.
            match entry.as_str() {
                Some("AWSLambdaBasicExecutionRole" | "AWSXrayWriteOnlyAccess") => return vec![],
                _ => fail("a managed policy this check cannot expand"),
            }
        };
        if let Some(statements) = mapping.get("Statement") {
            let statements = match statements {
                Value::Sequence(list) => list.clone(),
                single => vec![single.clone()],
            };
            return statements
                .iter()
                .map(|s| self.statement(function, s))
                .collect();
        }
        let [(name, arguments)] = mapping.iter().collect::<Vec<_>>()[..] else {
            fail("neither a policy document nor one SAM policy template");
        };
        let argument = |key: &str| {
            self.resolve(&arguments[key])
                .unwrap_or_else(|| fail(&format!("no {key}")))
        };
        let table_and_indexes = |table: &str| {
            let arn = table_arn(table);
            vec![arn.clone(), format!("{arn}/index/*")]
        };
        let dynamodb = |actions: &[&str], resources: Vec<String>| Statement {
            allow: true,
            actions: actions.iter().map(|a| format!("dynamodb:{a}")).collect(),
            resources,
        };
        // As samtranslator's policy_templates.json defines them.
        let statement = match name.as_str().unwrap_or_default() {
            "DynamoDBCrudPolicy" => dynamodb(
                &[
                    "GetItem",
                    "DeleteItem",
                    "PutItem",
                    "Scan",
                    "Query",
                    "UpdateItem",
                    "BatchWriteItem",
                    "BatchGetItem",
                    "DescribeTable",
                    "ConditionCheckItem",
                ],
                table_and_indexes(&argument("TableName")),
            ),
            "DynamoDBReadPolicy" => dynamodb(
                &["GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"],
                table_and_indexes(&argument("TableName")),
            ),
            "DynamoDBWritePolicy" => dynamodb(
                &["PutItem", "UpdateItem", "BatchWriteItem"],
                table_and_indexes(&argument("TableName")),
            ),
            "EventBridgePutEventsPolicy" => Statement {
                allow: true,
                actions: vec!["events:PutEvents".into()],
                resources: vec![bus_arn(&argument("EventBusName"))],
            },
            other => fail(&format!(
                "the SAM policy template {other} is not expanded here"
            )),
        };
        vec![statement]
    }

    fn statement(&self, function: &str, statement: &Value) -> Statement {
        let fail = |why: &str| -> ! { panic!("{function}: statement {statement:?}: {why}") };
        for unsupported in ["NotAction", "NotResource", "Condition", "NotPrincipal"] {
            if statement.get(unsupported).is_some() {
                fail(&format!("{unsupported} is not supported by this check"));
            }
        }
        let list = |key: &str| -> Vec<&Value> {
            match statement.get(key) {
                Some(Value::Sequence(items)) => items.iter().collect(),
                Some(single) => vec![single],
                None => fail(&format!("no {key}")),
            }
        };
        Statement {
            allow: match statement.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => fail("Effect is neither Allow nor Deny"),
            },
            actions: list("Action")
                .into_iter()
                .map(|a| {
                    a.as_str()
                        .unwrap_or_else(|| fail("an action is not a string"))
                        .into()
                })
                .collect(),
            resources: list("Resource")
                .into_iter()
                .map(|r| {
                    self.resolve(r)
                        .unwrap_or_else(|| fail(&format!("cannot resolve {r:?}")))
                })
                .collect(),
        }
    }

    /// A string, `!Ref`, `!GetAtt X.Arn` or `!Sub` (and their `Ref`/`Fn::` forms) of the table,
    /// parameters and the pseudo parameters.
    fn resolve(&self, value: &Value) -> Option<String> {
        let (tag, inner) = match value {
            Value::String(s) => return Some(s.clone()),
            Value::Tagged(t) => (t.tag.to_string(), t.value.clone()),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m.iter().next()?;
                (k.as_str()?.replace("Fn::", "!"), v.clone())
            }
            _ => return None,
        };
        match tag.trim_start_matches('!') {
            "Ref" => self.reference(inner.as_str()?),
            "GetAtt" => {
                let text = match &inner {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => {
                        format!("{}.{}", parts[0].as_str()?, parts[1].as_str()?)
                    }
                    _ => return None,
                };
                self.reference(&text)
            }
            "Sub" => {
                let (text, locals) = match &inner {
                    Value::String(s) => (s.clone(), BTreeMap::new()),
                    Value::Sequence(parts) => {
                        let locals = parts.get(1)?.as_mapping()?;
                        let locals = locals
                            .iter()
                            .map(|(k, v)| Some((k.as_str()?.to_owned(), self.resolve(v)?)))
                            .collect::<Option<BTreeMap<_, _>>>()?;
                        (parts.first()?.as_str()?.to_owned(), locals)
                    }
                    _ => return None,
                };
                self.substitute(&text, &locals)
            }
            _ => None,
        }
    }

    fn substitute(&self, text: &str, locals: &BTreeMap<String, String>) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}')? + start;
            let name = &rest[start + 2..end];
            out.push_str(&match locals.get(name) {
                Some(value) => value.clone(),
                None => self.reference(name)?,
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// `TokensTable`, `TokensTable.Arn`, a parameter or a pseudo parameter.
    fn reference(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::Partition" => PARTITION.into(),
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            TABLE_RESOURCE => self.table.clone(),
            n if n == format!("{TABLE_RESOURCE}.Arn") => table_arn(&self.table),
            parameter => self.parameters.get(parameter)?.clone(),
        })
    }
}
