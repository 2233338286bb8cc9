//! `[events]`: the broker the outbox is relayed to and `user.deleted` is read from, and how long
//! the outbox keeps its rows. Defaults are [`EventsConfig::default`]'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{millis, ms, Secret};
use crate::events::EventsConfig;

/// `[events]`: NATS JetStream, the outbox's retention and the revocation feed.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// `nats://host:4222`: relay the outbox to NATS JetStream and consume `user.deleted`. Unset:
    /// no broker; the outbox only serves the revocation feed and is pruned after
    /// `events.unsent_retention_secs`.
    #[arg(id = "events.nats_url", long = "nats-url", env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<Secret>,
    /// JetStream stream of the session events, created if missing.
    #[arg(id = "events.stream", long = "events-stream", env = "EVENTS_STREAM")]
    pub stream: String,
    /// Put before every event subject (`<prefix>session.revoked`); empty for none.
    #[arg(id = "events.subject_prefix", long = "events-subject-prefix", env = "EVENTS_SUBJECT_PREFIX")]
    pub subject_prefix: String,
    /// Most outbox rows one relay pass publishes together.
    #[arg(id = "events.relay_batch", long = "relay-batch", env = "RELAY_BATCH")]
    pub relay_batch: u32,
    /// How often the relay looks for rows no local commit told it about, in ms.
    #[arg(id = "events.relay_poll_ms", long = "relay-poll-ms", env = "RELAY_POLL_MS")]
    pub relay_poll_ms: u64,
    /// Delivered outbox rows are deleted once this old, in seconds; at least the access-token
    /// lifetime, which the revocation feed covers.
    #[arg(id = "events.sent_retention_secs", long = "outbox-sent-retention-secs", env = "OUTBOX_SENT_RETENTION_SECS")]
    pub sent_retention_secs: u64,
    /// Without `NATS_URL`, outbox rows are deleted once this old, in seconds; at least the
    /// access-token lifetime.
    #[arg(id = "events.unsent_retention_secs", long = "outbox-retention-secs", env = "OUTBOX_RETENTION_SECS")]
    pub unsent_retention_secs: u64,
    /// Subject of the `user.deleted` events this service consumes.
    #[arg(id = "events.user_deleted_subject", long = "user-deleted-subject", env = "USER_DELETED_SUBJECT")]
    pub user_deleted_subject: String,
    /// Stream holding the `user.deleted` subject, created if missing.
    #[arg(id = "events.user_deleted_stream", long = "user-deleted-stream", env = "USER_DELETED_STREAM")]
    pub user_deleted_stream: String,
    /// Name of the durable `user.deleted` consumer, shared by every node.
    #[arg(id = "events.user_deleted_durable", long = "user-deleted-durable", env = "USER_DELETED_DURABLE")]
    pub user_deleted_durable: String,
    /// Where a `user.deleted` message that cannot be understood goes, with the reason.
    #[arg(id = "events.dead_letter_subject", long = "dead-letter-subject", env = "DEAD_LETTER_SUBJECT")]
    pub dead_letter_subject: String,
    /// Longest a `GET /revocations` long-poll waits, in ms.
    #[arg(id = "events.feed_max_wait_ms", long = "feed-max-wait-ms", env = "FEED_MAX_WAIT_MS")]
    pub feed_max_wait_ms: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        let d = EventsConfig::default();
        Self {
            nats_url: None,
            stream: d.stream,
            subject_prefix: d.subject_prefix,
            relay_batch: d.relay_batch,
            relay_poll_ms: millis(d.relay_poll),
            sent_retention_secs: d.sent_retention.as_secs(),
            unsent_retention_secs: d.unsent_retention.as_secs(),
            user_deleted_subject: d.user_deleted_subject,
            user_deleted_stream: d.user_deleted_stream,
            user_deleted_durable: d.user_deleted_durable,
            dead_letter_subject: d.dead_letter_subject,
            feed_max_wait_ms: millis(d.feed_max_wait),
        }
    }
}

impl EventsSettings {
    /// Checks the retention against the access-token lifetime (a revocation must stay in the
    /// feed while a token of that session can still be presented) and builds the config.
    pub(super) fn resolve(&self, access_ttl: Duration) -> anyhow::Result<EventsConfig> {
        let sent = Duration::from_secs(self.sent_retention_secs);
        let unsent = Duration::from_secs(self.unsent_retention_secs);
        anyhow::ensure!(
            sent >= access_ttl && unsent >= access_ttl,
            "events.sent_retention_secs and events.unsent_retention_secs must be at least the access-token lifetime ({}s)",
            access_ttl.as_secs()
        );
        anyhow::ensure!(self.relay_batch > 0, "events.relay_batch must be at least 1");
        Ok(EventsConfig {
            nats_url: self.nats_url.as_ref().map(|s| s.0.clone()),
            stream: self.stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            relay_batch: self.relay_batch,
            relay_poll: ms(self.relay_poll_ms),
            sent_retention: sent,
            unsent_retention: unsent,
            user_deleted_subject: self.user_deleted_subject.clone(),
            user_deleted_stream: self.user_deleted_stream.clone(),
            user_deleted_durable: self.user_deleted_durable.clone(),
            dead_letter_subject: self.dead_letter_subject.clone(),
            feed_max_wait: ms(self.feed_max_wait_ms),
        })
    }
}
