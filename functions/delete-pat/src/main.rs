//! `DELETE /api/admin/user/tokens/{id}` (Unleash delete PAT). Handler: `shared::unleash::delete_pat`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::unleash::delete_pat(&app, request).await)
    }))
    .await
}
