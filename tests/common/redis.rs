//! Private Redis servers for multi-node tests: a single [`RedisServer`] that a test can stop and
//! restart on the same port or freeze and thaw (to play an outage), a [`Proxy`] in front of one
//! (to cut some nodes off while others still reach it), and a [`RedisCluster`] of
//! cluster-enabled masters. Each process runs from `redis-server` on `PATH`, listens on a free loopback port, keeps
//! nothing on disk (`--save ""`, no AOF) and logs to a file in a fresh temporary directory; both are
//! gone when the value is dropped. The shared Redis on 6379 is never used. Include from a test
//! binary with `#[path = "../common/redis.rs"] mod redis;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[path = "proxy.rs"]
mod proxy;
#[allow(unused_imports)] // as above: not every binary cuts a node off
pub use proxy::{Mode, Proxy};

/// How long a server may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// A free port can be taken by someone else between our probe and redis binding it; we then try
/// another port, this many times in all.
const START_ATTEMPTS: usize = 5;
/// A cluster node also listens on `port + 10000` for its bus.
const BUS_PORT_OFFSET: u16 = 10_000;

/// One `redis-server` process of our own.
pub struct RedisServer {
    port: u16,
    dir: ScratchDir,
    /// Extra arguments (cluster mode), kept so that [`RedisServer::restart`] starts the same server.
    extra_args: Vec<String>,
    /// `None` while stopped.
    child: Option<Child>,
}

/// Why a launch did not produce a ready server.
enum LaunchError {
    /// Someone else took the port: worth another try on a different one.
    PortTaken,
}

impl RedisServer {
    /// Starts a standalone server on a free loopback port and waits until it answers.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(Vec::new(), false).await
    }

    async fn start_with(extra_args: Vec<String>, needs_bus_port: bool) -> RedisServer {
        for _ in 0..START_ATTEMPTS {
            let port = free_port(needs_bus_port);
            let mut server =
                RedisServer { port, dir: ScratchDir::new("redis"), extra_args: extra_args.clone(), child: None };
            match server.launch().await {
                Ok(()) => return server,
                Err(LaunchError::PortTaken) => continue,
            }
        }
        panic!("redis-server could not bind a free port in {START_ATTEMPTS} attempts");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the process (SIGKILL, like a crash) and waits for it to exit, so the port refuses
    /// connections afterwards. Everything it held is lost: nothing is persisted.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("cannot kill redis-server");
        }
    }

    /// Suspends the process (SIGSTOP): it keeps its port and its connections, and the kernel
    /// still accepts new ones, but nothing is answered, like a server stalled by a long fork or
    /// a swap storm. Commands sent meanwhile wait in the sockets and run at [`RedisServer::thaw`].
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Resumes a [`RedisServer::freeze`]d process (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("redis-server is running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} {pid} failed with {status}");
    }

    /// Starts the server again on the same port (empty: nothing was persisted) and waits until it
    /// answers. Panics if the port was taken meanwhile.
    pub async fn restart(&mut self) {
        self.stop().await;
        if self.launch().await.is_err() {
            panic!("cannot restart redis-server: port {} was taken meanwhile\n{}", self.port, self.log_tail());
        }
    }

    /// The last lines of the server's log file.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    async fn launch(&mut self) -> Result<(), LaunchError> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot spawn redis-server (is it on PATH?)");
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls until the server answers `PING` and says it is our process (so a stranger that took
    /// the port does not pass for it), or fails on early exit, or panics at the deadline.
    async fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = self.child.as_ref().and_then(Child::id).expect("redis-server has a pid");
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("cannot poll redis-server")) {
                self.child = None;
                // The log may hold earlier runs (restart): only this process's lines count.
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let ours = format!("{pid}:");
                if log.lines().any(|l| l.starts_with(&ours) && l.contains("Address already in use")) {
                    return Err(LaunchError::PortTaken);
                }
                panic!("redis-server on port {} exited with {status}:\n{}", self.port, self.log_tail());
            }
            if server_pid(&self.url()).await == Some(pid) {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within {READY_TIMEOUT:?}:\n{}",
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_and_reap(child);
        }
    }
}

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
            nodes.push(RedisServer::start_with(args.clone(), true).await);
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

/// The `process_id` of the server at `url` once it answers `PING`, or `None` if it does not (yet).
async fn server_pid(url: &str) -> Option<u32> {
    let mut con = connect(url).await?;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.ok()?;
    if pong != "PONG" {
        return None;
    }
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.ok()?;
    info.lines().find_map(|l| l.trim().strip_prefix("process_id:")).and_then(|p| p.parse().ok())
}

/// One connection attempt, bounded so that a half-started server cannot stall the poll loop.
async fn connect(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).expect("a valid redis URL");
    tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await.ok()?.ok()
}

/// A loopback port that is free right now (and, for a cluster node, whose bus port is free too).
fn free_port(needs_bus_port: bool) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        if !needs_bus_port {
            return port;
        }
        let bus_free = port.checked_add(BUS_PORT_OFFSET).is_some_and(is_free);
        if bus_free {
            return port;
        }
    }
    panic!("found no free port pair (port, port + {BUS_PORT_OFFSET}) in 100 tries");
}

fn is_free(port: u16) -> bool {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::AddrInUse => false,
        Err(e) => panic!("cannot probe port {port}: {e}"),
    }
}

/// Kills a child and waits briefly for it to exit, so its files can be removed; the runtime reaps
/// it in any case.
fn kill_and_reap(child: &mut Child) {
    let _ = child.start_kill();
    let deadline = Instant::now() + Duration::from_secs(2);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(what: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("sst-{what}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ScratchDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
