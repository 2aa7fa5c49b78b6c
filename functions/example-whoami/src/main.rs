//! `GET /example/whoami`: an example of a deployer's own route behind the token authorizer.
//! Handler: `shared::example::whoami`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::example::whoami(request).await)
    }))
    .await
}
