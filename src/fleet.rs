//! This node as a member of the fleet: it routes revocations to whichever node holds the
//! connection, receives the control messages addressed to it, keeps its presence entries and
//! liveness key, and reconciles its live connections against the store (those two loops are in
//! [`maintenance`]).
//!
//! Revocation path (docs/operations.md, "Several nodes"): the store commits, the cache is
//! invalidated, then [`Fleet`] pushes to a local connection or looks the session up in the presence directory and sends a
//! `revoke` to its node. Connection path: register locally, claim the directory entry, then
//! re-read the session. Either the revoker's lookup sees the claim (and sends to us) or our
//! re-read comes after the revoker's invalidation (and sees the revocation): no connection
//! survives a revocation that has returned, even one racing it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::bus::{now_ms, Bus, Control, Inbox, NodeInfo};
use crate::clock::Clock;
use crate::metrics::{BusKind, BusOp, Metrics, PushKind};
use crate::registry::{LiveConnection, LiveConnections, Push};
use crate::session::store::Store;
use crate::session::{RevocationListener, SessionRecord};

mod maintenance;

/// How the node keeps in touch with the cluster.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// How often the liveness key is renewed (and peers' liveness re-read). Must be well under
    /// the bus's liveness TTL.
    pub heartbeat_interval: Duration,
    /// How often every live connection is checked against the store, catching revocations whose
    /// push was lost while the bus was down. Also runs whenever the bus comes back.
    pub reconcile_interval: Duration,
    /// The address this node serves on, published in its liveness key.
    pub advertised_addr: String,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            reconcile_interval: Duration::from_secs(30),
            advertised_addr: String::new(),
        }
    }
}

/// Ids the reconciliation sends to the store per query.
const RECONCILE_BATCH: usize = 1000;

pub struct Fleet {
    bus: Arc<dyn Bus>,
    registry: Arc<LiveConnections>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    config: FleetConfig,
    started_at_ms: i64,
    /// Wakes the maintenance loop for an immediate reconciliation (the bus came back).
    reconcile_now: Notify,
    /// The last beat failed: the next good one re-announces presence and reconciles.
    degraded: AtomicBool,
    /// The bus breaker's trip count at the last beat: a trip since means request paths skipped
    /// Redis for a while (claims, revocation routing), even if no beat failed.
    trips_seen: AtomicU64,
    /// Presence entries of closed connections that could not be removed (the bus was down):
    /// retried at every good beat. Left alone, such an entry names a live node, so its session
    /// would read online everywhere until it reconnected. A std mutex, never held across an await.
    releases: Mutex<HashSet<(Arc<str>, Uuid)>>,
}

