//! Reads `template.yaml`: the table definition tests and the local run create, and the
//! functions, routes, authorizer and environment the SAM parity test and the local server use.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const TABLE_RESOURCE: &str = "TokensTable";

#[derive(Debug, Clone)]
pub struct Template {
    pub root: Value,
}

impl Template {
    pub fn load() -> Template {
        Template::load_from(&crate::workspace_root().join("template.yaml"))
    }

    pub fn load_from(path: &Path) -> Template {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        Template { root }
    }

    pub fn resources(&self) -> &serde_yaml::Mapping {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .expect("template has Resources")
    }

    pub fn resource(&self, name: &str) -> &Value {
        self.resources()
            .get(name)
            .unwrap_or_else(|| panic!("template has no resource {name}"))
    }

    pub fn table_properties(&self) -> &Value {
        let table = self.resource(TABLE_RESOURCE);
        assert_eq!(str_at(table, "Type"), "AWS::DynamoDB::Table");
        &table["Properties"]
    }

    /// Creates `table_name` exactly as the template defines the table (keys, indexes, billing),
    /// then turns TTL on as the template does.
    pub async fn create_table(&self, client: &aws_sdk_dynamodb::Client, table_name: &str) {
        let props = self.table_properties();
        let key_schema = |v: &Value| -> Vec<KeySchemaElement> {
            seq(v)
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(str_at(k, "AttributeName"))
                        .key_type(KeyType::from(str_at(k, "KeyType")))
                        .build()
                        .expect("key schema element")
                })
                .collect()
        };
        let projection = |v: &Value| -> Projection {
            let non_key: Option<Vec<String>> = v.get("NonKeyAttributes").map(|a| {
                seq(a)
                    .iter()
                    .map(|s| s.as_str().expect("attribute name").to_owned())
                    .collect()
            });
            Projection::builder()
                .projection_type(ProjectionType::from(str_at(v, "ProjectionType")))
                .set_non_key_attributes(non_key)
                .build()
        };
        let mut create = client
            .create_table()
            .table_name(table_name)
            .billing_mode(BillingMode::from(str_at(props, "BillingMode")))
            .set_key_schema(Some(key_schema(&props["KeySchema"])));
        for def in seq(&props["AttributeDefinitions"]) {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(str_at(def, "AttributeName"))
                    .attribute_type(ScalarAttributeType::from(str_at(def, "AttributeType")))
                    .build()
                    .expect("attribute definition"),
            );
        }
        if let Some(indexes) = props.get("GlobalSecondaryIndexes") {
            for index in seq(indexes) {
                create = create.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(str_at(index, "IndexName"))
                        .set_key_schema(Some(key_schema(&index["KeySchema"])))
                        .projection(projection(&index["Projection"]))
                        .build()
                        .expect("global secondary index"),
                );
            }
        }
        if let Some(indexes) = props.get("LocalSecondaryIndexes") {
            for index in seq(indexes) {
                create = create.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(str_at(index, "IndexName"))
                        .set_key_schema(Some(key_schema(&index["KeySchema"])))
                        .projection(projection(&index["Projection"]))
                        .build()
                        .expect("local secondary index"),
                );
            }
        }
        create.send().await.unwrap_or_else(|e| {
            panic!(
                "CreateTable {table_name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        });

        let ttl = &props["TimeToLiveSpecification"];
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_at(ttl, "AttributeName"))
                    .enabled(ttl["Enabled"].as_bool().expect("TTL Enabled is a boolean"))
                    .build()
                    .expect("ttl specification"),
            )
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "UpdateTimeToLive {table_name}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            });
    }
}

pub fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("template: expected a string at {key} in {value:?}"))
}

fn seq(value: &Value) -> &Vec<Value> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("template: expected a list, found {value:?}"))
}

/// One `AWS::Serverless::Function` as `sam local` runs it.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary `sam build` builds for it.
    pub binary: String,
    /// Globals, then its own; every value resolved.
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: u64,
    pub memory_mb: u64,
}

/// An `HttpApi` event of a function: one API Gateway route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// The function's logical id.
    pub function: String,
    /// Upper case, or `ANY`.
    pub method: String,
    pub path: String,
    /// The `ApiId` it names (`None`: SAM's implicit API).
    pub api: Option<String>,
    /// The authorizer in front of it: the route's own `Auth.Authorizer`, else the API's
    /// `DefaultAuthorizer`; `None` for `NONE` or no authorizer.
    pub authorizer: Option<String>,
}

