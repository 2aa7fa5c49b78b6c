//! Building responses, the same way for every route: JSON bodies, empty bodies, and the headers
//! every answer carries. Secrets appear in create responses, so nothing is cacheable
//! (`Cache-Control: no-store`) and nothing is content-sniffed (`X-Content-Type-Options: nosniff`).

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    // Serializing our own views and error bodies cannot fail (string keys, no custom
    // serializers that refuse); should it ever, the client gets a plain 500, not a panic.
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "response body did not serialize");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"internal error"}"#.to_owned(),
            )
        }
    };
    let mut response = empty_response(status);
    *response.body_mut() = Body::Text(text);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An answer without a body, with the headers every answer carries.
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The response header that tells a PAT caller when its token expires (as GitHub's
/// `GitHub-Authentication-Token-Expiration`), in RFC 2822 (`crate::dates::rfc2822_header`);
/// absent when the expiry has no RFC 2822 form (a year past 9999).
pub const TOKEN_EXPIRATION: &str = "token-expiration";

tokio::task_local! {
    /// The expiry of the token that authenticated the request being answered, if it expires.
    static CALLER_TOKEN_EXPIRES: std::cell::Cell<Option<chrono::DateTime<chrono::Utc>>>;
}

/// Records the expiry of the PAT that authenticated this request (`crate::identity` calls it),
/// for [`answer`]. Outside one, it does nothing.
pub fn note_token_expiry(expires: Option<chrono::DateTime<chrono::Utc>>) {
    let _ = CALLER_TOKEN_EXPIRES.try_with(|cell| cell.set(expires));
}

/// A route's answer: `work` run within the invocation's deadline (`http::within_deadline`), an
/// error turned into the dialect's body by `error`, and `Token-Expiration` added when a PAT
/// that expires authenticated the request.
pub async fn answer(
    request: &lambda_http::Request,
    work: impl std::future::Future<Output = Result<Response<Body>, crate::error::ApiError>>,
    error: impl FnOnce(&crate::error::ApiError) -> Response<Body>,
) -> Response<Body> {
    // Boxed: the handlers' futures nest deep enough to overflow rustc's layout query depth.
    let work = Box::pin(crate::http::within_deadline(request, work));
    let (mut response, expires) = CALLER_TOKEN_EXPIRES
        .scope(std::cell::Cell::new(None), async {
            let response = work.await.unwrap_or_else(|e| error(&e));
            (response, CALLER_TOKEN_EXPIRES.with(std::cell::Cell::get))
        })
        .await;
    // Not chrono's `to_rfc2822`: it panics for a year past 9999 (a corrupt item's expiry), which
    // aborts the process; such a date has no RFC 2822 form and leaves the header out.
    let value = expires
        .and_then(crate::dates::rfc2822_header)
        .and_then(|text| HeaderValue::from_str(&text).ok());
    if let Some(value) = value {
        response.headers_mut().insert(TOKEN_EXPIRATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, TimeZone, Utc};

    /// What `answer` adds for a request authenticated by a PAT expiring at `expires`.
    async fn answered_for(expires: DateTime<Utc>) -> Response<Body> {
        let request = lambda_http::Request::default();
        let work = async move {
            note_token_expiry(Some(expires));
            Ok(empty_response(StatusCode::OK))
        };
        answer(&request, work, |_| {
            empty_response(StatusCode::INTERNAL_SERVER_ERROR)
        })
        .await
    }

    fn header(response: &Response<Body>) -> Option<&str> {
        response
            .headers()
            .get(TOKEN_EXPIRATION)
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn an_expiry_in_range_is_answered_in_rfc_2822() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 16, 41, 28).unwrap();
        let response = answered_for(at).await;
        assert_eq!(header(&response), Some("Thu, 03 Dec 2026 16:41:28 +0000"));
        let parsed = DateTime::parse_from_rfc2822(header(&response).unwrap()).unwrap();
        assert_eq!(parsed, at);
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        let response = answered_for(last).await;
        assert_eq!(header(&response), Some("Fri, 31 Dec 9999 23:59:59 +0000"));
    }

    /// chrono's `to_rfc2822` panicked here (a process abort in release builds).
    #[tokio::test]
    async fn an_expiry_past_year_9999_answers_without_the_header() {
        let past = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + Duration::seconds(1);
        for expires in [past, DateTime::<Utc>::MAX_UTC] {
            let response = answered_for(expires).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response), None, "{expires:?}");
        }
    }
}
