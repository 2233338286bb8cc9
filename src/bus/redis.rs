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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, ProtocolVersion, PushKind, Script};
use uuid::Uuid;

use super::{
    decode_record, encode_record, Bus, BusError, Cached, Control, Inbox, Liveness, NodeInfo, SessionCache, Ticket,
};
use crate::config::Secret;
use crate::session::SessionRecord;

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
    /// How long a cached record lives without being read or changed.
    pub cache_ttl: Duration,
    /// Longest wait for one Redis command before the caller degrades.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            url: Secret("redis://127.0.0.1:6379".into()),
            prefix: "session".into(),
            liveness_ttl: Duration::from_secs(3),
            cache_ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(500),
        }
    }
}

/// A connection of either kind. Both are cheap handles over a multiplexed connection.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BusError> {
        let result = match self {
            Self::Single(c) => cmd.query_async(&mut c.clone()).await,
            Self::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        };
        result.map_err(unavailable)
    }

    async fn script<T: FromRedisValue>(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<T, BusError> {
        let result = match self {
            Self::Single(c) => invocation.invoke_async(&mut c.clone()).await,
            Self::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        };
        result.map_err(unavailable)
    }
}

fn unavailable(e: redis::RedisError) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Where to connect, parsed once.
#[derive(Clone)]
enum Target {
    Single(redis::Client),
    Cluster(Vec<String>),
}

impl Target {
    fn parse(url: &str) -> Result<Self, BusError> {
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        let bad = |e: redis::RedisError| BusError::Backend(format!("REDIS_URL: {e}"));
        match urls.as_slice() {
            [] => Err(BusError::Backend("REDIS_URL is empty".into())),
            [one] => {
                let info = redis::IntoConnectionInfo::into_connection_info(one.as_str()).map_err(bad)?;
                let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                Ok(Self::Single(redis::Client::open(info.set_redis_settings(settings)).map_err(bad)?))
            }
            many => Ok(Self::Cluster(many.to_vec())),
        }
    }

    /// A connection; `push` receives pub/sub messages and disconnection notices.
    async fn connect(
        &self,
        timeout: Duration,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<Conn, BusError> {
        match self {
            Self::Single(client) => {
                let mut config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                if let Some(tx) = push {
                    config = config.set_push_sender(tx).set_automatic_resubscription();
                }
                let conn = client.get_connection_manager_with_config(config).await.map_err(unavailable)?;
                Ok(Conn::Single(conn))
            }
            Self::Cluster(urls) => {
                let mut builder = ClusterClientBuilder::new(urls.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(tx) = push {
                    builder = builder.push_sender(tx);
                }
                let client = builder.build().map_err(unavailable)?;
                Ok(Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?))
            }
        }
    }
}

pub struct RedisBus {
    node: String,
    prefix: String,
    options: RedisOptions,
    target: Target,
    data: Conn,
    control: Conn,
    subscriber: OnceLock<Conn>,
    /// Nodes seen alive at the last beat (this one always counts). A `std` RwLock: held for a
    /// lookup or a swap, never across an await.
    live: RwLock<HashSet<String>>,
    /// Invalidations that could not reach Redis; replayed at every beat until they do. Until
    /// then this node does not trust the cache for those sessions.
    pending: Mutex<HashSet<Uuid>>,
    scripts: Scripts,
}

struct Scripts {
    claim: Script,
    release: Script,
    fill: Script,
    invalidate: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // Returns the node that held the session before, if any.
            claim: Script::new(
                "local old = redis.call('HGET', KEYS[1], ARGV[1]) \
                 redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
                 redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
                 return old",
            ),
            // Removes the entry only if it still names this node (a newer connection elsewhere wins).
            release: Script::new(
                "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
                   return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
            ),
            // Fills only if the counter is still the one the reader saw at its miss.
            fill: Script::new(
                "if (redis.call('HGET', KEYS[1], 'v') or '0') == ARGV[1] then \
                   redis.call('HSET', KEYS[1], 'd', ARGV[2]) redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
                   return 1 end return 0",
            ),
            invalidate: Script::new(
                "redis.call('HINCRBY', KEYS[1], 'v', 1) redis.call('HDEL', KEYS[1], 'd') \
                 redis.call('PEXPIRE', KEYS[1], ARGV[1]) return 1",
            ),
        }
    }
}

/// A ticket no fill accepts: the session has an invalidation this node could not deliver.
const UNFILLABLE: u64 = u64::MAX;

