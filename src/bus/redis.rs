//! The Redis bus: standalone Redis (one URL) or a Redis Cluster (several seed URLs,
//! comma-separated), over RESP3.
//!
//! Keys, under a configurable prefix `P` (one per deployment; tests use one each):
//! - `P:node:<id>`: liveness key of a node, its [`NodeInfo`] as JSON, with a TTL renewed every
//!   beat; `P:nodes`: the set of node ids, pruned of dead ones as they are found.
//! - `P:presence:<user>`: hash session -> node of the user's live connections.
//! - `P:s1:<session>`: the cache entry of a session: a hash with the invalidation counter `v` and
//!   the encoded record `d`.
//! - channel `P:ch:<node>`: the node's control channel (sharded pub/sub on a Cluster).
//!
//! Every key holds one thing and every script touches one key, so all of it works unchanged on a
//! Cluster, where keys spread over the shards. Three connections, so neither waits behind the
//! others: `data` (presence, cache, liveness), `control` (the directory lookups of revocations
//! and the control messages they publish) and the subscriber.
//!
//! Every call is over within [`RedisOptions::timeout`], and the data and control connections
//! share one circuit breaker ([`breaker`]): once Redis fails, request paths stop asking it until
//! the heartbeat's probe is answered, so an outage costs a request at most one timeout, once.

mod breaker;
mod cache;
mod link;
mod scripts;
mod subscriber;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use self::breaker::Breaker;
use self::cache::Pending;
use self::link::{Caller, Link, Target};
use self::scripts::Scripts;
use super::{Bus, BusError, BusHealth, Control, Inbox, Liveness, NodeInfo};
use crate::config::Secret;

/// Settings of the Redis bus.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// One `redis://` URL for a standalone server, several comma-separated for a Cluster. May
    /// carry a password, hence never shown in `Debug` output.
    pub url: Secret,
    pub prefix: String,
    /// TTL of a node's liveness key; a node that stops beating reads dead after at most this
    /// (plus one beat for peers to notice).
    pub liveness_ttl: Duration,
    /// Maximum age of a cached record: set when it is filled (after a store read), never
    /// extended by reads. Bounds how long a change whose invalidation could not reach Redis
    /// may go unseen by other nodes.
    pub cache_ttl: Duration,
    /// Longest wait for one Redis call, reconnection included. A call that fails or times out
    /// opens the breaker.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: Secret("redis://127.0.0.1:6379".into()),
            prefix: "session".into(),
            liveness_ttl: Duration::from_secs(3),
            cache_ttl: DEFAULT_CACHE_TTL,
            timeout: Duration::from_millis(500),
        }
    }
}

/// Default maximum age of a cache entry. Every session in use is read from the store about once
/// per three quarters of this period (entries live between half and all of it; one node refills
/// the shared entry for all), the price of the bound it puts on a missed invalidation. Measured
/// with 20,000 sessions validated at 10,000/s: p99 3.2 ms with no expiry, 6.0 ms at 20 s,
/// 11.4 ms at 10 s (docs/performance.md, "Redis outage").
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(20);

/// Claims sent per round trip when re-announcing presence.
const CLAIM_BATCH: usize = 256;

pub struct RedisBus {
    node: String,
    prefix: String,
    options: RedisOptions,
    target: Target,
    /// Shared by `data` and `control`: one Redis, one verdict on whether it answers.
    breaker: Arc<Breaker>,
    data: Link,
    control: Link,
    subscriber: OnceLock<Link>,
    /// Nodes seen alive at the last beat (this one always counts). A `std` RwLock: held for a
    /// lookup or a swap, never across an await.
    live: RwLock<HashSet<String>>,
    /// Invalidations that could not reach Redis; replayed at every beat, before the breaker
    /// closes, until they do. Until then this node does not trust the cache for those sessions.
    pending: Pending,
    scripts: Scripts,
}

