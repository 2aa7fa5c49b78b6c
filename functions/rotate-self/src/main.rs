//! `POST /api/v1/user/apptoken/self/rotate` (a token rotating itself). Handler: `shared::rotation::rotate_self`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::rotation::rotate_self(&app, request).await)
    }))
    .await
}
