//! `GET /tokens` and `GET /tokens/{asset}`: the token settings page, public. Handler:
//! `shared::settings_page::Page`.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let page = shared::settings_page::Page::from_env()?;
    run(service_fn(|request: Request| async {
        Ok::<_, Error>(page.respond(request))
    }))
    .await
}