impl RedisBus {
    /// Connects the data and control connections; the subscriber connects in
    /// [`Bus::subscribe`]. Fails if Redis cannot be reached at start-up.
    pub async fn connect(options: RedisOptions) -> Result<Self, BusError> {
        let target = Target::parse(&options.url.0)?;
        let breaker = Arc::new(Breaker::default());
        let data = Link::new(target.connect(options.timeout, None).await?, options.timeout, breaker.clone());
        let control = Link::new(target.connect(options.timeout, None).await?, options.timeout, breaker.clone());
        let node = Uuid::new_v4().simple().to_string();
        Ok(Self {
            live: RwLock::new(HashSet::from([node.clone()])),
            node,
            prefix: options.prefix.clone(),
            options,
            target,
            breaker,
            data,
            control,
            subscriber: OnceLock::new(),
            pending: Pending::default(),
            scripts: Scripts::new(),
        })
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    fn presence_key(&self, user: &str) -> String {
        format!("{}:presence:{user}", self.prefix)
    }

    fn cache_key(&self, id: Uuid) -> String {
        format!("{}:s1:{id}", self.prefix)
    }

    fn channel(&self, node: &str) -> String {
        format!("{}:ch:{node}", self.prefix)
    }

    fn ms(d: Duration) -> u64 {
        d.as_millis().max(1) as u64
    }

    fn is_live(&self, node: &str) -> bool {
        self.live.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(node)
    }

    /// Whether `node` is alive, asking Redis (over `lane`) about nodes this one has not seen yet
    /// (a node that started since the last beat).
    async fn check_live(&self, lane: &Link, node: &str) -> Result<bool, BusError> {
        if self.is_live(node) {
            return Ok(true);
        }
        let exists: bool = lane.query(Caller::Request, redis::cmd("EXISTS").arg(self.node_key(node))).await?;
        if exists {
            self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(node.to_owned());
        }
        Ok(exists)
    }

    /// Where `user`'s sessions are connected on live nodes, read over `lane`; ghosts of dead
    /// nodes are dropped as they are found.
    async fn locate_on(&self, lane: &Link, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        let key = self.presence_key(user);
        let entries: HashMap<String, String> = lane.query(Caller::Request, redis::cmd("HGETALL").arg(&key)).await?;
        let mut found = HashMap::with_capacity(entries.len());
        for (session, node) in entries {
            let Ok(session) = session.parse::<Uuid>() else { continue };
            if self.check_live(lane, &node).await? {
                found.insert(session, node);
            } else {
                // A dead node's ghost: drop it, unless a live node took the session meanwhile.
                let mut invocation = self.scripts.release.key(&key);
                invocation.arg(session.to_string()).arg(&node);
                lane.script::<i64>(Caller::Request, &invocation).await?;
            }
        }
        Ok(found)
    }

    async fn claim_as(&self, caller: Caller, user: &str, session: Uuid) -> Result<Option<String>, BusError> {
        let mut invocation = self.scripts.claim.key(self.presence_key(user));
        invocation.arg(session.to_string()).arg(&self.node).arg(Self::ms(Duration::from_secs(86_400)));
        let previous: Option<String> = self.data.script(caller, &invocation).await?;
        Ok(previous.filter(|p| *p != self.node))
    }

    async fn nodes_as(&self, caller: Caller) -> Result<Vec<NodeInfo>, BusError> {
        let ids: Vec<String> = self.data.query(caller, redis::cmd("SMEMBERS").arg(self.nodes_key())).await?;
        let gets: Vec<redis::Cmd> = ids
            .iter()
            .map(|id| {
                let mut get = redis::cmd("GET");
                get.arg(self.node_key(id));
                get
            })
            .collect();
        let values =
            futures::future::try_join_all(gets.iter().map(|c| self.data.query::<Option<String>>(caller, c))).await?;
        let mut nodes = Vec::with_capacity(ids.len());
        for (id, value) in ids.iter().zip(values) {
            if let Some(info) = value.and_then(|v| serde_json::from_str::<NodeInfo>(&v).ok()) {
                nodes.push(info);
            } else {
                let forget = redis::cmd("SREM").arg(self.nodes_key()).arg(id).clone();
                self.data.query::<i64>(caller, &forget).await?;
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// The heartbeat's work after its probe on `data` was answered: the control connection is
    /// probed too (idle through an outage or a quick Redis restart, it may still be broken, and
    /// the first revocation after it would fail on it), then go the invalidations other nodes
    /// may be missing, then the breaker closes and request paths use Redis again.
    async fn recover(&self) -> Result<(), BusError> {
        self.control.probe::<String>(&redis::cmd("PING")).await?;
        let replayed = self.flush_pending().await?;
        if self.breaker.close() {
            tracing::info!(replayed, "Redis answers again: request paths use it again");
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn subscribe(&self, inbox: Arc<dyn Inbox>) -> Result<(), BusError> {
        self.subscribe_channel(inbox).await
    }

    async fn send(&self, node: &str, msg: &Control) -> Result<(), BusError> {
        let payload = serde_json::to_vec(msg).map_err(BusError::backend)?;
        let verb = if self.target.is_cluster() { "SPUBLISH" } else { "PUBLISH" };
        let publish = redis::cmd(verb).arg(self.channel(node)).arg(payload).clone();
        self.control.query::<i64>(Caller::Request, &publish).await.map(|_| ())
    }

    async fn claim(&self, user: &str, session: Uuid) -> Result<Option<String>, BusError> {
        self.claim_as(Caller::Request, user, session).await
    }

    async fn claim_all(&self, entries: &[(Arc<str>, Uuid)]) -> Result<(), BusError> {
        for chunk in entries.chunks(CLAIM_BATCH) {
            let claims = chunk.iter().map(|(user, session)| self.claim_as(Caller::Maintenance, user, *session));
            futures::future::try_join_all(claims).await?;
        }
        Ok(())
    }

    async fn release(&self, user: &str, session: Uuid) -> Result<(), BusError> {
        let mut invocation = self.scripts.release.key(self.presence_key(user));
        invocation.arg(session.to_string()).arg(&self.node);
        self.data.script::<i64>(Caller::Request, &invocation).await.map(|_| ())
    }

    async fn locate(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        self.locate_on(&self.data, user).await
    }

    async fn route(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        self.locate_on(&self.control, user).await
    }

    /// Also the breaker's probe: renewing the liveness key is asked whatever the breaker says,
    /// and once it is answered the pending invalidations go out before the breaker closes.
    async fn heartbeat(&self, info: &NodeInfo) -> Result<Liveness, BusError> {
        let value = serde_json::to_string(info).map_err(BusError::backend)?;
        let ttl = Self::ms(self.options.liveness_ttl);
        let renew = redis::cmd("SET").arg(self.node_key(&self.node)).arg(value).arg("PX").arg(ttl).arg("GET").clone();
        let previous: Option<String> = self.data.probe(&renew).await?;
        self.recover().await?;
        if previous.is_none() {
            let join = redis::cmd("SADD").arg(self.nodes_key()).arg(&self.node).clone();
            self.data.query::<i64>(Caller::Maintenance, &join).await?;
        }
        // Keeps the subscriber's connection tried, so it reconnects (and resubscribes) as soon
        // as Redis is back rather than at its next message. Its failure is the subscriber's own.
        if let Some(subscriber) = self.subscriber.get() {
            let _: Result<String, _> = subscriber.probe(&redis::cmd("PING")).await;
        }
        let live: HashSet<String> = self.nodes_as(Caller::Maintenance).await?.into_iter().map(|n| n.id).collect();
        *self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner) = live;
        Ok(if previous.is_none() { Liveness::Recreated } else { Liveness::Renewed })
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        self.nodes_as(Caller::Request).await
    }

    async fn leave(&self) -> Result<(), BusError> {
        let forget_key = redis::cmd("DEL").arg(self.node_key(&self.node)).clone();
        self.data.query::<i64>(Caller::Maintenance, &forget_key).await?;
        let forget_id = redis::cmd("SREM").arg(self.nodes_key()).arg(&self.node).clone();
        self.data.query::<i64>(Caller::Maintenance, &forget_id).await.map(|_| ())
    }

    fn health(&self) -> BusHealth {
        self.breaker.health()
    }
}
