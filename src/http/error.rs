//! The one API error type. Every failure becomes an RFC 9457 `application/problem+json` body with
//! a stable `code` (listed in docs/errors.md). Internal causes are logged here, once, and never
//! returned to the caller.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::session::store::StoreError;
use crate::session::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Body or query that does not parse, has unknown fields or wrong types.
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed request with a field that breaks a rule.
    #[error("{0}")]
    InvalidField(String),
    #[error("malformed id")]
    InvalidId,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body did not arrive within the request-body timeout.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The request target is longer than the server reads (see `http::limits`).
    #[error("request target too long")]
    UriTooLong,
    /// Too many header fields, or a header section larger than the server reads.
    #[error("request header fields too large")]
    HeadersTooLarge,
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// Missing or unknown service key.
    #[error("missing or invalid service key")]
    Unauthorized,
    #[error("missing or invalid token")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the session has been revoked")]
    SessionRevoked,
    #[error("the session has expired")]
    SessionExpired,
    #[error("this key lacks the scope {0}")]
    InsufficientScope(&'static str),
    #[error("no such session")]
    NotFound,
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the store is unavailable")]
    Unavailable,
    /// The node is shutting down and takes no new WebSocket connections.
    #[error("this node is draining; connect to another")]
    Draining,
    #[error("internal error")]
    Internal,
}

/// RFC 9457 problem details, plus our stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidField(_) | Self::InvalidId => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::SessionRevoked
            | Self::SessionExpired => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable | Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::InvalidField(_) => "invalid_field",
            Self::InvalidId => "invalid_id",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unauthorized => "unauthorized",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::SessionRevoked => "session_revoked",
            Self::SessionExpired => "session_expired",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound => "session_not_found",
            Self::NoRoute => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable => "store_unavailable",
            Self::Draining => "draining",
            Self::Internal => "internal_error",
        }
    }

    /// The same short text for every instance of a code; what varies goes to `detail`.
    fn title(&self) -> String {
        match self {
            Self::BadRequest(_) => "malformed request".into(),
            Self::InvalidField(_) => "a field breaks a rule".into(),
            Self::InsufficientScope(_) => "insufficient scope".into(),
            _ => self.to_string(),
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::BadRequest(d) | Self::InvalidField(d) => Some(d.clone()),
            Self::InsufficientScope(_) => Some(self.to_string()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problem = Problem {
            kind: format!("urn:session-service:problem:{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            code: self.code(),
            detail: self.detail(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Invalid(i) => Self::InvalidField(i.to_string()),
            SessionError::NotFound => Self::NotFound,
            SessionError::InvalidToken => Self::InvalidToken,
            SessionError::TokenExpired => Self::TokenExpired,
            SessionError::Revoked => Self::SessionRevoked,
            SessionError::Expired => Self::SessionExpired,
            SessionError::Store(e) => e.into(),
        }
    }
}

/// A store failure is logged here, once, with its whole `source()` chain; the caller learns only
/// that the store is unavailable or that something failed inside.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let error = &e as &dyn std::error::Error;
        if let StoreError::Unavailable(_) = e {
            tracing::warn!(error, "store unavailable");
            Self::Unavailable
        } else {
            tracing::error!(error, "store error");
            Self::Internal
        }
    }
}

/// A body that could not be read: too large, too slow (tower-http's request-body timeout), or
/// broken off by the client.
impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&r);
        while let Some(e) = cause {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return Self::RequestTimeout;
            }
            cause = e.source();
        }
        Self::BadRequest("the request body could not be read".into())
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::InvalidId
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        let reason = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
        Self::BadRequest(format!("query string: {}", plain_words(reason)))
    }
}

/// Rewrites serde's names of Rust primitive types (`expected u32`) into words a caller of a JSON
/// API reads; the names of our own types never reach a message (every request type sets
/// `#[serde(expecting)]`).
pub fn plain_words(message: &str) -> String {
    const INTEGERS: [&str; 12] =
        ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];
    let mut out = message.to_owned();
    for int in INTEGERS {
        out = out.replace(&format!("expected {int}"), "expected an integer");
    }
    out.replace("expected f64", "expected a number").replace("expected f32", "expected a number")
}
