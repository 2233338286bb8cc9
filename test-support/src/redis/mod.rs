//! Private Redis servers for multi-node tests and the load test's nodes: a single
//! [`RedisServer`] that can be stopped and restarted on the same port or frozen and thawed (to
//! play an outage), and a [`RedisCluster`] of cluster-enabled masters; [`Proxy`] (re-exported
//! from `proxy`) goes in front of one to cut some clients off while others still reach it. Each
//! process runs from `redis-server` on `PATH`, listens on a free loopback port, keeps nothing on
//! disk (`--save ""`, no AOF) and logs to a file in a fresh temporary directory; both are gone
//! when the value is dropped. The shared Redis on 6379 is never used.
//!
//! Redis cannot report a port it chose itself (`--port 0` turns TCP off), so a free port is
//! probed first; a server that then finds it taken is told apart by its log and started again on
//! another, and a server answering on the port only counts once it reports our child's pid.

mod cluster;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{expect_started, ScratchDir, StartError};

pub use crate::proxy::{Mode, Proxy};
pub use cluster::{cluster_info, RedisCluster};

/// How long a server may take to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// Anything else: not worth another try.
    Failed(StartError),
}

impl RedisServer {
    /// Starts a standalone server on a free loopback port and waits until it answers; panics
    /// with its log if it cannot.
    pub async fn start() -> RedisServer {
        expect_started(RedisServer::try_start().await)
    }

    /// [`RedisServer::start`], returning the failure instead of panicking.
    pub async fn try_start() -> Result<RedisServer, StartError> {
        RedisServer::start_with(Vec::new(), false).await
    }

    async fn start_with(extra_args: Vec<String>, needs_bus_port: bool) -> Result<RedisServer, StartError> {
        for _ in 0..START_ATTEMPTS {
            let port = free_port(needs_bus_port);
            let mut server =
                RedisServer { port, dir: ScratchDir::new("redis"), extra_args: extra_args.clone(), child: None };
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        Err(StartError::Invalid(format!("redis-server could not bind a free port in {START_ATTEMPTS} attempts")))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, e.g. for a [`Proxy`] in front of it.
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
    /// answers. Panics if the port was taken meanwhile, or if it does not come up.
    pub async fn restart(&mut self) {
        self.stop().await;
        match self.launch().await {
            Ok(()) => {}
            Err(LaunchError::PortTaken) => {
                panic!("cannot restart redis-server: port {} was taken meanwhile\n{}", self.port, self.log_tail())
            }
            Err(LaunchError::Failed(e)) => expect_started(Err(e)),
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
            .map_err(|source| {
                LaunchError::Failed(StartError::Spawn { program: "redis-server (is it on PATH?)".to_owned(), source })
            })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls until the server answers `PING` and says it is our process (so a stranger that took
    /// the port does not pass for it), or fails on early exit or at the deadline.
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
                return Err(self.not_ready(format!("exited with {status}")));
            }
            if server_pid(&self.url()).await == Some(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!("did not answer within {READY_TIMEOUT:?}")));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn not_ready(&self, why: String) -> LaunchError {
        let what = format!("redis-server on port {}", self.port);
        LaunchError::Failed(StartError::NotReady { what, why, output: self.log_tail() })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_and_reap(child);
        }
    }
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
