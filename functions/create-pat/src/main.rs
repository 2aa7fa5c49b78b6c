//! `POST /api/admin/user/tokens` (Unleash create PAT). Handler: `shared::unleash::create_pat`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::unleash::create_pat(&app, request).await)
    }))
    .await
}
