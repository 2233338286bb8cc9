//! The bus contract, told once and run against every implementation: each story takes a
//! [`Nodes`] factory that makes nodes sharing one bus, and `bus_stories!` runs it as
//! `memory::<story>` (one in-process hub) and `redis::<story>` (the shared Redis at
//! `TEST_REDIS_URL`, under a key prefix of the test's own, removed afterwards). `cluster::all`
//! runs every story against a private three-master Redis Cluster. `redis_bus` holds what only the
//! Redis bus promises (its breaker, the cache's maximum age).

mod redis_bus;
mod stories;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use session_service::bus::memory::{MemoryBus, MemoryHub};
use session_service::bus::redis::{RedisBus, RedisOptions};
use session_service::bus::Bus;
use session_service::config::Secret;
use session_service::session::cache::SessionCache;

/// Liveness TTL in these tests: short, so a stopped node lapses quickly.
pub const TTL: Duration = Duration::from_millis(600);

/// A node's handle on the bus under test: both traits.
pub trait Node: Bus + SessionCache {}
impl<T: Bus + SessionCache> Node for T {}

/// Makes nodes that share one bus.
pub enum Nodes {
    Memory(Arc<MemoryHub>),
    Redis { url: String, prefix: String },
}

impl Nodes {
    pub async fn node(&self) -> Arc<dyn Node> {
        match self {
            Self::Memory(hub) => Arc::new(MemoryBus::new(hub.clone())),
            Self::Redis { url, prefix } => {
                let options = RedisOptions {
                    url: Secret(url.clone()),
                    prefix: prefix.clone(),
                    liveness_ttl: TTL,
                    ..RedisOptions::default()
                };
                Arc::new(RedisBus::connect(options).await.expect("connect to redis"))
            }
        }
    }
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Removes every key under `prefix` (the test's own), on one server.
pub async fn remove_keys(url: &str, prefix: &str) {
    let client = ::redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to redis");
    let keys: Vec<String> = ::redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.expect("keys");
    if !keys.is_empty() {
        let _: () = ::redis::cmd("DEL").arg(keys).query_async(&mut conn).await.expect("del");
    }
}

/// Runs a story to completion even if it fails, so its keys are removed either way.
pub async fn run(story: impl Future<Output = ()>) -> Result<(), Box<dyn Any + Send>> {
    AssertUnwindSafe(story).catch_unwind().await
}

macro_rules! bus_stories {
    ($($story:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    crate::stories::$story(crate::Nodes::Memory(
                        session_service::bus::memory::MemoryHub::new(crate::TTL),
                    ))
                    .await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let url = crate::redis_url();
                    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
                    let nodes = crate::Nodes::Redis { url: url.clone(), prefix: prefix.clone() };
                    let outcome = crate::run(crate::stories::$story(nodes)).await;
                    crate::remove_keys(&url, &prefix).await;
                    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
            )*
        }

        mod cluster {
            /// Every story on one private Redis Cluster, each under its own prefix.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn all() {
                let cluster = session_test_support::redis::RedisCluster::start(3).await;
                let url = cluster.urls().join(",");
                $(
                    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
                    crate::stories::$story(crate::Nodes::Redis { url: url.clone(), prefix }).await;
                )*
            }
        }
    };
}

bus_stories!(
    a_message_reaches_the_addressed_node_only,
    a_claim_returns_the_previous_node_and_a_release_removes_only_its_own_entry,
    a_node_that_stops_beating_drops_out_of_presence_and_the_node_list,
    a_revocation_route_names_the_node_of_each_live_connection,
    the_first_beat_recreates_and_later_beats_renew,
    claim_all_announces_every_connection_again,
    the_cache_serves_a_filled_record_until_it_is_invalidated,
    a_fill_racing_an_invalidation_is_refused,
    leaving_removes_the_node_at_once,
);
