//! Events leaving and entering the service through a broker: the outbox relay (every committed
//! change's event, delivered to NATS JetStream), the `user.deleted` consumer, and the connection
//! to NATS they share. Without `NATS_URL` none of them runs; the outbox is then kept for the
//! revocation feed's window and pruned.

pub mod consumer;
pub mod feed;
pub mod nats;
pub mod relay;
pub mod retention;
pub mod sink;
pub mod wake;

use std::time::Duration;

/// What the relay, the retention sweep and the consumer run with. Defaults are the documented
/// ones (README's configuration table, `[events]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// `None`: no broker; nothing is relayed or consumed.
    pub nats_url: Option<String>,
    /// JetStream stream the session events are published to, created if missing.
    pub stream: String,
    /// Put before every event subject (`<prefix>session.revoked`); empty for none.
    pub subject_prefix: String,
    /// Most outbox rows one relay pass claims and publishes together.
    pub relay_batch: u32,
    /// How often the relay looks for rows when no local commit woke it (rows written by other
    /// nodes, or left by a relay that died).
    pub relay_poll: Duration,
    /// Delivered rows are deleted once this old.
    pub sent_retention: Duration,
    /// Without a broker, rows are deleted once this old (they only serve the revocation feed).
    pub unsent_retention: Duration,
    /// Subject of the `user.deleted` events this service consumes.
    pub user_deleted_subject: String,
    /// Stream holding `user_deleted_subject`, created if missing.
    pub user_deleted_stream: String,
    /// Name of the durable pull consumer, shared by every node.
    pub user_deleted_durable: String,
    /// Where a `user.deleted` message that cannot be understood is republished, with its reason.
    pub dead_letter_subject: String,
    /// Longest a `GET /revocations` long-poll waits for a revocation before answering empty.
    pub feed_max_wait: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            stream: "SESSION_EVENTS".to_owned(),
            subject_prefix: String::new(),
            relay_batch: 256,
            relay_poll: Duration::from_secs(1),
            sent_retention: Duration::from_secs(24 * 3600),
            unsent_retention: Duration::from_secs(24 * 3600),
            user_deleted_subject: "user.deleted".to_owned(),
            user_deleted_stream: "USER_EVENTS".to_owned(),
            user_deleted_durable: "session-service".to_owned(),
            dead_letter_subject: "user.deleted.dead_letter".to_owned(),
            feed_max_wait: Duration::from_secs(25),
        }
    }
}

impl EventsConfig {
    /// The broker subject of an event type (`session.revoked`), prefix included.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}{event_type}", self.subject_prefix)
    }
}
