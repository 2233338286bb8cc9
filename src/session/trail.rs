//! The domain rule of what every change leaves behind: the audit records and outbox events a
//! store adapter appends in the transaction of the change. Built here, from the rows the change
//! returned, so that every backend writes exactly the same trail; adapters never build an audit
//! record or an event themselves.

use chrono::{DateTime, Utc};

use super::store::{Erasure, Revocation};
use super::{reasons, Actor, AuditRecord, OutboxEvent, SessionRecord, SessionStatus};

/// Audit records and events to append in the transaction of the change they describe.
#[derive(Debug, Default)]
pub struct Trail {
    pub audit: Vec<AuditRecord>,
    pub events: Vec<OutboxEvent>,
}

impl Trail {
    /// A record that changes nothing but is kept (a replay, a refusal).
    pub fn audit_only(audit: &AuditRecord) -> Self {
        Self { audit: vec![audit.clone()], events: Vec::new() }
    }

    /// What an update of device name or metadata leaves: its audit and `session.updated` with
    /// the session as updated.
    pub fn update(audit: &AuditRecord, updated: &SessionRecord) -> Self {
        Self { audit: vec![audit.clone()], events: vec![OutboxEvent::updated(updated, audit.at)] }
    }

    /// What an extension leaves: its audit and `session.extended` with the session as extended.
    pub fn extension(audit: &AuditRecord, extended: &SessionRecord, at: DateTime<Utc>) -> Self {
        Self { audit: vec![audit.clone()], events: vec![OutboxEvent::extended(extended, at)] }
    }

    /// For each revoked session: audit (action `revoke`, outcome `ok`), `session.revoked` and,
    /// when the revocation is suspicious, `session.suspicious`. A revocation that records what
    /// set it off (a detected refresh-token reuse) writes that record first, even when a
    /// concurrent change left nothing to revoke.
    pub fn revocations(rows: &[SessionRecord], revocation: &Revocation) -> Self {
        let mut trail = Self::default();
        trail.audit.extend(revocation.cause.iter().cloned());
        for row in rows {
            trail.push_revocation(row, revocation);
        }
        trail
    }

    /// Sessions the sweep marked expired: audit (actor system, action `expire`) and
    /// `session.expired`.
    pub fn expirations(rows: &[SessionRecord], now: DateTime<Utc>) -> Self {
        let mut trail = Self::default();
        for row in rows {
            let audit = AuditRecord::new(now, Actor::System, "expire", "ok")
                .session(row.id, &row.user_id)
                .reason(reasons::EXPIRED);
            trail.audit.push(audit);
            trail.events.push(OutboxEvent::expired(row, now));
        }
        trail
    }

    /// What deleting `row` leaves: its revocation first if it was still active (`revoked` is the
    /// row as revoked), then the `delete` audit record.
    pub fn deletion(row: &SessionRecord, revoked: Option<&SessionRecord>, revocation: &Revocation) -> Self {
        let mut trail = Self::default();
        if let Some(revoked) = revoked {
            trail.push_revocation(revoked, revocation);
        }
        let audit = AuditRecord::new(revocation.at, revocation.actor.clone(), "delete", "ok")
            .session(row.id, &row.user_id)
            .reason(revocation.reason.clone())
            .ip(revocation.ip.as_deref());
        trail.audit.push(audit);
        trail
    }

    /// What erasing a deleted user leaves: the revocation of each session it revoked, then, when
    /// anything was revoked or erased (`erased`), one `erase` audit record about the user (no
    /// session). An erasure that found nothing leaves nothing, so a repeated one is silent. No
    /// record of it holds an IP, whatever the revocation says: it writes no new personal data.
    pub fn erasure(revoked: &[SessionRecord], erasure: &Erasure, erased: bool) -> Self {
        let revocation = &Revocation { ip: None, ..erasure.revocation.clone() };
        let mut trail = Self::revocations(revoked, revocation);
        if erased || !revoked.is_empty() {
            let audit = AuditRecord::new(revocation.at, revocation.actor.clone(), "erase", "ok")
                .user(&erasure.user_id)
                .reason(revocation.reason.clone());
            trail.audit.push(audit);
        }
        trail
    }

    pub fn is_empty(&self) -> bool {
        self.audit.is_empty() && self.events.is_empty()
    }

    fn push_revocation(&mut self, row: &SessionRecord, revocation: &Revocation) {
        let audit = AuditRecord::new(revocation.at, revocation.actor.clone(), "revoke", "ok")
            .session(row.id, &row.user_id)
            .reason(revocation.reason.clone())
            .ip(revocation.ip.as_deref());
        self.audit.push(audit);
        self.events.push(OutboxEvent::revoked(row, revocation.at, &revocation.reason));
        if revocation.suspicious {
            self.events.push(OutboxEvent::suspicious(row, revocation.at, &revocation.reason));
        }
    }
}

/// The revocation the cap applies: system actor, reason `session_limit`.
pub fn eviction(at: DateTime<Utc>) -> Revocation {
    Revocation {
        reason: reasons::SESSION_LIMIT.to_owned(),
        actor: Actor::System,
        ip: None,
        at,
        suspicious: false,
        cause: None,
    }
}

/// `row` as `revocation` leaves it, if it was effectively active at the revocation's time. Used
/// where a row is revoked and deleted in one step, so it never needs the UPDATE.
pub fn revoked_copy(row: &SessionRecord, revocation: &Revocation) -> Option<SessionRecord> {
    row.is_active(revocation.at).then(|| SessionRecord {
        status: SessionStatus::Revoked,
        revoked_at: Some(revocation.at),
        revoke_reason: Some(revocation.reason.clone()),
        ..row.clone()
    })
}
