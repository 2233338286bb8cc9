//! Domain types to Postgres parameters and rows back to domain types. Nothing stored is trusted:
//! a value the domain cannot represent is reported as [`StoreError::Corrupt`], never unwrapped.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Decode, Postgres, Row, Type};

use super::db_error;
use crate::session::store::StoreError;
use crate::session::{Actor, AuditRecord, Device, OutboxEvent, SessionRecord, SessionStatus};
use crate::store::driver::corrupt;

/// A query with bound parameters, borrowing the values it binds.
pub(super) type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// Binds every `sessions` column, in `session_columns!()` order.
pub(super) fn bind_session<'q>(q: PgQuery<'q>, s: &'q SessionRecord) -> PgQuery<'q> {
    q.bind(s.id)
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
        .bind(&s.metadata)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .bind(s.absolute_expires_at)
        .bind(s.revoked_at)
        .bind(&s.revoke_reason)
        .bind(s.last_seen_at)
        .bind(s.refresh_generation)
        .bind(&s.refresh_hash)
        .bind(&s.prev_refresh_hash)
        .bind(s.rotated_at)
}

/// Binds every `audit_log` column, in `audit_columns!()` order.
pub(super) fn bind_audit<'q>(q: PgQuery<'q>, a: &'q AuditRecord) -> PgQuery<'q> {
    q.bind(a.id)
        .bind(a.at)
        .bind(a.session_id)
        .bind(&a.user_id)
        .bind(a.actor.kind())
        .bind(a.actor.id())
        .bind(&a.action)
        .bind(&a.outcome)
        .bind(&a.reason)
        .bind(&a.ip)
        .bind(attempts(a.attempts))
}

/// The `attempts` column (INTEGER): counts far beyond `i32` cannot arise (one window's attempts).
pub(super) fn attempts(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Binds an event's `outbox` columns, in `outbox_columns!()` order.
pub(super) fn bind_event<'q>(q: PgQuery<'q>, e: &'q OutboxEvent) -> PgQuery<'q> {
    q.bind(e.id).bind(&e.subject).bind(&e.payload).bind(e.created_at)
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column).map_err(db_error)
}

pub(super) fn session(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let status: String = get(row, "status")?;
    Ok(SessionRecord {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        status: SessionStatus::parse(&status).ok_or_else(|| corrupt("session status", &status))?,
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
        metadata: get(row, "metadata")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        expires_at: get(row, "expires_at")?,
        absolute_expires_at: get(row, "absolute_expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        revoke_reason: get(row, "revoke_reason")?,
        last_seen_at: get(row, "last_seen_at")?,
        refresh_generation: get(row, "refresh_generation")?,
        refresh_hash: get(row, "refresh_hash")?,
        prev_refresh_hash: get(row, "prev_refresh_hash")?,
        rotated_at: get(row, "rotated_at")?,
    })
}

pub(super) fn sessions(rows: &[PgRow]) -> Result<Vec<SessionRecord>, StoreError> {
    rows.iter().map(session).collect()
}

pub(super) fn audit(row: &PgRow) -> Result<AuditRecord, StoreError> {
    let kind: String = get(row, "actor_kind")?;
    Ok(AuditRecord {
        id: get(row, "id")?,
        at: get(row, "at")?,
        session_id: get(row, "session_id")?,
        user_id: get(row, "user_id")?,
        actor: Actor::from_parts(&kind, get(row, "actor_id")?),
        action: get(row, "action")?,
        outcome: get(row, "outcome")?,
        reason: get(row, "reason")?,
        ip: get(row, "ip")?,
        attempts: u32::try_from(get::<i32>(row, "attempts")?)
            .map_err(|_| StoreError::Corrupt("audit_log.attempts is negative".into()))?,
    })
}

pub(super) fn event(row: &PgRow) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        id: get(row, "id")?,
        subject: get(row, "subject")?,
        created_at: get(row, "created_at")?,
        payload: get(row, "payload")?,
    })
}
