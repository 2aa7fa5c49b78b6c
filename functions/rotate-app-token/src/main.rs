//! `POST /api/v1/user/apptoken/{token_uuid}/rotate` (Quay-dialect rotation). Handler: `shared::rotation::rotate_app_token`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::rotation::rotate_app_token(&app, request).await)
    }))
    .await
}
