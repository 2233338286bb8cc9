//! Domain events, written to the transactional outbox in the same transaction as the change they
//! describe. The envelope is CloudEvents-shaped JSON, versioned by `dataschema`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::SessionRecord;

pub const CREATED: &str = "session.created";
pub const REFRESHED: &str = "session.refreshed";
pub const REVOKED: &str = "session.revoked";
pub const EXPIRED: &str = "session.expired";
pub const SUSPICIOUS: &str = "session.suspicious";
pub const UPDATED: &str = "session.updated";
pub const EXTENDED: &str = "session.extended";

/// One outbox row: `subject` is the broker subject, `payload` the whole envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub id: Uuid,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub payload: Value,
}

impl OutboxEvent {
    fn new(subject: &str, at: DateTime<Utc>, session: &SessionRecord, data: Value) -> Self {
        let id = Uuid::now_v7();
        let mut payload = json!({
            "specversion": "1.0",
            "id": id,
            "source": "session-service",
            "type": subject,
            "subject": session.id,
            "time": at,
            "datacontenttype": "application/json",
            "dataschema": "session-events/v1",
        });
        // Moved in, not serialized again through `json!`.
        payload["data"] = data;
        Self { id, subject: subject.to_owned(), created_at: at, payload }
    }

    fn base(session: &SessionRecord) -> Value {
        json!({
            "session_id": session.id,
            "user_id": session.user_id,
            "device_id": session.device.id,
            "platform": session.device.platform,
        })
    }

    fn with(session: &SessionRecord, extra: Value) -> Value {
        let mut data = Self::base(session);
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        data
    }

    pub fn created(session: &SessionRecord) -> Self {
        let data = Self::with(
            session,
            json!({ "ip": session.first_ip, "expires_at": session.expires_at,
                    "absolute_expires_at": session.absolute_expires_at }),
        );
        Self::new(CREATED, session.created_at, session, data)
    }

    pub fn refreshed(session: &SessionRecord, at: DateTime<Utc>, generation: i64) -> Self {
        let data = Self::with(
            session,
            json!({ "generation": generation, "ip": session.last_ip, "expires_at": session.expires_at }),
        );
        Self::new(REFRESHED, at, session, data)
    }

    pub fn revoked(session: &SessionRecord, at: DateTime<Utc>, reason: &str) -> Self {
        Self::new(REVOKED, at, session, Self::with(session, json!({ "reason": reason })))
    }

    pub fn expired(session: &SessionRecord, at: DateTime<Utc>) -> Self {
        let data = Self::with(session, json!({ "expires_at": session.expires_at }));
        Self::new(EXPIRED, at, session, data)
    }

    pub fn suspicious(session: &SessionRecord, at: DateTime<Utc>, reason: &str) -> Self {
        let data = Self::with(session, json!({ "reasons": [reason], "action": "revoke" }));
        Self::new(SUSPICIOUS, at, session, data)
    }

    pub fn updated(session: &SessionRecord, at: DateTime<Utc>) -> Self {
        Self::new(UPDATED, at, session, Self::base(session))
    }

    pub fn extended(session: &SessionRecord, at: DateTime<Utc>) -> Self {
        let data = Self::with(session, json!({ "expires_at": session.expires_at }));
        Self::new(EXTENDED, at, session, data)
    }
}