/// A Lambda authorizer of an `AWS::Serverless::HttpApi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaAuthorizer {
    pub name: String,
    /// The logical id of the function `FunctionArn` points at.
    pub function: String,
    /// `Identity.Headers`: every one must be present, or API Gateway answers 401 itself.
    pub identity_headers: Vec<String>,
    pub payload_format_version: String,
    pub simple_responses: bool,
    /// `Identity.ReauthorizeEvery`: seconds a result is cached per identity (0: never).
    pub reauthorize_every: u64,
}

impl Template {
    /// Every function with its environment resolved as `sam local` resolves it: Globals, then
    /// its own; `!Ref` of a parameter is its value in `overrides` (`--parameter-overrides`) or
    /// else its default, `!Ref` of the table is `table`, `AWS::NoValue` leaves the variable out.
    pub fn functions(&self, table: &str, overrides: &BTreeMap<String, String>) -> Vec<FunctionDef> {
        let parameters = self.root.get("Parameters").cloned().unwrap_or(Value::Null);
        let conditions = self.root.get("Conditions").cloned().unwrap_or(Value::Null);
        let value_of = |name: &str| -> String {
            if let Some(value) = overrides.get(name) {
                return value.clone();
            }
            match parameters.get(name).and_then(|p| p.get("Default")) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                other => panic!("parameter {name} has no usable default: {other:?}"),
            }
        };
        // `None` is AWS::NoValue: the variable is left out.
        let resolve = |value: &Value| -> Option<String> {
            Some(match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Tagged(tagged) if tagged.tag == "!Ref" => {
                    let name = tagged.value.as_str().expect("!Ref names a string");
                    match name {
                        TABLE_RESOURCE => table.to_owned(),
                        "AWS::NoValue" => return None,
                        parameter => value_of(parameter),
                    }
                }
                Value::Tagged(tagged) if tagged.tag == "!If" => {
                    let [condition, then, otherwise] = tagged
                        .value
                        .as_sequence()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    else {
                        panic!("!If takes three values: {tagged:?}");
                    };
                    let holds = evaluate(
                        &conditions[condition.as_str().expect("condition name")],
                        &value_of,
                    );
                    let chosen = if holds { then } else { otherwise };
                    return resolve_simple(chosen, &value_of);
                }
                other => panic!("cannot resolve environment value {other:?}"),
            })
        };
        let variables = |node: &Value| -> Vec<(String, String)> {
            node.get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().expect("variable name").to_owned(), resolve(v)?))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let global = &self.root["Globals"]["Function"];
        let globals = variables(global);
        let number = |properties: &Value, key: &str, sam_default: u64| -> u64 {
            properties
                .get(key)
                .or_else(|| global.get(key))
                .and_then(Value::as_u64)
                .unwrap_or(sam_default)
        };
        self.resources()
            .iter()
            .filter(|(_, r)| {
                r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
            })
            .map(|(id, resource)| {
                let properties = &resource["Properties"];
                let mut environment: BTreeMap<String, String> = globals.iter().cloned().collect();
                environment.extend(variables(properties));
                FunctionDef {
                    logical_id: id.as_str().expect("logical id").to_owned(),
                    binary: str_at(&resource["Metadata"]["BuildProperties"], "Binary").to_owned(),
                    environment,
                    timeout_seconds: number(properties, "Timeout", 3),
                    memory_mb: number(properties, "MemorySize", 128),
                }
            })
            .collect()
    }

    /// Every `HttpApi` event of every function, with the authorizer in front of it.
    pub fn http_routes(&self) -> Vec<HttpRoute> {
        let mut routes = Vec::new();
        for (id, resource) in self.resources() {
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let Some(events) = resource["Properties"]
                .get("Events")
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let properties = &event["Properties"];
                let api = properties.get("ApiId").map(|v| logical_id_of(v).to_owned());
                let default_authorizer = api.as_deref().and_then(|api| {
                    self.resource(api)["Properties"]["Auth"]
                        .get("DefaultAuthorizer")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                let authorizer = match properties
                    .get("Auth")
                    .and_then(|a| a.get("Authorizer"))
                    .and_then(Value::as_str)
                {
                    Some("NONE") => None,
                    Some(name) => Some(name.to_owned()),
                    None => default_authorizer,
                };
                routes.push(HttpRoute {
                    function: id.as_str().expect("logical id").to_owned(),
                    method: properties
                        .get("Method")
                        .and_then(Value::as_str)
                        .unwrap_or("ANY")
                        .to_ascii_uppercase(),
                    path: properties
                        .get("Path")
                        .and_then(Value::as_str)
                        .unwrap_or("/$default")
                        .to_owned(),
                    api,
                    authorizer,
                });
            }
        }
        routes
    }

    /// The Lambda authorizer `name` of the `AWS::Serverless::HttpApi` `api`.
    pub fn http_api_authorizer(&self, api: &str, name: &str) -> Result<LambdaAuthorizer, String> {
        let authorizer = self.resource(api)["Properties"]["Auth"]["Authorizers"]
            .get(name)
            .ok_or_else(|| format!("{api} has no authorizer {name}"))?;
        let function = authorizer
            .get("FunctionArn")
            .map(logical_id_of)
            .ok_or_else(|| {
                format!("authorizer {name} is not a Lambda authorizer (no FunctionArn)")
            })?
            .to_owned();
        let identity = &authorizer["Identity"];
        Ok(LambdaAuthorizer {
            name: name.to_owned(),
            function,
            identity_headers: identity
                .get("Headers")
                .and_then(Value::as_sequence)
                .map(|h| {
                    h.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            payload_format_version: match authorizer.get("AuthorizerPayloadFormatVersion") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => format!("{n:.1}"),
                _ => "2.0".to_owned(),
            },
            simple_responses: authorizer
                .get("EnableSimpleResponses")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            // SAM's default for HTTP API Lambda authorizers is 300 s.
            reauthorize_every: identity
                .get("ReauthorizeEvery")
                .and_then(Value::as_u64)
                .unwrap_or(300),
        })
    }

    /// Creates the table unless it exists; whether it created it.
    pub async fn ensure_table(
        &self,
        client: &aws_sdk_dynamodb::Client,
        table_name: &str,
    ) -> Result<bool, String> {
        match client.describe_table().table_name(table_name).send().await {
            Ok(_) => Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.create_table(client, table_name).await;
                Ok(true)
            }
            Err(e) => Err(format!(
                "DescribeTable {table_name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )),
        }
    }
}

/// The resource a `!Ref X`, `!GetAtt X.Arn`, `!GetAtt [X, Arn]` or plain `X` names.
fn logical_id_of(value: &Value) -> &str {
    match value {
        Value::String(s) => s,
        Value::Tagged(tagged) => match &tagged.value {
            Value::String(s) => s.split('.').next().unwrap_or(s),
            Value::Sequence(parts) => parts.first().and_then(Value::as_str).unwrap_or_default(),
            _ => "",
        },
        Value::Mapping(m) => m
            .get("Ref")
            .and_then(Value::as_str)
            .or_else(|| {
                m.get("Fn::GetAtt")
                    .and_then(Value::as_sequence)
                    .and_then(|parts| parts.first())
                    .and_then(Value::as_str)
            })
            .unwrap_or_default(),
        _ => "",
    }
}

/// The condition forms the template uses.
fn evaluate(condition: &Value, value_of: &dyn Fn(&str) -> String) -> bool {
    let Value::Tagged(tagged) = condition else {
        panic!("unsupported condition {condition:?}")
    };
    let args = tagged.value.as_sequence().cloned().unwrap_or_default();
    match tagged.tag.to_string().as_str() {
        "!Not" => !evaluate(&args[0], value_of),
        "!Equals" => {
            let side = |v: &Value| resolve_simple(v, value_of).unwrap_or_default();
            side(&args[0]) == side(&args[1])
        }
        other => panic!("unsupported condition function {other}"),
    }
}

fn resolve_simple(value: &Value, value_of: &dyn Fn(&str) -> String) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) if t.tag == "!Ref" && t.value.as_str() == Some("AWS::NoValue") => None,
        Value::Tagged(t) if t.tag == "!Ref" => {
            Some(value_of(t.value.as_str().expect("!Ref names a string")))
        }
        other => panic!("cannot resolve {other:?}"),
    }
}
