//! A Redis Cluster of private servers, for the bus stories on a sharded Redis.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::{connect, RedisServer, POLL_INTERVAL};
use crate::expect_started;

/// How long a new cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// A Redis Cluster of masters only, each a [`RedisServer`] in cluster mode.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` (at least 3, as `redis-cli --cluster create` demands) cluster-enabled
    /// servers, joins them with the slots split evenly, and waits until every node reports
    /// `cluster_state:ok`.
    pub async fn start(masters: usize) -> RedisCluster {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters, not {masters}");
        let args: Vec<String> =
            ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
                .map(String::from)
                .into();
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(expect_started(RedisServer::start_with(args.clone(), true).await));
        }
        let cluster = RedisCluster { nodes };
        cluster.create().await;
        cluster.wait_ok().await;
        cluster
    }

    /// One `redis://` URL per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    async fn create(&self) {
        let addrs: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let run = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CLUSTER_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| panic!("redis-cli --cluster create took longer than {CLUSTER_TIMEOUT:?}"))
            .expect("cannot run redis-cli (is it on PATH?)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &self.nodes {
            loop {
                let info = cluster_info(&node.url()).await;
                if info.as_deref().is_some_and(|i| i.lines().any(|l| l.trim() == "cluster_state:ok")) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach state ok within {CLUSTER_TIMEOUT:?}; node {} says:\n{}",
                    node.port(),
                    info.unwrap_or_default()
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

/// `CLUSTER INFO` of one node, or `None` if it cannot be asked.
pub async fn cluster_info(url: &str) -> Option<String> {
    let mut con = connect(url).await?;
    redis::cmd("CLUSTER").arg("INFO").query_async(&mut con).await.ok()
}
