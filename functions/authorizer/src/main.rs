//! The Lambda authorizer: HTTP API, payload 2.0, simple responses.
//! Handler: `shared::authorizer::authorize`.

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(
        |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async {
            shared::authorizer::authorize(&app, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