impl RedisBus {
    /// Connects the data and control connections; the subscriber connects in
    /// [`Bus::subscribe`]. Fails if Redis cannot be reached at start-up.
    pub async fn connect(options: RedisOptions) -> Result<Self, BusError> {
        let target = Target::parse(&options.url.0)?;
        let data = target.connect(options.timeout, None).await?;
        let control = target.connect(options.timeout, None).await?;
        let node = Uuid::new_v4().simple().to_string();
        Ok(Self {
            live: RwLock::new(HashSet::from([node.clone()])),
            node,
            prefix: options.prefix.clone(),
            options,
            target,
            data,
            control,
            subscriber: OnceLock::new(),
            pending: Mutex::new(HashSet::new()),
            scripts: Scripts::new(),
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
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
        self.live.read().unwrap_or_else(|e| e.into_inner()).contains(node)
    }

    /// Whether `node` is alive, asking Redis (over `lane`) about nodes this one has not seen yet
    /// (a node that started since the last beat).
    async fn check_live(&self, lane: &Conn, node: &str) -> Result<bool, BusError> {
        if self.is_live(node) {
            return Ok(true);
        }
        let exists: bool = lane.query(redis::cmd("EXISTS").arg(self.node_key(node))).await?;
        if exists {
            self.live.write().unwrap_or_else(|e| e.into_inner()).insert(node.to_owned());
        }
        Ok(exists)
    }

    /// Where `user`'s sessions are connected on live nodes, read over `lane`; ghosts of dead
    /// nodes are dropped as they are found.
    async fn locate_on(&self, lane: &Conn, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        let key = self.presence_key(user);
        let entries: HashMap<String, String> = lane.query(redis::cmd("HGETALL").arg(&key)).await?;
        let mut found = HashMap::with_capacity(entries.len());
        for (session, node) in entries {
            let Ok(session) = session.parse::<Uuid>() else { continue };
            if self.check_live(lane, &node).await? {
                found.insert(session, node);
            } else {
                // A dead node's ghost: drop it, unless a live node took the session meanwhile.
                let mut invocation = self.scripts.release.key(&key);
                invocation.arg(session.to_string()).arg(&node);
                lane.script::<i64>(&invocation).await?;
            }
        }
        Ok(found)
    }

    /// Replays invalidations that failed earlier.
    async fn flush_pending(&self) -> Result<(), BusError> {
        let ids: Vec<Uuid> = self.pending.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        for id in ids {
            self.invalidate_one(id).await?;
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
        Ok(())
    }

    async fn invalidate_one(&self, id: Uuid) -> Result<(), BusError> {
        let mut invocation = self.scripts.invalidate.key(self.cache_key(id));
        invocation.arg(Self::ms(self.options.cache_ttl));
        self.data.script::<i64>(&invocation).await.map(|_| ())
    }
}

/// Reads pushes from the subscriber connection and hands control messages to the inbox.
async fn receive(mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>, inbox: Arc<dyn Inbox>) {
    let lost = AtomicBool::new(false);
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let payload = push.data.get(1).and_then(|v| Vec::<u8>::from_redis_value(v.clone()).ok());
                match payload.as_deref().map(serde_json::from_slice::<Control>) {
                    Some(Ok(msg)) => inbox.deliver(msg),
                    _ => tracing::warn!("ignoring a malformed control message"),
                }
            }
            PushKind::Disconnection if !lost.swap(true, Ordering::Relaxed) => {
                tracing::warn!("bus subscription lost; reconnecting");
            }
            PushKind::Subscribe | PushKind::SSubscribe if lost.swap(false, Ordering::Relaxed) => {
                tracing::info!("bus subscription restored");
                inbox.resubscribed();
            }
            _ => {}
        }
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
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let conn = self.target.connect(self.options.timeout, Some(tx)).await?;
        let channel = self.channel(&self.node);
        let subscribed = match &conn {
            Conn::Single(c) => c.clone().subscribe(&channel).await,
            Conn::Cluster(c) => c.clone().ssubscribe(&channel).await,
        };
        subscribed.map_err(unavailable)?;
        tokio::spawn(receive(rx, inbox));
        let _ = self.subscriber.set(conn);
        Ok(())
    }

    async fn send(&self, node: &str, msg: &Control) -> Result<(), BusError> {
        let payload = serde_json::to_vec(msg).map_err(|e| BusError::Backend(e.to_string()))?;
        let verb = if self.is_cluster() { "SPUBLISH" } else { "PUBLISH" };
        self.control.query::<i64>(redis::cmd(verb).arg(self.channel(node)).arg(payload)).await.map(|_| ())
    }

    async fn claim(&self, user: &str, session: Uuid) -> Result<Option<String>, BusError> {
        let mut invocation = self.scripts.claim.key(self.presence_key(user));
        invocation.arg(session.to_string()).arg(&self.node).arg(Self::ms(Duration::from_secs(86_400)));
        let previous: Option<String> = self.data.script(&invocation).await?;
        Ok(previous.filter(|p| *p != self.node))
    }

