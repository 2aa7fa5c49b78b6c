//! An example of a deployer's own route behind the token authorizer (`GET /example/whoami` in
//! `template.yaml`): API Gateway runs the authorizer first, and the route reads the caller from
//! the context it left (`crate::identity::Caller::from_request`), with no table read of its
//! own. A route of another API reads the same four strings from
//! `requestContext.authorizer.lambda`: `user_id`, `auth` (`pat` or `jwt`), `token_uuid` (PATs)
//! and `scopes` (space-separated).

use crate::identity::{AuthMethod, Caller};
use crate::response::json_response;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// 200 `{user_id, auth, token_uuid, scopes}` for the authorizer's caller. Without one (a
/// direct invoke; API Gateway itself never lets such a request through) 401 in API Gateway's
/// own words.
pub async fn whoami(request: Request) -> Response<Body> {
    match Caller::from_request(&request) {
        Ok(caller) => {
            let (auth, token_uuid) = match caller.method {
                AuthMethod::Pat { token_uuid } => ("pat", Some(token_uuid)),
                AuthMethod::Jwt => ("jwt", None),
            };
            json_response(
                StatusCode::OK,
                &json!({
                    "user_id": caller.user_id,
                    "auth": auth,
                    "token_uuid": token_uuid,
                    "scopes": caller.scopes,
                }),
            )
        }
        Err(_) => json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Unauthorized"}),
        ),
    }
}
