//! Limits on the request line and the header section, answered as problem+json.
//!
//! hyper refuses what exceeds its own limits (its header count and read buffer) with an
//! empty-bodied 414/431/400 before any of our code runs. This layer sits below those limits and
//! answers the same statuses with our problem format, for every route (it wraps the fallback
//! too), before the handlers parse anything.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// Longest request target (path and query, or an absolute-form URI) served.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in a request.
pub const MAX_HEADERS: usize = 64;
/// Largest header section: each field counted as `name: value\r\n`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Middleware: `414 uri_too_long` or `431 headers_too_large` past the limits above.
pub async fn enforce(req: Request, next: Next) -> Response {
    if let Err(e) = check(&req) {
        return e.into_response();
    }
    next.run(req).await
}

fn check(req: &Request) -> Result<(), ApiError> {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong);
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge);
    }
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue, StatusCode};

    use super::*;

    fn request(target: &str) -> Request {
        Request::builder().uri(target).body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn a_target_at_the_limit_passes_and_one_byte_more_is_refused() {
        let path = |n: usize| format!("/{}", "a".repeat(n - 1));
        assert!(check(&request(&path(MAX_URI_BYTES))).is_ok());
        let refused = check(&request(&path(MAX_URI_BYTES + 1))).unwrap_err();
        assert_eq!(refused.status(), StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn too_many_headers_or_too_many_header_bytes_are_refused() {
        let mut req = request("/");
        for i in 0..MAX_HEADERS {
            req.headers_mut().insert(HeaderName::try_from(format!("x-h{i}")).unwrap(), HeaderValue::from_static("1"));
        }
        assert!(check(&req).is_ok());
        req.headers_mut().insert("x-one-more", HeaderValue::from_static("1"));
        assert_eq!(check(&req).unwrap_err().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

        let mut req = request("/");
        let value = HeaderValue::try_from("v".repeat(MAX_HEADER_BYTES)).unwrap();
        req.headers_mut().insert("x-big", value);
        assert_eq!(check(&req).unwrap_err().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
