//! The service API (`/sessions`), called by the auth-service and admin tools with a service key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::auth::{Peer, ServiceCaller};
use super::dto::{
    AuditPage, AuditParams, CreateSessionRequest, CreatedSession, ExtendRequest, ListParams, ListStatus, RevokeRequest,
    SessionPage, SessionView, UpdateSessionRequest,
};
use super::extract::{Json, OptionalJson, Path, Query};
use crate::http::auth::Scope;
use crate::http::error::ApiError;
use crate::session::store::{SessionUpdate, StatusFilter};
use crate::session::{reasons, NewSession};
use crate::state::AppState;

/// The 404 of the operations on one session.
const NOT_FOUND: &str = "`session_not_found`: no such session";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create))
        .route("/sessions/{id}", get(read).put(update).delete(delete))
        .route("/sessions/{id}/extend", post(extend))
        .route("/sessions/{id}/revoke", post(revoke))
        .route("/sessions/{id}/audit", get(audit))
        .route("/sessions/user/{user_id}", get(list))
        .route("/sessions/user/{user_id}/audit", get(user_audit))
}

/// Open a session after a login and issue its first token pair.
#[utoipa::path(post, path = "/sessions", tag = "service", security(("service_key" = ["sessions:write"])),
    request_body = CreateSessionRequest,
    responses((status = 201, description = "The session and its first token pair", body = CreatedSession)))]
pub async fn create(
    State(state): State<AppState>,
    caller: ServiceCaller,
    peer: Peer,
    Json(body): Json<CreateSessionRequest>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let new = NewSession {
        user_id: body.user_id,
        device: body.device.into(),
        ip: body.ip,
        user_agent: body.user_agent,
        metadata: body.metadata,
    };
    let issued = state.sessions.create(new, &caller.context(&peer)).await?;
    let body = CreatedSession {
        token_type: "Bearer",
        access_token: issued.access_token,
        access_token_expires_at: issued.access_token_expires_at,
        refresh_token: issued.refresh_token,
        refresh_token_expires_at: issued.refresh_token_expires_at,
        session: state.new_view(issued.session),
    };
    Ok(super::no_store((StatusCode::CREATED, Json(body))))
}

/// One session, in any state.
#[utoipa::path(get, path = "/sessions/{id}", tag = "service", security(("service_key" = ["sessions:read"])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "The session", body = SessionView), (status = 404, description = NOT_FOUND)))]
pub async fn read(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<SessionView>, ApiError> {
    caller.require(Scope::Read)?;
    let session = state.sessions.stored(id).await?;
    Ok(Json(state.view(session).await))
}

/// Change the device name and/or metadata; nothing else is mutable.
#[utoipa::path(put, path = "/sessions/{id}", tag = "service", security(("service_key" = ["sessions:write"])),
    params(("id" = Uuid, Path, description = "Session id")), request_body = UpdateSessionRequest,
    responses((status = 200, description = "The updated session", body = SessionView), (status = 404, description = NOT_FOUND)))]
pub async fn update(
    State(state): State<AppState>,
    caller: ServiceCaller,
    peer: Peer,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateSessionRequest>,
) -> Result<Json<SessionView>, ApiError> {
    caller.require(Scope::Write)?;
    let update = SessionUpdate { device_name: body.device_name, metadata: body.metadata };
    let session = state.sessions.update(id, update, &caller.context(&peer)).await?;
    Ok(Json(state.view(session).await))
}

/// Revoke (if active) and remove a session; its audit trail stays.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "service", security(("service_key" = ["sessions:write"])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = NOT_FOUND)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: ServiceCaller,
    peer: Peer,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Write)?;
    state.sessions.delete(id, &caller.context(&peer)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Push the idle expiry forward, never past the absolute expiry.
#[utoipa::path(post, path = "/sessions/{id}/extend", tag = "service", security(("service_key" = ["sessions:write"])),
    params(("id" = Uuid, Path, description = "Session id")), request_body(content = Option<ExtendRequest>),
    responses((status = 200, description = "The extended session", body = SessionView),
        (status = 401, description = "`unauthorized`: no valid service key; `session_revoked`, `session_expired`: \
            the session is no longer active"),
        (status = 404, description = NOT_FOUND)))]
pub async fn extend(
    State(state): State<AppState>,
    caller: ServiceCaller,
    peer: Peer,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ExtendRequest>,
) -> Result<Json<SessionView>, ApiError> {
    caller.require(Scope::Write)?;
    let by = match body.seconds {
        None => None,
        Some(s) if (1..=366 * 86_400).contains(&s) => Some(Duration::seconds(s)),
        Some(_) => return Err(ApiError::InvalidField("seconds: must be between 1 and 31622400".into())),
    };
    let session = state.sessions.extend(id, by, &caller.context(&peer)).await?;
    Ok(Json(state.view(session).await))
}

