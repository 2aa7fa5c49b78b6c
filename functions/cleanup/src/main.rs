//! The scheduled cleanup (EventBridge schedule). Handler: `shared::cleanup::cleanup`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|event: LambdaEvent<Value>| async {
        shared::cleanup::cleanup(&app, event)
            .await
            .map_err(Error::from)
    }))
    .await
}
