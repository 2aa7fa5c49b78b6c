//! `GET /api/v1/user/apptoken/{token_uuid}` (Quay getAppToken). Handler: `shared::quay::get_app_token`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::quay::get_app_token(&app, request).await)
    }))
    .await
}
