//! The user API (`/session`), called by the gateway on behalf of a player with the player's own
//! tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use uuid::Uuid;

use super::auth::{Peer, Player};
use super::dto::{LogoutAll, LogoutAllParams, MySessions, RefreshRequest, SessionView, Tokens, Validation};
use super::extract::{Json, Path, Query};
use crate::http::error::ApiError;
use crate::session::store::StatusFilter;
use crate::session::Actor;
use crate::state::AppState;

/// Most sessions `GET /session/me` lists (the per-user cap keeps real users far below).
const ME_LIMIT: u32 = 100;

/// The 401 of the refresh-token calls.
const REFUSED: &str = "`invalid_token`: not a refresh token of a session; `session_revoked`, `session_expired`: \
    the session is no longer active (a reused refresh token revokes it)";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session/refresh", post(refresh))
        .route("/session/validate", post(validate))
        .route("/session/me", get(me))
        .route("/session/all", delete(logout_all))
        .route("/session/{id}", delete(logout))
}

/// Rotate a refresh token: a new access token and the successor refresh token.
#[utoipa::path(post, path = "/session/refresh", tag = "user", request_body = RefreshRequest,
    responses((status = 200, description = "The new token pair", body = Tokens), (status = 401, description = REFUSED)))]
pub async fn refresh(
    State(state): State<AppState>,
    peer: Peer,
    Json(body): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let issued = state.sessions.refresh(&body.refresh_token, &peer.context(Actor::System)).await?;
    Ok(super::no_store(Json(Tokens::from(&issued))))
}

/// Check a refresh token without rotating it.
#[utoipa::path(post, path = "/session/validate", tag = "user", request_body = RefreshRequest,
    responses((status = 200, description = "The token is current", body = Validation), (status = 401, description = REFUSED)))]
pub async fn validate(
    State(state): State<AppState>,
    peer: Peer,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<Validation>, ApiError> {
    let session = state.sessions.validate_refresh(&body.refresh_token, &peer.context(Actor::System)).await?;
    Ok(Json(Validation { valid: true, session: state.view(session).await }))
}

/// The caller's active sessions, the current one marked.
#[utoipa::path(get, path = "/session/me", tag = "user", security(("access_token" = [])),
    responses((status = 200, description = "The caller's sessions", body = MySessions)))]
pub async fn me(State(state): State<AppState>, player: Player) -> Result<Json<MySessions>, ApiError> {
    let sessions = state.sessions.list_for_user(&player.claims.sub, StatusFilter::Active, ME_LIMIT, None).await?;
    let sessions = state
        .views(sessions)
        .await
        .into_iter()
        .map(|view| SessionView { current: Some(view.id == player.claims.sid), ..view })
        .collect();
    Ok(Json(MySessions { user_id: player.claims.sub, session_id: player.claims.sid, sessions }))
}

/// Log out one of the caller's own sessions (another user's id answers 404).
#[utoipa::path(delete, path = "/session/{id}", tag = "user", security(("access_token" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Logged out"),
        (status = 404, description = "`session_not_found`: no such session of the caller's")))]
pub async fn logout(
    State(state): State<AppState>,
    player: Player,
    peer: Peer,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.sessions.logout(&player.claims, id, &player.context(&peer)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out all of the caller's sessions; `?except=current` keeps the calling one.
#[utoipa::path(delete, path = "/session/all", tag = "user", security(("access_token" = [])), params(LogoutAllParams),
    responses((status = 200, description = "How many sessions were logged out", body = LogoutAll)))]
pub async fn logout_all(
    State(state): State<AppState>,
    player: Player,
    peer: Peer,
    Query(params): Query<LogoutAllParams>,
) -> Result<Json<LogoutAll>, ApiError> {
    let except_current = match params.except.as_deref() {
        None => false,
        Some("current") => true,
        Some(_) => return Err(ApiError::InvalidField("except: the only accepted value is `current`".into())),
    };
    let revoked = state.sessions.logout_all(&player.claims, except_current, &player.context(&peer)).await?;
    Ok(Json(LogoutAll { revoked: revoked.len() }))
}
