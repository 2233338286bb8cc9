//! Where the relay hands events: a broker behind a small trait, so that another broker (Kafka)
//! can be added beside NATS JetStream without touching the relay.

use async_trait::async_trait;

use crate::session::OutboxEvent;

/// The underlying failure of a publish, kept as the error's `source()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the broker did not take an event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// No acknowledgement within the sink's deadline (the broker is down or too slow).
    #[error("the broker did not acknowledge the event in time")]
    Timeout,
    /// The broker refused the event, or the connection failed.
    #[error("the broker did not take the event")]
    Publish(#[source] Cause),
}

/// How the broker acknowledged an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Stored now.
    Stored,
    /// Already stored by an earlier publish of the same id (within the broker's de-duplication
    /// window): dropped by the broker, not stored twice.
    Duplicate,
}

/// A broker the outbox is relayed to.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// `"nats"`, for logs.
    fn kind(&self) -> &'static str;

    /// Publishes `events`, each under its id (the broker's de-duplication key), on the subject of
    /// its type, with the stored envelope as body, and returns once the broker answered each:
    /// one outcome per event, in the same order. The publishes are pipelined (all sent, then the
    /// acknowledgements awaited together), so the caller gives at most one event per session in
    /// a call when it needs their order kept.
    async fn publish(&self, events: &[&OutboxEvent]) -> Vec<Result<Ack, SinkError>>;
}
