//! Domain types to SQLite parameters and rows back to domain types. SQLite keeps UUIDs as
//! lowercase hyphenated text, timestamps as integer unix microseconds and JSON as text; nothing
//! read back is trusted, a value the domain cannot represent is [`StoreError::Corrupt`].

use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Row, Sqlite, Type};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::db_error;
use crate::session::store::StoreError;
use crate::session::{Actor, AuditRecord, Device, OutboxEvent, SessionRecord, SessionStatus};
use crate::store::driver::corrupt;

/// A query with bound parameters.
pub(super) type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// A timestamp as stored: unix microseconds (inputs are already truncated to microseconds).
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A UUID as stored: lowercase hyphenated text, whose text order is the UUID's byte order.
pub(super) fn text(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

/// Binds every `sessions` column, in `session_columns!()` order.
pub(super) fn bind_session<'q>(q: SqliteQuery<'q>, s: &'q SessionRecord) -> SqliteQuery<'q> {
    q.bind(text(s.id))
        .bind(&s.user_id)
        .bind(s.status.as_str())
        .bind(&s.device.id)
        .bind(&s.device.platform)
        .bind(&s.device.name)
        .bind(&s.device.model)
        .bind(&s.device.app_version)
        .bind(&s.device.fingerprint)
        .bind(&s.first_ip)
        .bind(&s.last_ip)
        .bind(&s.user_agent)
        .bind(s.metadata.to_string())
        .bind(micros(s.created_at))
        .bind(micros(s.last_used_at))
        .bind(micros(s.expires_at))
        .bind(micros(s.absolute_expires_at))
        .bind(s.revoked_at.map(micros))
        .bind(&s.revoke_reason)
        .bind(s.last_seen_at.map(micros))
        .bind(s.refresh_generation)
        .bind(&s.refresh_hash)
        .bind(&s.prev_refresh_hash)
        .bind(s.rotated_at.map(micros))
}

/// Binds every `audit_log` column, in `audit_columns!()` order.
pub(super) fn bind_audit<'q>(q: SqliteQuery<'q>, a: &'q AuditRecord) -> SqliteQuery<'q> {
    q.bind(text(a.id))
        .bind(micros(a.at))
        .bind(a.session_id.map(text))
        .bind(&a.user_id)
        .bind(a.actor.kind())
        .bind(a.actor.id())
        .bind(&a.action)
        .bind(&a.outcome)
        .bind(&a.reason)
        .bind(&a.ip)
        .bind(i64::from(a.attempts))
}

/// Binds an event's `outbox` columns, in `outbox_columns!()` order.
pub(super) fn bind_event<'q>(q: SqliteQuery<'q>, e: &'q OutboxEvent) -> SqliteQuery<'q> {
    q.bind(text(e.id)).bind(&e.subject).bind(e.payload.to_string()).bind(micros(e.created_at))
}

/// Pushes one `audit_log` row of a multi-row `VALUES`, in `audit_columns!()` order.
pub(super) fn push_audit<'q>(mut row: Separated<'_, 'q, Sqlite, &'static str>, a: &'q AuditRecord) {
    row.push_bind(text(a.id))
        .push_bind(micros(a.at))
        .push_bind(a.session_id.map(text))
        .push_bind(&a.user_id)
        .push_bind(a.actor.kind())
        .push_bind(a.actor.id())
        .push_bind(&a.action)
        .push_bind(&a.outcome)
        .push_bind(&a.reason)
        .push_bind(&a.ip)
        .push_bind(i64::from(a.attempts));
}

/// Pushes one `outbox` row of a multi-row `VALUES`, in `outbox_columns!()` order.
pub(super) fn push_event<'q>(mut row: Separated<'_, 'q, Sqlite, &'static str>, e: &'q OutboxEvent) {
    row.push_bind(text(e.id)).push_bind(&e.subject).push_bind(e.payload.to_string()).push_bind(micros(e.created_at));
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(db_error)
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let us: i64 = get(row, column)?;
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(column, us))
}

fn time_opt(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let us: Option<i64> = get(row, column)?;
    us.map(|us| DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt(column, us))).transpose()
}

fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    Ok(get::<Hyphenated>(row, column)?.into_uuid())
}

fn json(row: &SqliteRow, column: &str) -> Result<serde_json::Value, StoreError> {
    let raw: &str = get(row, column)?;
    serde_json::from_str(raw).map_err(|e| corrupt(column, e))
}

pub(super) fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let status: &str = get(row, "status")?;
    Ok(SessionRecord {
        id: uuid(row, "id")?,
        user_id: get(row, "user_id")?,
        status: SessionStatus::parse(status).ok_or_else(|| corrupt("session status", status))?,
        device: Device {
            id: get(row, "device_id")?,
            platform: get(row, "platform")?,
            name: get(row, "device_name")?,
            model: get(row, "device_model")?,
            app_version: get(row, "app_version")?,
            fingerprint: get(row, "fingerprint")?,
        },
        first_ip: get(row, "first_ip")?,
        last_ip: get(row, "last_ip")?,
        user_agent: get(row, "user_agent")?,
        metadata: json(row, "metadata")?,
        created_at: time(row, "created_at")?,
        last_used_at: time(row, "last_used_at")?,
        expires_at: time(row, "expires_at")?,
        absolute_expires_at: time(row, "absolute_expires_at")?,
        revoked_at: time_opt(row, "revoked_at")?,
        revoke_reason: get(row, "revoke_reason")?,
        last_seen_at: time_opt(row, "last_seen_at")?,
        refresh_generation: get(row, "refresh_generation")?,
        refresh_hash: get(row, "refresh_hash")?,
        prev_refresh_hash: get(row, "prev_refresh_hash")?,
        rotated_at: time_opt(row, "rotated_at")?,
    })
}

pub(super) fn sessions(rows: &[SqliteRow]) -> Result<Vec<SessionRecord>, StoreError> {
    rows.iter().map(session).collect()
}

pub(super) fn audit(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let kind: &str = get(row, "actor_kind")?;
    Ok(AuditRecord {
        id: uuid(row, "id")?,
        at: time(row, "at")?,
        session_id: get::<Option<Hyphenated>>(row, "session_id")?.map(Hyphenated::into_uuid),
        user_id: get(row, "user_id")?,
        actor: Actor::from_parts(kind, get(row, "actor_id")?),
        action: get(row, "action")?,
        outcome: get(row, "outcome")?,
        reason: get(row, "reason")?,
        ip: get(row, "ip")?,
        attempts: u32::try_from(get::<i64>(row, "attempts")?)
            .map_err(|_| StoreError::Corrupt("audit_log.attempts is out of range".into()))?,
    })
}

pub(super) fn event(row: &SqliteRow) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: uuid(row, "id")?,
        subject: get(row, "subject")?,
        created_at: time(row, "created_at")?,
        payload: json(row, "payload")?,
    })
}
