//! The cross-node bus (docs/operations.md, "Several nodes"): control messages to the node that holds a
//! connection, the presence directory (user -> session -> node), node liveness, and the session
//! cache the hot paths read. Two implementations: [`redis`] (production, standalone or Cluster)
//! and [`memory`] (one process: the embedded default, and several in-process nodes in tests).
//!
//! Channel design: every node subscribes to one channel of its own, `<prefix>:node:<id>`. A
//! sender looks up the target node in the presence directory and publishes there, so a node only
//! receives messages for connections it holds, whatever the cluster size. On a Redis Cluster the
//! channel is a sharded one (`SSUBSCRIBE`/`SPUBLISH`): each node's channel lives on the shard that
//! owns its slot, so delivery traffic spreads over the shards instead of being broadcast to all.
//! Control messages travel on their own connections (publish and subscribe), never queued behind
//! presence or cache commands.

pub mod memory;
pub mod redis;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::session::cache::CacheError;
use crate::session::SessionRecord;

/// The underlying failure of a bus operation, kept as the error's `source()`.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Cloneable (a failed call may be reported to several waiters), so causes are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// Redis cannot be reached, did not answer within the timeout, or is known to be down (the
    /// breaker is open and it was not asked). Callers degrade (the store is the truth).
    #[error("bus unavailable")]
    Unavailable(#[source] Cause),
    #[error("bus error")]
    Backend(#[source] Cause),
}

impl BusError {
    /// [`BusError::Unavailable`] with `cause` as its source.
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Unavailable(Arc::from(cause.into()))
    }

    /// [`BusError::Backend`] with `cause` as its source.
    pub fn backend(cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Backend(Arc::from(cause.into()))
    }
}

/// The domain's cache port sees bus failures as cache failures, the bus error as their source.
impl From<BusError> for CacheError {
    fn from(e: BusError) -> Self {
        CacheError(Box::new(e))
    }
}

/// A message for the node holding some connections. Serialized as JSON on Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// These sessions were revoked: push `revoked` and close.
    Revoke { sessions: Vec<Uuid>, reason: String, sent_ms: i64 },
    /// A newer connection of `session` opened at `since_ms` on another node: close ours if older.
    Replace { session: Uuid, since_ms: i64, sent_ms: i64 },
}

impl Control {
    pub fn sent_ms(&self) -> i64 {
        match self {
            Self::Revoke { sent_ms, .. } | Self::Replace { sent_ms, .. } => *sent_ms,
        }
    }
}

/// What a node receives from the bus. Called from the bus's receive task: must not block.
pub trait Inbox: Send + Sync + 'static {
    fn deliver(&self, msg: Control);
    /// The subscription was lost and is back: pushes sent meanwhile may be lost.
    fn resubscribed(&self);
}

/// What a node says about itself in its liveness key; read back by the cluster stats endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub addr: String,
    pub connections: u64,
    pub started_at_ms: i64,
}

/// How the bus shields request paths from an unreachable backend: a circuit breaker that opens on
/// the first call that fails or times out, answers request paths `Unavailable` at once while open
/// (nothing is sent), and closes when the heartbeat's probe gets an answer. Counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusHealth {
    /// Request paths are not asking the backend (it failed and no probe has answered since).
    pub open: bool,
    /// How many times the breaker opened.
    pub trips: u64,
    /// Request-path calls answered `Unavailable` without asking the backend.
    pub short_circuited: u64,
    /// Request-path calls sent to the backend.
    pub attempted: u64,
}

/// Outcome of renewing this node's liveness key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The key was still there: the bus kept this node's state.
    Renewed,
    /// The key had vanished (first beat, expiry after a stall, or a Redis restart): this node's
    /// presence entries may be gone too and must be announced again.
    Recreated,
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// This node's id (random per process start, so a dead node's id never comes back).
    fn node_id(&self) -> &str;

    /// `"redis"` or `"memory"`.
    fn kind(&self) -> &'static str;

    /// Starts delivering this node's control messages to `inbox`. Called once.
    async fn subscribe(&self, inbox: Arc<dyn Inbox>) -> Result<(), BusError>;

    /// Sends `msg` to `node`'s channel.
    async fn send(&self, node: &str, msg: &Control) -> Result<(), BusError>;

    /// Records that `session` of `user` is connected to this node. Returns the node that held it
    /// before, if it was another one.
    async fn claim(&self, user: &str, session: Uuid) -> Result<Option<String>, BusError>;

    /// Re-announces every connection this node holds (after the bus lost its state).
    async fn claim_all(&self, entries: &[(Arc<str>, Uuid)]) -> Result<(), BusError>;

    /// Removes `session`'s entry if it still names this node.
    async fn release(&self, user: &str, session: Uuid) -> Result<(), BusError>;

    /// Where `user`'s sessions are connected, on live nodes only (entries of dead nodes are
    /// dropped as they are found).
    async fn locate(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError>;

    /// [`Bus::locate`] for a revocation about to be routed: the same answer, read over the
    /// control lane, so a revoke never queues behind presence or cache traffic (a node
    /// re-announcing thousands of connections, a burst of cache fills).
    async fn route(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError>;

    /// Renews this node's liveness key (with its TTL) and its published stats.
    async fn heartbeat(&self, info: &NodeInfo) -> Result<Liveness, BusError>;

    /// Nodes whose liveness key is present.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError>;

    /// Deletes this node's liveness key (clean shutdown), so peers see it gone at once.
    async fn leave(&self) -> Result<(), BusError>;

    /// The breaker's state and counts. A bus that cannot fail (in-process) is always closed.
    fn health(&self) -> BusHealth {
        BusHealth::default()
    }
}

/// The cached form of a record, versioned so a node of another release reads a miss, not garbage.
const CACHE_FORMAT: u8 = 1;

pub(crate) fn encode_record(record: &SessionRecord) -> Vec<u8> {
    let mut out = vec![CACHE_FORMAT];
    // A record always serializes (plain data, string keys).
    out.extend(serde_json::to_vec(record).unwrap_or_default());
    out
}

pub(crate) fn decode_record(bytes: &[u8]) -> Option<SessionRecord> {
    match bytes.split_first() {
        Some((&CACHE_FORMAT, rest)) => serde_json::from_slice(rest).ok(),
        _ => None,
    }
}

/// Epoch milliseconds of the system clock (message timestamps, for delivery latency).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
