//! The in-process bus: a [`MemoryHub`] shared by the nodes of one process. The embedded default
//! runs one node on it; tests run several. Same semantics as the Redis bus, including liveness
//! that lapses when a node stops beating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use uuid::Uuid;

use super::{Bus, BusError, Control, Inbox, Liveness, NodeInfo};
use crate::session::cache::{CacheError, Cached, SessionCache, Ticket};
use crate::session::SessionRecord;

/// Cache entries kept at most; past that, reads still work (from the store) but are not cached.
const CACHE_CAPACITY: usize = 200_000;
/// A version-only entry (an invalidated session nobody read since) is dropped after this long;
/// readers' tickets live for one store read, far less.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// How often the nodes' heartbeats purge the cache.
const PURGE_EVERY: Duration = Duration::from_secs(30);

struct CacheEntry {
    version: u64,
    record: Option<SessionRecord>,
    touched: Instant,
}

/// What the nodes of one process share.
pub struct MemoryHub {
    inboxes: DashMap<String, Arc<dyn Inbox>>,
    /// user -> session -> node. A std Mutex per user entry is not needed: DashMap shards lock.
    presence: DashMap<String, HashMap<Uuid, String>>,
    /// node -> (info, liveness deadline).
    nodes: DashMap<String, (NodeInfo, Instant)>,
    cache: DashMap<Uuid, CacheEntry>,
    liveness_ttl: Duration,
    /// When the cache was last purged (a std Mutex: held for a check, never across an await).
    purged: Mutex<Instant>,
}

impl MemoryHub {
    pub fn new(liveness_ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            inboxes: DashMap::new(),
            presence: DashMap::new(),
            nodes: DashMap::new(),
            cache: DashMap::new(),
            liveness_ttl,
            purged: Mutex::new(Instant::now()),
        })
    }

    fn is_live(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.1 > Instant::now())
    }

    /// Purges the cache if it has not been for [`PURGE_EVERY`].
    fn maybe_purge(&self) {
        let mut purged = self.purged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if purged.elapsed() >= PURGE_EVERY {
            *purged = Instant::now();
            drop(purged);
            self.purge_cache(chrono::Utc::now());
        }
    }

    /// Drops cache entries that can no longer matter: inactive records, and counters nobody read.
    pub fn purge_cache(&self, now: chrono::DateTime<chrono::Utc>) {
        self.cache.retain(|_, e| match &e.record {
            Some(r) => r.is_active(now),
            None => e.touched.elapsed() < TOMBSTONE_TTL,
        });
    }
}

/// One node's handle on a [`MemoryHub`].
pub struct MemoryBus {
    hub: Arc<MemoryHub>,
    node: String,
}

impl MemoryBus {
    pub fn new(hub: Arc<MemoryHub>) -> Self {
        Self { hub, node: Uuid::new_v4().simple().to_string() }
    }

    pub fn hub(&self) -> &Arc<MemoryHub> {
        &self.hub
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn subscribe(&self, inbox: Arc<dyn Inbox>) -> Result<(), BusError> {
        self.hub.inboxes.insert(self.node.clone(), inbox);
        Ok(())
    }

    async fn send(&self, node: &str, msg: &Control) -> Result<(), BusError> {
        // Like Redis pub/sub: a message for a node nobody listens for is dropped.
        let inbox = self.hub.inboxes.get(node).map(|i| i.clone());
        if let Some(inbox) = inbox {
            inbox.deliver(msg.clone());
        }
        Ok(())
    }

    async fn claim(&self, user: &str, session: Uuid) -> Result<Option<String>, BusError> {
        let previous = self.hub.presence.entry(user.to_owned()).or_default().insert(session, self.node.clone());
        Ok(previous.filter(|p| *p != self.node))
    }

    async fn claim_all(&self, entries: &[(Arc<str>, Uuid)]) -> Result<(), BusError> {
        for (user, session) in entries {
            self.claim(user, *session).await?;
        }
        Ok(())
    }

    async fn release(&self, user: &str, session: Uuid) -> Result<(), BusError> {
        self.hub.presence.remove_if_mut(user, |_, sessions| {
            if sessions.get(&session).is_some_and(|n| *n == self.node) {
                sessions.remove(&session);
            }
            sessions.is_empty()
        });
        Ok(())
    }

    async fn locate(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        let Some(mut sessions) = self.hub.presence.get_mut(user) else { return Ok(HashMap::new()) };
        sessions.retain(|_, node| self.hub.is_live(node));
        Ok(sessions.clone())
    }

    async fn route(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        // One process, no connections to queue on: the lanes are the same.
        self.locate(user).await
    }

    async fn heartbeat(&self, info: &NodeInfo) -> Result<Liveness, BusError> {
        self.hub.maybe_purge();
        let deadline = Instant::now() + self.hub.liveness_ttl;
        let previous = self.hub.nodes.insert(self.node.clone(), (info.clone(), deadline));
        let renewed = previous.is_some_and(|(_, d)| d > Instant::now());
        Ok(if renewed { Liveness::Renewed } else { Liveness::Recreated })
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        let now = Instant::now();
        self.hub.nodes.retain(|_, (_, deadline)| *deadline > now);
        let mut nodes: Vec<NodeInfo> = self.hub.nodes.iter().map(|n| n.0.clone()).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn leave(&self) -> Result<(), BusError> {
        self.hub.nodes.remove(&self.node);
        self.hub.inboxes.remove(&self.node);
        Ok(())
    }
}

#[async_trait]
impl SessionCache for MemoryBus {
    async fn get(&self, id: Uuid) -> Result<Cached, CacheError> {
        Ok(match self.hub.cache.get(&id) {
            Some(e) => match &e.record {
                Some(r) => Cached::Hit(Box::new(r.clone())),
                None => Cached::Miss(Ticket::new(id, e.version)),
            },
            None => Cached::Miss(Ticket::new(id, 0)),
        })
    }

    async fn fill(&self, ticket: Ticket, record: &SessionRecord) -> Result<(), CacheError> {
        if ticket.issued.elapsed() >= TOMBSTONE_TTL {
            return Ok(()); // the counter it saw may have been purged and counted again from 0
        }
        let full = self.hub.cache.len() >= CACHE_CAPACITY;
        match self.hub.cache.entry(ticket.session) {
            dashmap::Entry::Occupied(mut e) if e.get().version == ticket.version => {
                e.get_mut().record = Some(record.clone());
                e.get_mut().touched = Instant::now();
            }
            dashmap::Entry::Vacant(e) if ticket.version == 0 && !full => {
                e.insert(CacheEntry { version: 0, record: Some(record.clone()), touched: Instant::now() });
            }
            _ => {}
        }
        Ok(())
    }

    async fn invalidate(&self, ids: &[Uuid]) -> Result<(), CacheError> {
        for id in ids {
            let mut entry =
                self.hub.cache.entry(*id).or_insert(CacheEntry { version: 0, record: None, touched: Instant::now() });
            entry.version += 1;
            entry.record = None;
            entry.touched = Instant::now();
        }
        Ok(())
    }
}
