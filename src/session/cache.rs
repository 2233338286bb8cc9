//! The session-cache port: the session state that the hot paths read instead of the store, and
//! the protocol that keeps it from serving a record a writer has replaced. Implemented by the
//! bus adapters (Redis, in-process).

use std::time::Instant;

use async_trait::async_trait;
use uuid::Uuid;

use super::SessionRecord;

/// A cache operation failed; the domain reads the store instead. The adapter's error is the
/// source.
#[derive(Debug, thiserror::Error)]
#[error("session cache unavailable")]
pub struct CacheError(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

/// A cache read: the record, or a ticket that lets the reader fill the cache after reading the
/// store, unless the session changed in between.
#[derive(Debug, Clone)]
pub enum Cached {
    Hit(Box<SessionRecord>),
    Miss(Ticket),
}

/// The session's invalidation counter as seen at a miss. A fill succeeds only if the counter has
/// not moved since, so a reader that raced with a writer never caches what the writer replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub session: Uuid,
    pub version: u64,
    /// When the miss was read. A counter lapses some time after its last change and reads 0
    /// again; a bus refuses a fill from a ticket older than that, which a reader stalled for that
    /// long could otherwise pass with a record from before the change.
    pub issued: Instant,
}

impl Ticket {
    /// A ticket for `version` of `session`, issued now.
    pub fn new(session: Uuid, version: u64) -> Self {
        Self { session, version, issued: Instant::now() }
    }
}

/// The session state that WebSocket auth, user-API auth and validate read instead of the store.
/// Writers invalidate after their commit and before they answer, so once the call that revoked a
/// session has returned no reader anywhere accepts it, provided the writer reached the cache. If
/// it did not, the writer keeps the invalidation and replays it as soon as it can, never reads
/// the entry itself meanwhile, and other readers may serve the old record until the replay or
/// until the entry's maximum age (set by the fill, never extended by reads), whichever is first.
#[async_trait]
pub trait SessionCache: Send + Sync + 'static {
    async fn get(&self, id: Uuid) -> Result<Cached, CacheError>;
    async fn fill(&self, ticket: Ticket, record: &SessionRecord) -> Result<(), CacheError>;
    /// Drops the cached state of `ids` and bumps their counters.
    async fn invalidate(&self, ids: &[Uuid]) -> Result<(), CacheError>;
}
