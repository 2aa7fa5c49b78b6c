//! `POST /api/v1/credentials/revoke` (anyone revokes a leaked token by value). Handler: `shared::leaks::revoke_credentials`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    let bus = shared::events::EventBus::from_env(&app.config.event_bus_name).await;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::leaks::revoke_credentials(&app, &bus, request).await)
    }))
    .await
}
