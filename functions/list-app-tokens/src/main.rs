//! `GET /api/v1/user/apptoken[?expiring=true|false]` (Quay listAppTokens). Handler: `shared::quay::list_app_tokens`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::quay::list_app_tokens(&app, request).await)
    }))
    .await
}
