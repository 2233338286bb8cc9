//! `GET /ws`: the HTTP side of the real-time gateway. Checks the upgrade request, refuses it in
//! our problem format (a malformed upgrade, a draining node), and hands the accepted upgrade to
//! [`crate::ws::accept`].

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::{bearer, Peer};
use super::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// `GET /ws`: upgrades to a WebSocket speaking `session.v1.msgpack` or `session.v1.json`.
async fn upgrade(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    peer: Peer,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return ApiError::BadRequest(rejection.body_text()).into_response(),
    };
    if state.gateway.shutdown.is_cancelled() {
        return ApiError::Draining.into_response();
    }
    let bearer = bearer(&headers).map(str::to_owned);
    crate::ws::accept(state.gateway.clone(), upgrade, bearer, peer.ip)
}
