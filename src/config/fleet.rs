//! `[redis]` and `[fleet]`: the cross-node bus and this node's membership of the fleet (liveness
//! beats, reconciliation). Defaults are [`RedisOptions::default`]'s and
//! [`FleetConfig::default`]'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{millis, ms, Secret};
use crate::bus::redis::RedisOptions;
use crate::fleet::FleetConfig;

/// `[redis]`: the bus, the presence directory and the session cache shared by the nodes.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:6379` for several nodes; several comma-separated URLs are a Redis Cluster's
    /// seed nodes. Unset: a single node with an in-process bus.
    #[arg(id = "redis.url", long = "redis-url", env = "REDIS_URL", hide_env_values = true)]
    pub url: Option<Secret>,
    /// Prefix of every Redis key and channel, one per deployment.
    #[arg(id = "redis.prefix", long = "redis-prefix", env = "REDIS_PREFIX")]
    pub prefix: String,
    /// Longest wait for one Redis call, reconnecting included, in ms. After a failure requests
    /// skip Redis (and use the store) until the next heartbeat reaches it, so a request waits
    /// this long at most once per outage.
    #[arg(id = "redis.timeout_ms", long = "redis-timeout-ms", env = "REDIS_TIMEOUT_MS")]
    pub timeout_ms: u64,
    /// Maximum age of a session cache entry, in seconds, from the store read that filled it
    /// (reads never extend it): the longest a revocation can go unseen by other nodes when its
    /// node cannot reach Redis (docs/operations.md, "The session cache").
    #[arg(id = "redis.cache_ttl_secs", long = "cache-ttl-secs", env = "CACHE_TTL_SECS")]
    pub cache_ttl_secs: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        let d = RedisOptions::default();
        Self { url: None, prefix: d.prefix, timeout_ms: millis(d.timeout), cache_ttl_secs: d.cache_ttl.as_secs() }
    }
}

/// `[fleet]`: this node among the others.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// How often a node renews its liveness key, in ms.
    #[arg(id = "fleet.heartbeat_ms", long = "node-heartbeat-ms", env = "NODE_HEARTBEAT_MS")]
    pub heartbeat_ms: u64,
    /// TTL of the liveness key, in ms, at least twice the heartbeat: a dead node's sessions read
    /// offline within this plus one heartbeat.
    #[arg(id = "fleet.liveness_ttl_ms", long = "node-liveness-ttl-ms", env = "NODE_LIVENESS_TTL_MS")]
    pub liveness_ttl_ms: u64,
    /// How often each node re-checks its live connections against the store, in ms (also run
    /// when Redis comes back).
    #[arg(id = "fleet.reconcile_interval_ms", long = "reconcile-interval-ms", env = "RECONCILE_INTERVAL_MS")]
    pub reconcile_interval_ms: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        let d = FleetConfig::default();
        Self {
            heartbeat_ms: millis(d.heartbeat_interval),
            liveness_ttl_ms: millis(RedisOptions::default().liveness_ttl),
            reconcile_interval_ms: millis(d.reconcile_interval),
        }
    }
}

/// The fleet membership, the liveness TTL (for the in-process bus too) and, when a URL is set,
/// the Redis bus.
pub(super) type Resolved = (FleetConfig, Duration, Option<RedisOptions>);

impl FleetSettings {
    /// Checks that a live node cannot read dead between two beats, and builds the parts' configs.
    pub(super) fn resolve(&self, redis: &RedisSettings) -> anyhow::Result<Resolved> {
        let heartbeat = ms(self.heartbeat_ms);
        let ttl = ms(self.liveness_ttl_ms);
        anyhow::ensure!(ttl >= heartbeat * 2, "fleet.liveness_ttl_ms must be at least twice fleet.heartbeat_ms");
        let fleet = FleetConfig {
            heartbeat_interval: heartbeat,
            reconcile_interval: ms(self.reconcile_interval_ms),
            ..FleetConfig::default()
        };
        let redis = redis.url.as_ref().map(|url| RedisOptions {
            url: url.clone(),
            prefix: redis.prefix.clone(),
            liveness_ttl: ttl,
            cache_ttl: Duration::from_secs(redis.cache_ttl_secs.max(1)),
            timeout: ms(redis.timeout_ms),
        });
        Ok((fleet, ttl, redis))
    }
}
