//! Wire types of the REST API, as JSON bodies.
//!
//! Responses are read leniently: unknown fields are ignored and optional fields may be absent, so
//! a newer server keeps working with an older client. Requests carry only what the caller set
//! (absent options are not sent), because the server rejects unknown fields.
//!
//! Types holding tokens print them redacted in `Debug`, so logging a response leaks nothing.
//!
//! The server renders its answers from types of its own (they carry its OpenAPI schema and its
//! stricter request rules); its test suite round-trips every one of them through these types, so
//! the two cannot drift apart.

mod service;
pub mod ws;

pub use service::{
    Actor, ActorKind, AuditEntry, AuditPage, ClusterStats, NodeStats, Revocation, RevocationPage, SessionCounts,
    SessionPage,
};

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A session's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Usable: tokens can be refreshed.
    Active,
    /// Ended by a logout, a service call or a security rule; see `revoke_reason`.
    Revoked,
    /// Ran past its idle or absolute lifetime.
    Expired,
    /// A state this SDK version does not know yet.
    #[serde(other)]
    Unknown,
}

/// The device a session was opened from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Stable id the client generated for this install (1-128 printable ASCII characters).
    pub id: String,
    /// Platform name: `ios`, `android`, `windows`, `ps5`... (1-32 characters `[a-z0-9_-]`).
    pub platform: String,
    /// User-visible device name, e.g. "Sam's phone".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Version of the game client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Client-computed device fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Device {
    /// A device with only the required fields.
    pub fn new(id: impl Into<String>, platform: impl Into<String>) -> Self {
        Self { id: id.into(), platform: platform.into(), name: None, model: None, app_version: None, fingerprint: None }
    }
}

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Session id.
    pub id: Uuid,
    /// The user the session belongs to.
    pub user_id: String,
    /// Lifecycle state.
    pub status: SessionStatus,
    /// The device it was opened from.
    pub device: Device,
    /// IP address at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// IP address of the latest use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ip: Option<String>,
    /// User agent at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Free-form object set by the auth-service (empty when absent or null).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: Map<String, Value>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last creation, refresh or extend.
    pub last_used_at: DateTime<Utc>,
    /// When the session expires unless used again.
    pub expires_at: DateTime<Utc>,
    /// When the session expires whatever happens.
    pub absolute_expires_at: DateTime<Utc>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked: `logout`, `logout_all`, `refresh_token_reuse`, `session_limit`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    /// Last heartbeat of a live connection, as last recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Whether a live connection holds the session right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// In `GET /session/me`: whether this is the caller's own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// Body of `POST /session/refresh` and `POST /session/validate`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The refresh token presented.
    pub refresh_token: String,
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest").finish_non_exhaustive()
    }
}

/// A token pair, as `POST /session/refresh` returns it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The session the tokens belong to.
    pub session_id: Uuid,
    /// Always `Bearer`.
    pub token_type: String,
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// When the access token stops being accepted.
    pub access_token_expires_at: DateTime<Utc>,
    /// The refresh token to present next time; the one just used is now spent.
    pub refresh_token: String,
    /// When the session (and so this refresh token) expires unless used.
    pub refresh_token_expires_at: DateTime<Utc>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("session_id", &self.session_id)
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .finish_non_exhaustive()
    }
}

/// Answer of `POST /session/validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateResponse {
    /// Whether the refresh token is valid (invalid tokens are normally answered with an error).
    pub valid: bool,
    /// The session the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// Answer of `GET /session/me`: the caller's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MySessions {
    /// The caller.
    pub user_id: String,
    /// The session of the access token used for the call.
    pub session_id: Uuid,
    /// All of the user's active sessions; the caller's own has `current: true`.
    pub sessions: Vec<Session>,
}

/// Answer of `DELETE /session/all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// How many sessions were revoked.
    pub revoked: u64,
}

/// Body of `POST /sessions` (service API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSession {
    /// The user logging in.
    pub user_id: String,
    /// The device logging in.
    pub device: Device,
    /// The client's IP address, as the auth-service saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Free-form object kept with the session (at most 4 KiB serialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl NewSession {
    /// A request with only the required fields.
    pub fn new(user_id: impl Into<String>, device: Device) -> Self {
        Self { user_id: user_id.into(), device, ip: None, user_agent: None, metadata: None }
    }
}

/// Answer of `POST /sessions`: the new session and its first token pair.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The session created.
    pub session: Session,
    /// Always `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// When the access token stops being accepted.
    pub access_token_expires_at: DateTime<Utc>,
    /// The first refresh token of the session.
    pub refresh_token: String,
    /// When the session expires unless used.
    pub refresh_token_expires_at: DateTime<Utc>,
}

impl Created {
    /// The token pair, in the shape `refresh` returns.
    pub fn tokens(&self) -> Tokens {
        Tokens {
            session_id: self.session.id,
            token_type: self.token_type.clone(),
            access_token: self.access_token.clone(),
            access_token_expires_at: self.access_token_expires_at,
            refresh_token: self.refresh_token.clone(),
            refresh_token_expires_at: self.refresh_token_expires_at,
        }
    }
}

impl fmt::Debug for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Created")
            .field("session", &self.session)
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .finish_non_exhaustive()
    }
}

/// RFC 9457 problem details, the body of every error answer, with the service's stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// URI naming the problem type.
    #[serde(rename = "type", default = "about_blank")]
    pub kind: String,
    /// Short summary, the same for every occurrence of the type.
    #[serde(default)]
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, e.g. `invalid_token`.
    pub code: String,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

#[cfg(test)]
mod tests;
