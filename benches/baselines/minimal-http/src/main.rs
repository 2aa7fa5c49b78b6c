//! Benchmark baseline (`./scripts/bench`, warm invocation CPU): the least a `lambda_http`
//! function does. No configuration, no logging, no client: every invocation answers the same
//! 200 JSON, so what it costs is the runtime's own work (the Runtime API's long poll, the event
//! parsed into a request, the answer serialized and posted). Not in template.yaml.

use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|_request: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"ok":true}"#))
            .map_err(Error::from)
    }))
    .await
}
