//! Benchmark baseline (`./scripts/bench`, warm invocation CPU): a `lambda_http` function doing
//! one strongly consistent aws-sdk-dynamodb GetItem per invocation (the read every route and
//! the authorizer make), with the SDK's defaults, then a fixed 200 JSON. No logging. Not in
//! template.yaml.
//!
//! `TABLE_NAME` is the table; `GET_ITEM_PK` and `GET_ITEM_SK` the item's key (the bench points
//! them at a seeded token item, the one `get-app-token`'s event reads).

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let pk = std::env::var("GET_ITEM_PK").unwrap_or_else(|_| "BASELINE".to_owned());
    let sk = std::env::var("GET_ITEM_SK").unwrap_or_else(|_| "BASELINE".to_owned());
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    run(service_fn(|_request: Request| async {
        let answer = client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.clone()))
            .consistent_read(true)
            .send()
            .await?;
        let body = if answer.item().is_some() {
            r#"{"found":true}"#
        } else {
            r#"{"found":false}"#
        };
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .map_err(Error::from)
    }))
    .await
}
