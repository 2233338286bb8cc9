//! The session domain: what a session is, how long it lives, how its refresh token rotates, and the
//! audit and event records every change leaves behind. Nothing here knows about HTTP, SQL or Redis.

pub mod audit;
pub mod cache;
pub mod error;
pub mod events;
pub mod outcomes;
pub mod policy;
pub mod refresh;
pub mod refusals;
pub mod service;
pub mod store;
pub mod trail;
pub mod validate;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use audit::{Actor, AuditRecord};
pub use error::SessionError;
pub use events::OutboxEvent;
pub use policy::{Lifetimes, Policy};
pub use service::{Issued, NewSession, Ports, RequestContext, SessionService};
pub use store::{Store, StoreError};

/// Told about every revocation after it has been committed, whatever its path (service revoke or
/// delete, logout, logout-all, refresh-token reuse, expiry, the per-user cap), so that the node
/// holding the session's live connection can close it, wherever it is.
#[async_trait::async_trait]
pub trait RevocationListener: Send + Sync + 'static {
    async fn revoked(&self, sessions: &[SessionRecord], reason: &str);
}

/// Lifecycle state of a session as stored. `expired` is also *derived*: an `active` row whose
/// `expires_at` has passed behaves as expired everywhere before the sweep marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Revoked,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// The device a session was opened from, as reported by the client through the auth-service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Stable id the client generated for this install (1-128 printable ASCII characters).
    pub id: String,
    /// Platform name, e.g. `ios`, `android`, `windows`, `ps5` (1-32 characters `[a-z0-9_-]`).
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A session as the store keeps it, including the refresh-token lineage (hashes only). Serde is
/// for the session cache only; the API renders its own view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: String,
    pub status: SessionStatus,
    pub device: Device,
    pub first_ip: Option<String>,
    pub last_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Free-form JSON object supplied by the auth-service.
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Last time the session was used to obtain tokens (creation, rotation, extend).
    pub last_used_at: DateTime<Utc>,
    /// min(last use + idle timeout, absolute expiry); moved by rotation and extend.
    pub expires_at: DateTime<Utc>,
    /// Fixed at creation; nothing moves it.
    pub absolute_expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Generation of the current refresh token (0 at creation, +1 per rotation).
    pub refresh_generation: i64,
    /// Hash of the current refresh token's secret.
    pub refresh_hash: Vec<u8>,
    /// Hash of the previous generation's secret, kept for the grace window and reuse detection.
    pub prev_refresh_hash: Option<Vec<u8>>,
    /// When the current generation was issued: the grace window for the previous one starts here.
    pub rotated_at: Option<DateTime<Utc>>,
}

impl SessionRecord {
    /// Status as callers must see it at `now`: an active row past its expiry is expired.
    pub fn effective_status(&self, now: DateTime<Utc>) -> SessionStatus {
        match self.status {
            SessionStatus::Active if now >= self.expires_at => SessionStatus::Expired,
            s => s,
        }
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.effective_status(now) == SessionStatus::Active
    }
}

/// Why a session was revoked. Stable strings: they appear in the API, audit and events.
pub mod reasons {
    pub const REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
    pub const SESSION_LIMIT: &str = "session_limit";
    pub const LOGOUT: &str = "logout";
    pub const LOGOUT_ALL: &str = "logout_all";
    pub const DELETED: &str = "deleted";
    pub const REVOKED_BY_SERVICE: &str = "revoked_by_service";
    pub const EXPIRED: &str = "expired";
    /// The user was deleted (a `user.deleted` event): every session ends and its personal data
    /// is erased.
    pub const USER_DELETED: &str = "user_deleted";
}