impl Fleet {
    pub fn new(
        bus: Arc<dyn Bus>,
        registry: Arc<LiveConnections>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        config: FleetConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            bus,
            registry,
            store,
            metrics,
            clock,
            config,
            started_at_ms: now_ms(),
            reconcile_now: Notify::new(),
            degraded: AtomicBool::new(false),
            trips_seen: AtomicU64::new(0),
            releases: Mutex::new(HashSet::new()),
        })
    }

    pub fn registry(&self) -> &Arc<LiveConnections> {
        &self.registry
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    pub fn node_id(&self) -> &str {
        self.bus.node_id()
    }

    /// Joins the fleet: subscribes to this node's channel and writes the first liveness key.
    pub async fn join(self: &Arc<Self>) -> Result<(), crate::bus::BusError> {
        self.bus.subscribe(self.clone()).await?;
        self.bus.heartbeat(&self.info()).await?;
        self.metrics.set_bus_connected(true);
        Ok(())
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id().to_owned(),
            addr: self.config.advertised_addr.clone(),
            connections: self.registry.len() as u64,
            started_at_ms: self.started_at_ms,
        }
    }

    /// A connection was registered here: claims its directory entry and closes an older
    /// connection of the same session on another node.
    pub async fn connected(&self, conn: &LiveConnection) {
        match self.bus.claim(&conn.user_id, conn.session_id).await {
            Ok(Some(previous)) => {
                let msg = Control::Replace { session: conn.session_id, since_ms: conn.since_ms, sent_ms: now_ms() };
                self.send(&previous, &msg).await;
            }
            Ok(None) => {}
            Err(e) => {
                self.metrics.bus_error(BusOp::Claim);
                tracing::debug!(error = %e, "presence claim failed; re-announced when the bus is back");
            }
        }
    }

    /// A connection ended here: drops its directory entry unless a newer one took it.
    pub async fn disconnected(&self, conn: &LiveConnection) {
        if self.registry.get(&conn.session_id).is_some() {
            return; // replaced by a newer connection on this node, which owns the entry
        }
        if let Err(e) = self.bus.release(&conn.user_id, conn.session_id).await {
            self.metrics.bus_error(BusOp::Release);
            tracing::debug!(error = %e, "presence release failed; retried at the next good heartbeat");
            self.releases
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((conn.user_id.clone(), conn.session_id));
        }
    }

    /// Retries the presence releases that failed, until one fails again. A session connected
    /// here again meanwhile owns its entry: its release is dropped.
    async fn retry_releases(&self) {
        let pending: Vec<(Arc<str>, Uuid)> =
            self.releases.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        for (user, session) in pending {
            if self.registry.get(&session).is_none() {
                if let Err(e) = self.bus.release(&user, session).await {
                    self.metrics.bus_error(BusOp::Release);
                    tracing::debug!(error = %e, "presence release failed again; retrying next beat");
                    return;
                }
            }
            self.releases.lock().unwrap_or_else(PoisonError::into_inner).remove(&(user, session));
        }
    }

    /// Sessions of `user` with a live connection anywhere in the cluster. Falls back to this
    /// node's own connections when the bus cannot answer.
    pub async fn online_sessions(&self, user: &str) -> HashSet<Uuid> {
        let mut online: HashSet<Uuid> = self.registry.sessions_of(user).into_iter().collect();
        match self.bus.locate(user).await {
            Ok(found) => online.extend(found.into_keys()),
            Err(e) => {
                self.metrics.bus_error(BusOp::Locate);
                tracing::debug!(error = %e, "presence lookup failed; answering for this node only");
            }
        }
        online
    }

    /// Live nodes with their stats (this one included even if the bus cannot answer).
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        match self.bus.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => {
                self.metrics.bus_error(BusOp::Nodes);
                tracing::debug!(error = %e, "cannot list nodes");
                vec![self.info()]
            }
        }
    }

    async fn send(&self, node: &str, msg: &Control) {
        match self.bus.send(node, msg).await {
            Ok(()) => self.metrics.bus_published(bus_kind(msg)),
            Err(e) => {
                self.metrics.bus_error(BusOp::Publish);
                tracing::debug!(error = %e, node, "control message lost; reconciliation will catch up");
            }
        }
    }

    fn push_local(&self, session: &Uuid, reason: &Arc<str>) -> bool {
        match self.registry.get(session) {
            Some(conn) => {
                let sent = conn.push(Push::Revoked(reason.clone()));
                self.metrics.pushed(PushKind::Revoked, sent);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl RevocationListener for Fleet {
    async fn revoked(&self, sessions: &[SessionRecord], reason: &str) {
        let reason: Arc<str> = Arc::from(reason);
        let mut by_user: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for s in sessions {
            if !self.push_local(&s.id, &reason) {
                by_user.entry(s.user_id.as_str()).or_default().push(s.id);
            }
        }
        let mut by_node: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (user, ids) in by_user {
            let located = match self.bus.route(user).await {
                Ok(located) => located,
                Err(e) => {
                    self.metrics.bus_error(BusOp::Locate);
                    tracing::debug!(error = %e, "cannot locate connections to revoke; reconciliation will");
                    continue;
                }
            };
            for id in ids {
                match located.get(&id) {
                    Some(node) if node != self.node_id() => by_node.entry(node.clone()).or_default().push(id),
                    _ => {}
                }
            }
        }
        for (node, sessions) in by_node {
            let msg = Control::Revoke { sessions, reason: reason.to_string(), sent_ms: now_ms() };
            self.send(&node, &msg).await;
        }
    }
}

impl Inbox for Fleet {
    fn deliver(&self, msg: Control) {
        self.metrics.bus_received(bus_kind(&msg));
        self.metrics.bus_delivery((now_ms() - msg.sent_ms()).max(0) as f64 / 1000.0);
        match msg {
            Control::Revoke { sessions, reason, .. } => {
                let reason: Arc<str> = Arc::from(reason);
                for id in &sessions {
                    self.push_local(id, &reason);
                }
            }
            Control::Replace { session, since_ms, .. } => {
                if let Some(conn) = self.registry.get(&session).filter(|c| c.since_ms <= since_ms) {
                    let sent = conn.push(Push::Replaced);
                    self.metrics.pushed(PushKind::Replaced, sent);
                }
            }
        }
    }

    fn resubscribed(&self) {
        self.reconcile_now.notify_one();
    }
}

/// The metric label of a control message.
fn bus_kind(msg: &Control) -> BusKind {
    match msg {
        Control::Revoke { .. } => BusKind::Revoke,
        Control::Replace { .. } => BusKind::Replace,
    }
}
