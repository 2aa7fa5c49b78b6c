//! `GET /api/openapi.json`: the API document, public. Handler: `shared::openapi::openapi`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::openapi::openapi(request).await)
    }))
    .await
}