    async fn claim_all(&self, entries: &[(Arc<str>, Uuid)]) -> Result<(), BusError> {
        for chunk in entries.chunks(256) {
            let claims = chunk.iter().map(|(user, session)| self.claim(user, *session));
            futures::future::try_join_all(claims).await?;
        }
        Ok(())
    }

    async fn release(&self, user: &str, session: Uuid) -> Result<(), BusError> {
        let mut invocation = self.scripts.release.key(self.presence_key(user));
        invocation.arg(session.to_string()).arg(&self.node);
        self.data.script::<i64>(&invocation).await.map(|_| ())
    }

    async fn locate(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        self.locate_on(&self.data, user).await
    }

    async fn route(&self, user: &str) -> Result<HashMap<Uuid, String>, BusError> {
        self.locate_on(&self.control, user).await
    }

    async fn heartbeat(&self, info: &NodeInfo) -> Result<Liveness, BusError> {
        let value = serde_json::to_string(info).map_err(|e| BusError::Backend(e.to_string()))?;
        let ttl = Self::ms(self.options.liveness_ttl);
        let previous: Option<String> = self
            .data
            .query(redis::cmd("SET").arg(self.node_key(&self.node)).arg(value).arg("PX").arg(ttl).arg("GET"))
            .await?;
        if previous.is_none() {
            self.data.query::<i64>(redis::cmd("SADD").arg(self.nodes_key()).arg(&self.node)).await?;
        }
        // Keeps the subscriber's connection tried, so it reconnects (and resubscribes) as soon
        // as Redis is back rather than at its next message.
        if let Some(Conn::Single(c)) = self.subscriber.get() {
            let _: Result<String, _> = redis::cmd("PING").query_async(&mut c.clone()).await;
        }
        self.flush_pending().await?;
        let live: HashSet<String> = self.nodes().await?.into_iter().map(|n| n.id).collect();
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = live;
        Ok(if previous.is_none() { Liveness::Recreated } else { Liveness::Renewed })
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        let ids: Vec<String> = self.data.query(redis::cmd("SMEMBERS").arg(self.nodes_key())).await?;
        let gets: Vec<redis::Cmd> = ids
            .iter()
            .map(|id| {
                let mut get = redis::cmd("GET");
                get.arg(self.node_key(id));
                get
            })
            .collect();
        let values = futures::future::try_join_all(gets.iter().map(|c| self.data.query::<Option<String>>(c))).await?;
        let mut nodes = Vec::with_capacity(ids.len());
        for (id, value) in ids.iter().zip(values) {
            match value.and_then(|v| serde_json::from_str::<NodeInfo>(&v).ok()) {
                Some(info) => nodes.push(info),
                None => self.data.query::<i64>(redis::cmd("SREM").arg(self.nodes_key()).arg(id)).await.map(|_| ())?,
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn leave(&self) -> Result<(), BusError> {
        self.data.query::<i64>(redis::cmd("DEL").arg(self.node_key(&self.node))).await?;
        self.data.query::<i64>(redis::cmd("SREM").arg(self.nodes_key()).arg(&self.node)).await.map(|_| ())
    }
}

#[async_trait]
impl SessionCache for RedisBus {
    async fn get(&self, id: Uuid) -> Result<Cached, BusError> {
        if self.pending.lock().unwrap_or_else(|e| e.into_inner()).contains(&id) {
            return Ok(Cached::Miss(Ticket { session: id, version: UNFILLABLE }));
        }
        let (version, data): (Option<u64>, Option<Vec<u8>>) =
            self.data.query(redis::cmd("HMGET").arg(self.cache_key(id)).arg("v").arg("d")).await?;
        match data.as_deref().and_then(decode_record) {
            Some(record) => Ok(Cached::Hit(Box::new(record))),
            None => Ok(Cached::Miss(Ticket { session: id, version: version.unwrap_or(0) })),
        }
    }

    async fn fill(&self, ticket: Ticket, record: &SessionRecord) -> Result<(), BusError> {
        if ticket.version == UNFILLABLE {
            return Ok(());
        }
        let mut invocation = self.scripts.fill.key(self.cache_key(ticket.session));
        invocation.arg(ticket.version).arg(encode_record(record)).arg(Self::ms(self.options.cache_ttl));
        self.data.script::<i64>(&invocation).await.map(|_| ())
    }

    async fn invalidate(&self, ids: &[Uuid]) -> Result<(), BusError> {
        let results = futures::future::join_all(ids.iter().map(|id| self.invalidate_one(*id))).await;
        let mut first_error = None;
        for (id, result) in ids.iter().zip(results) {
            if let Err(e) = result {
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(*id);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
