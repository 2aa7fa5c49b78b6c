//! Benchmark baseline (`./scripts/bench`, warm invocation CPU): a `lambda_http` function making
//! the DynamoDB calls of `BASELINE_CALLS` per invocation with the SDK's defaults, then a fixed
//! 200 JSON. No logging. Not in template.yaml.
//!
//! `BASELINE_CALLS`: a comma-separated list of `get` (one strongly consistent GetItem, the read
//! every route and the authorizer make to authenticate) and `query` (one strongly consistent
//! Query of a partition, as a list route makes); default `get`. `TABLE_NAME` is the table;
//! `GET_ITEM_PK` and `GET_ITEM_SK` the item's key, the partition queried too, with `sk`
//! beginning with `QUERY_SK_PREFIX` (the bench points them at a seeded token item of a user
//! with 21 tokens, the one `get-app-token`'s event reads). `BASELINE_STALLED_STREAM=off`
//! disables the SDK's stalled-stream protection.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (pk, sk) = (
        var("GET_ITEM_PK", "BASELINE"),
        var("GET_ITEM_SK", "BASELINE"),
    );
    let prefix = var("QUERY_SK_PREFIX", "");
    let calls: Vec<bool> = var("BASELINE_CALLS", "get")
        .split(',')
        .map(|call| match call.trim() {
            "get" => Ok(false),
            "query" => Ok(true),
            other => Err(format!(
                "BASELINE_CALLS: {other:?} is neither get nor query"
            )),
        })
        .collect::<Result<_, _>>()?;
    // `BASELINE_STALLED_STREAM=off`: the SDK's stalled-stream protection disabled (the bench
    // compares the SDK's configurations on this function).
    let mut loader = aws_config::from_env();
    if var("BASELINE_STALLED_STREAM", "on") == "off" {
        loader = loader.stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        );
    }
    let config = loader.load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    run(service_fn(|_request: Request| async {
        let mut found = 0;
        for &query in &calls {
            found += if query {
                let answer = client
                    .query()
                    .table_name(&table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
                    .consistent_read(true)
                    .send()
                    .await?;
                answer.items().len()
            } else {
                let answer = client
                    .get_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S(pk.clone()))
                    .key("sk", AttributeValue::S(sk.clone()))
                    .consistent_read(true)
                    .send()
                    .await?;
                usize::from(answer.item().is_some())
            };
        }
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(format!(r#"{{"found":{found}}}"#)))
            .map_err(Error::from)
    }))
    .await
}
