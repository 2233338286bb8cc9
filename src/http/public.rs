//! Unauthenticated endpoints: the JWKS, health, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use utoipa::OpenApi;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The JWKS and the OpenAPI document.
pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks)).route("/openapi.json", get(openapi))
}

/// Health and readiness: on the public address, and on the operator address when there is one.
pub fn probes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// Public keys verifying access tokens: the current one and previous ones still accepted.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "public",
    responses((status = 200, description = "A JSON Web Key Set (RFC 7517)", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.access.jwks().clone()).into_response();
    // Verifiers may cache briefly; a rotation publishes the new key before signing with it.
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, description = "Up", body = Object)))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The node can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "public",
    responses((status = 200, description = "Ready", body = Object)))]
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    state.sessions.ping().await?;
    Ok((StatusCode::OK, axum::Json(json!({ "status": "ready", "store": state.sessions.backend() }))))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "public",
    responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(super::openapi::ApiDoc::openapi())
}
