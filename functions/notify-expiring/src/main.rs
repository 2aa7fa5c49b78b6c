//! The daily expiry notifications (EventBridge schedule). Handler: `shared::notify::notify_expiring`.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    let bus = shared::events::EventBus::from_env(&app.config.event_bus_name).await;
    run(service_fn(|event: LambdaEvent<Value>| async {
        let report = shared::notify::notify_expiring(&app, &bus, event).await;
        report.map_err(Error::from)
    }))
    .await
}
