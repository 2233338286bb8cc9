//! The REST API: one module per resource, merged here with the layers every route shares.

pub mod auth;
pub mod cluster;
pub mod dto;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod public;
pub mod sessions;
pub mod user;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole REST surface, with a body limit of `max_body_bytes`.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(sessions::router())
        .merge(user::router())
        .merge(public::router())
        .merge(cluster::router())
        .merge(crate::ws::router())
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .with_state(state)
}

/// Marks a response that carries tokens as not cacheable (RFC 6749 §5.1).
pub fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
