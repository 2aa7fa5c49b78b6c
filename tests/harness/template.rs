//! Reads `template.yaml`: the table definition tests and the local run create, and the
//! functions, routes and environment the SAM parity test checks.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml::Value;
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
