//! `GET /api/v1/user/logs` (Quay listUserLogs: the caller's audit log). Handler: `shared::logs::list_user_logs`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env().await?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(shared::logs::list_user_logs(&app, request).await)
    }))
    .await
}
