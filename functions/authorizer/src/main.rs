//! The Lambda authorizer (API.md §3.1): HTTP API, payload 2.0, simple responses.
//! Handler: `shared::authorizer::authorize`.

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let authorizer = shared::authorizer::Authorizer::from_env().await?;
    run(service_fn(
        |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async {
            Ok::<_, Error>(shared::authorizer::authorize(&authorizer, event.payload).await)
        },
    ))
    .await
}
