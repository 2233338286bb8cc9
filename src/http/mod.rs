//! The REST API: one module per resource, merged here with the layers every route shares.

pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod limits;
pub mod openapi;
pub mod operator;
pub mod public;
pub mod revocations;
pub mod sessions;
pub mod timing;
pub mod user;
pub mod views;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use error::ApiError;

/// How the routers are layered.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_body_bytes: usize,
    /// Longest pause inside a request body (tower-http's request-body timeout).
    pub body_timeout: std::time::Duration,
    /// The operator endpoints have a listener of their own: `/metrics` and `/cluster/stats`
    /// leave the public router (the probes stay on both).
    pub ops_apart: bool,
}

/// The whole public surface: the REST API, the WebSocket upgrade and the public endpoints.
pub fn router(state: AppState, options: &Options) -> Router {
    let mut routes = Router::new()
        .merge(sessions::router())
        .merge(user::router())
        .merge(revocations::router())
        .merge(public::router())
        .merge(public::probes())
        .merge(gateway::router());
    if !options.ops_apart {
        routes = routes.merge(operator::router());
    }
    layered(routes, state, options)
}

/// The operator endpoints alone (`OPS_LISTEN`): metrics, cluster stats and the probes.
pub fn ops_router(state: AppState, options: &Options) -> Router {
    layered(Router::new().merge(operator::router()).merge(public::probes()), state, options)
}

/// The layers every route shares: metrics, our error format for unrouted requests, the body
/// limit and timeout, tracing.
fn layered(routes: Router<AppState>, state: AppState, options: &Options) -> Router {
    routes
        .route_layer(axum::middleware::from_fn_with_state(state.metrics.clone(), timing::track))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(options.body_timeout))
        .layer(axum::Extension(extract::BodyDeadline(options.body_timeout)))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .layer(axum::middleware::from_fn(limits::enforce))
        .with_state(state)
}

/// Marks a response that carries tokens as not cacheable (RFC 6749 §5.1).
pub fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