/// Revoke a session. Revoking an already revoked session answers the same.
#[utoipa::path(post, path = "/sessions/{id}/revoke", tag = "service", security(("service_key" = ["sessions:write"])),
    params(("id" = Uuid, Path, description = "Session id")), request_body(content = Option<RevokeRequest>),
    responses((status = 200, description = "The session, revoked", body = SessionView), (status = 404, description = NOT_FOUND)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: ServiceCaller,
    peer: Peer,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<RevokeRequest>,
) -> Result<Json<SessionView>, ApiError> {
    caller.require(Scope::Write)?;
    let reason = body.reason.unwrap_or_else(|| reasons::REVOKED_BY_SERVICE.to_owned());
    let valid = !reason.is_empty()
        && reason.len() <= 64
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(ApiError::InvalidField("reason: must be 1-64 characters of a-z, 0-9 or _".into()));
    }
    let session = state.sessions.revoke(id, &reason, &caller.context(&peer)).await?;
    Ok(Json(state.view(session).await))
}

/// A user's sessions, newest first, paginated.
#[utoipa::path(get, path = "/sessions/user/{user_id}", tag = "service", security(("service_key" = ["sessions:read"])),
    params(("user_id" = String, Path, description = "1-128 printable ASCII characters", min_length = 1,
        max_length = 128, pattern = "^[!-~]+$"), ListParams),
    responses((status = 200, description = "A page of sessions", body = SessionPage)))]
pub async fn list(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(user_id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<SessionPage>, ApiError> {
    caller.require(Scope::Read)?;
    let limit = page_limit(params.limit, 50, 100)?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = match params.status.unwrap_or_default() {
        ListStatus::Active => StatusFilter::Active,
        ListStatus::All => StatusFilter::All,
    };
    let sessions = state.sessions.list_for_user(&user_id, filter, limit, after).await?;
    let next_cursor = (sessions.len() == limit as usize)
        .then(|| sessions.last().map(|s| encode_cursor(s.created_at, s.id)))
        .flatten();
    let sessions = state.views(sessions).await;
    Ok(Json(SessionPage { sessions, next_cursor }))
}

/// The audit trail of one session (kept after the session is deleted), newest first.
#[utoipa::path(get, path = "/sessions/{id}/audit", tag = "service", security(("service_key" = ["sessions:read"])),
    params(("id" = Uuid, Path, description = "Session id"), AuditParams),
    responses((status = 200, description = "A page of audit records", body = AuditPage)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(id): Path<Uuid>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Scope::Read)?;
    let limit = page_limit(params.limit, 100, 500)?;
    let entries = state.sessions.audit_of_session(id, limit, params.before).await?;
    Ok(Json(audit_page(entries, limit)))
}

/// The audit trail of one user, newest first.
#[utoipa::path(get, path = "/sessions/user/{user_id}/audit", tag = "service",
    security(("service_key" = ["sessions:read"])),
    params(("user_id" = String, Path, description = "1-128 printable ASCII characters", min_length = 1,
        max_length = 128, pattern = "^[!-~]+$"), AuditParams), responses((status = 200, description = "A page of audit records", body = AuditPage)))]
pub async fn user_audit(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(user_id): Path<String>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Scope::Read)?;
    let limit = page_limit(params.limit, 100, 500)?;
    let entries = state.sessions.audit_of_user(&user_id, limit, params.before).await?;
    Ok(Json(audit_page(entries, limit)))
}

fn audit_page(entries: Vec<crate::session::AuditRecord>, limit: u32) -> AuditPage {
    let next_before = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    AuditPage { entries, next_before }
}

fn page_limit(requested: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::InvalidField(format!("limit: must be between 1 and {max}"))),
    }
}

fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", created_at.timestamp_micros(), id))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::InvalidField("cursor: not a cursor this API returned".into());
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    // Only times both stores can compare against: Postgres refuses dates before 4713 BC that
    // chrono and SQLite would take (a forged cursor must not answer 500 on one store only).
    let at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).filter(in_store_range).ok_or_else(bad)?;
    Ok((at, Uuid::try_parse(id).map_err(|_| bad())?))
}

/// Years 1 to 9999: the range every store keeps the same way.
fn in_store_range(at: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x.y")).is_err());
        let ancient = DateTime::from_timestamp(-100_000 * 31_556_952, 0).unwrap();
        assert!(decode_cursor(&encode_cursor(ancient, id)).is_err(), "a time no store can compare");
    }
}
