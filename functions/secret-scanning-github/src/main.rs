//! `POST /api/v1/secret-scanning/github` (GitHub's signed leak reports). Handler: `shared::leaks::github::report`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    let bus = shared::events::EventBus::from_env(&app.config.event_bus_name).await;
    let keys = shared::leaks::github::GithubKeys::from_env()?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::leaks::github::report(&app, &bus, &keys, request).await)
    }))
    .await
}
