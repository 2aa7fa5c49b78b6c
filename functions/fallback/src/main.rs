//! The `$default` route: 405 with `Allow` for a known path, each dialect's 404 for an unknown
//! one. Handler: `shared::fallback::fallback`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::fallback::fallback(request).await)
    }))
    .await
}
