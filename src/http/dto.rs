//! Request and response bodies of the REST API. Requests reject unknown fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::session::{AuditRecord, Device, Issued, SessionRecord, SessionStatus};

/// A session as the API shows it. Refresh-token hashes never leave the server.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub user_id: String,
    /// Effective status: an active session past its expiry shows as `expired`.
    pub status: SessionStatus,
    pub device: Device,
    /// IP the session was opened from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IP of the latest refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Whether a live WebSocket connection of this session is held by this node.
    pub online: bool,
    /// Only in `GET /session/me`: whether this is the caller's own session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl SessionView {
    /// The view at `now`; `live_seen` is the last activity of a live connection, if one exists.
    pub fn new(s: SessionRecord, now: DateTime<Utc>, live_seen: Option<DateTime<Utc>>, online: bool) -> Self {
        Self {
            id: s.id,
            status: s.effective_status(now),
            user_id: s.user_id,
            device: s.device,
            ip: s.first_ip,
            last_ip: s.last_ip,
            user_agent: s.user_agent,
            metadata: s.metadata,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            absolute_expires_at: s.absolute_expires_at,
            revoked_at: s.revoked_at,
            revoke_reason: s.revoke_reason,
            last_seen_at: live_seen.max(s.last_seen_at),
            online,
            current: None,
        }
    }
}

/// `POST /sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub user_id: String,
    pub device: Device,
    /// The player's IP as seen by the auth-service.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// JSON object, at most 4 KiB serialized.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// `201` of `POST /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSession {
    pub session: SessionView,
    pub token_type: &'static str,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

/// A fresh token pair (`POST /session/refresh`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub session_id: Uuid,
    pub token_type: &'static str,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

impl From<&Issued> for Tokens {
    fn from(i: &Issued) -> Self {
        Self {
            session_id: i.session.id,
            token_type: "Bearer",
            access_token: i.access_token.clone(),
            access_token_expires_at: i.access_token_expires_at,
            refresh_token: i.refresh_token.clone(),
            refresh_token_expires_at: i.refresh_token_expires_at,
        }
    }
}

/// `PUT /sessions/{id}`: only these fields can change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionRequest {
    pub device_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// `POST /sessions/{id}/extend` (body optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// New idle lifetime from now, in seconds [default: the platform's idle timeout]. Never
    /// extends past the absolute expiry; a value ending before the current expiry changes nothing.
    pub seconds: Option<i64>,
}

/// `POST /sessions/{id}/revoke` (body optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Reason code, 1-64 characters of `[a-z0-9_]` [default: `revoked_by_service`].
    pub reason: Option<String>,
}

/// `POST /session/refresh` and `POST /session/validate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `200` of `POST /session/validate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub session: SessionView,
}

/// `200` of `GET /session/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MySessions {
    pub user_id: String,
    pub session_id: Uuid,
    /// The caller's active sessions; the calling one has `current: true`.
    pub sessions: Vec<SessionView>,
}

/// `200` of `DELETE /session/all`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutAll {
    pub revoked: usize,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogoutAllParams {
    /// `current` keeps the caller's own session.
    pub except: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListStatus {
    #[default]
    Active,
    All,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `active` (default) or `all`.
    pub status: Option<ListStatus>,
    /// Page size, 1-100 [default: 50].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Page size, 1-500 [default: 100].
    pub limit: Option<u32>,
    /// `next_before` of the previous page.
    pub before: Option<Uuid>,
}

/// A page of audit records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Uuid>,
}
