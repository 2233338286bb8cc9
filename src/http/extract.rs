//! Wrappers around axum's extractors whose rejections use our problem format.

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// JSON body; unknown fields, wrong types and oversized bodies answer problem+json.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a malformed id answers `invalid_id`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query string; unknown or malformed parameters answer `bad_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// An optional JSON body: empty means `T::default()`, anything else must parse as `T`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let has_body = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body {
            let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| ApiError::PayloadTooLarge)?;
            return if bytes.is_empty() { Ok(Self(T::default())) } else { Err(ApiError::UnsupportedMediaType) };
        }
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
