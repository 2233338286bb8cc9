//! Request and response bodies of the REST API. Requests reject unknown fields and take nested
//! structs only as JSON objects; their schemas carry the same rules as `session::validate` (the
//! contract test holds the two together).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{OneOfBuilder, Type};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::object;

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
    #[schema(schema_with = metadata_schema)]
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
    /// Whether the session has a live WebSocket connection on any live node of the cluster.
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
#[serde(deny_unknown_fields, expecting = "a JSON object with user_id and device")]
pub struct CreateSessionRequest {
    /// 1-128 printable ASCII characters, no spaces.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub user_id: String,
    #[serde(deserialize_with = "object")]
    pub device: NewDevice,
    /// The player's IP as seen by the auth-service (IPv4 or IPv6, no zone).
    #[serde(default)]
    #[schema(schema_with = ip_schema)]
    pub ip: Option<String>,
    /// At most 512 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub user_agent: Option<String>,
    /// JSON object, at most 4 KiB serialized; no NUL character in any key or string.
    #[serde(default = "empty_object", deserialize_with = "metadata")]
    #[schema(schema_with = metadata_schema)]
    pub metadata: serde_json::Value,
}

/// The device of `POST /sessions`: [`Device`] with the rules of its fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object with id and platform")]
pub struct NewDevice {
    /// Stable id the client generated for this install: 1-128 printable ASCII characters.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub id: String,
    /// Platform name, e.g. `ios`, `android`, `windows`, `ps5`.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]+$")]
    pub platform: String,
    /// At most 128 characters, no control characters (so for `model`, `app_version`, `fingerprint`).
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub model: Option<String>,
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub app_version: Option<String>,
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub fingerprint: Option<String>,
}

impl From<NewDevice> for Device {
    fn from(d: NewDevice) -> Self {
        Self {
            id: d.id,
            platform: d.platform,
            name: d.name,
            model: d.model,
            app_version: d.app_version,
            fingerprint: d.fingerprint,
        }
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Metadata as any JSON value (the rules are `validate::metadata`'s), with negative zero written
/// as zero: Postgres' `jsonb` keeps no sign on zero, so SQLite must not either.
fn metadata<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
    let mut value = serde_json::Value::deserialize(d)?;
    unsign_zeros(&mut value);
    Ok(value)
}

fn optional_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    let mut value = Option::<serde_json::Value>::deserialize(d)?;
    value.iter_mut().for_each(unsign_zeros);
    Ok(value)
}

fn unsign_zeros(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => *value = serde_json::json!(0.0),
        serde_json::Value::Array(items) => items.iter_mut().for_each(unsign_zeros),
        serde_json::Value::Object(map) => map.values_mut().for_each(unsign_zeros),
        _ => {}
    }
}

/// The `Metadata` component (defined in `openapi.rs`).
fn metadata_schema() -> Ref {
    Ref::from_schema_name("Metadata")
}

fn optional_metadata_schema() -> Schema {
    let null = ObjectBuilder::new().schema_type(Type::Null);
    Schema::OneOf(OneOfBuilder::new().item(metadata_schema()).item(null).build())
}

/// An IPv4 or IPv6 address, or null.
fn ip_schema() -> Schema {
    let string =
        |format| RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).format(Some(format)).build()));
    let v4 = string(utoipa::openapi::SchemaFormat::Custom("ipv4".into()));
    let v6 = string(utoipa::openapi::SchemaFormat::Custom("ipv6".into()));
    let null = ObjectBuilder::new().schema_type(Type::Null);
    Schema::OneOf(OneOfBuilder::new().item(v4).item(v6).item(null).build())
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
#[serde(deny_unknown_fields, expecting = "a JSON object with device_name and/or metadata")]
pub struct UpdateSessionRequest {
    /// At most 128 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub device_name: Option<String>,
    /// Replaces the whole metadata object (same rules as at creation).
    #[serde(default, deserialize_with = "optional_metadata")]
    #[schema(schema_with = optional_metadata_schema)]
    pub metadata: Option<serde_json::Value>,
}

/// `POST /sessions/{id}/extend` (body optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct ExtendRequest {
    /// New idle lifetime from now, in seconds [default: the platform's idle timeout]. Never
    /// extends past the absolute expiry; a value ending before the current expiry changes nothing.
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub seconds: Option<i64>,
}

/// `POST /sessions/{id}/revoke` (body optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct RevokeRequest {
    /// Reason code, 1-64 characters of `[a-z0-9_]` [default: `revoked_by_service`].
    #[schema(min_length = 1, max_length = 64, pattern = "^[a-z0-9_]+$")]
    pub reason: Option<String>,
}

/// `POST /session/refresh` and `POST /session/validate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object with refresh_token")]
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
    #[param(pattern = "^current$")]
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
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque; any other value answers `invalid_field`).
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
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
    #[param(minimum = 1, maximum = 500)]
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

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevocationParams {
    /// `cursor` of the previous answer (opaque; any other value answers `invalid_field`).
    /// Without it: every revocation still mattering (made within the longest access-token
    /// lifetime), from the oldest.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub after: Option<String>,
    /// With nothing new after `after`, wait up to this many ms for a revocation (capped by the
    /// server's `events.feed_max_wait_ms`, 25000 by default), 0-60000 [default: 0, answer at
    /// once].
    #[param(minimum = 0, maximum = 60000)]
    pub wait: Option<u64>,
    /// Page size, 1-1000 [default: 500].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A revoked session in the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationView {
    pub session_id: Uuid,
    pub user_id: String,
    pub revoked_at: DateTime<Utc>,
    /// After this time no access token of the session is valid any more: the entry can be
    /// forgotten (the revocation time plus the longest access-token lifetime).
    pub not_after: DateTime<Utc>,
}

/// Sessions revoked since a cursor, in commit order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationPage {
    pub revocations: Vec<RevocationView>,
    /// Pass as `after` for the next read; the same as the one given when nothing was new.
    pub cursor: String,
    /// More revocations follow already: read again at once.
    pub has_more: bool,
}
