//! NATS for tests: the shared server (`TEST_NATS_URL`, provisioned by `scripts/test.sh`) used
//! under names of a test's own, so that tests running at once never read each other's messages
//! or share a stream; and [`NatsServer`], a private `nats-server -js` for tests that stop the
//! broker (its own port and storage directory: the shared server is never stopped or touched).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{expect_started, ScratchDir, StartError};

/// `TEST_NATS_URL`, or the local default.
pub fn shared_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A fresh name part for one test: `t<hex>`, usable in subjects (`t1f3a….session.revoked`) and
/// stream names (`T1F3A…_EVENTS`) alike.
pub fn unique_prefix() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// How long a private server may take from spawn to answering JetStream requests.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a stopped server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One `nats-server -js` process of our own: a loopback port it chose itself (`-p -1`, learnt
/// from the ports file it writes), JetStream storage in a fresh scratch directory, both kept
/// across [`NatsServer::stop`] and [`NatsServer::restart`] so a restarted server holds the
/// streams and messages it had. Killed, and its directory removed, when dropped. The shared
/// server's storage is never touched.
pub struct NatsServer {
    /// `None` until the first start has reported its port.
    port: Option<u16>,
    dir: ScratchDir,
    /// `None` while stopped.
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until JetStream answers; panics with its log if it cannot.
    pub async fn start() -> NatsServer {
        expect_started(NatsServer::try_start().await)
    }

    /// [`NatsServer::start`], returning the failure instead of panicking.
    pub async fn try_start() -> Result<NatsServer, StartError> {
        let mut server = NatsServer { port: None, dir: ScratchDir::new("nats"), child: None };
        server.launch().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>` (the same across restarts).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port.expect("a started server has a port")
    }

    /// Stops the server (SIGTERM, so JetStream writes out what it acknowledged) and waits until
    /// it has exited: the port refuses connections afterwards. Killed if it takes longer than
    /// 10 s. The storage directory stays for [`NatsServer::restart`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_err() {
            child.kill().await.expect("cannot kill nats-server");
        }
    }

    /// Starts the server again on the same port and storage, and waits until JetStream answers.
    /// Panics if it cannot (e.g. the port was taken meanwhile).
    pub async fn restart(&mut self) {
        self.stop().await;
        expect_started(self.launch().await);
    }

    /// The last lines of the server's log file.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    async fn launch(&mut self) -> Result<(), StartError> {
        let port = self.port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let storage = self.dir.path().join("jetstream");
        let child = Command::new(nats_bin())
            .args(["-js", "-a", "127.0.0.1", "-p", &port])
            .arg("-sd")
            .arg(&storage)
            .arg("--ports_file_dir")
            .arg(self.dir.path())
            .arg("-l")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| StartError::Spawn { program: "nats-server (is it installed?)".to_owned(), source })?;
        let pid = child.id().expect("a spawned nats-server has a pid");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.wait_port(pid, deadline).await?;
        self.port = Some(port);
        self.wait_jetstream(deadline).await
    }

    /// The port from the ports file this process (`<exe>_<pid>.ports`) writes once it listens.
    async fn wait_port(&mut self, pid: u32, deadline: Instant) -> Result<u16, StartError> {
        let suffix = format!("_{pid}.ports");
        loop {
            self.check_running()?;
            let found = std::fs::read_dir(self.dir.path())
                .ok()
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))
                .and_then(|e| std::fs::read_to_string(e.path()).ok())
                .and_then(|text| port_of(&text));
            if let Some(port) = found {
                return Ok(port);
            }
            self.before_retry(deadline, "did not write its ports file")?;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls until a client can connect and round-trip.
    async fn wait_jetstream(&mut self, deadline: Instant) -> Result<(), StartError> {
        loop {
            self.check_running()?;
            if jetstream_answers(&self.url()).await {
                return Ok(());
            }
            self.before_retry(deadline, "did not answer a client")?;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn check_running(&mut self) -> Result<(), StartError> {
        let exited = self.child.as_mut().and_then(|c| c.try_wait().expect("cannot poll nats-server"));
        match exited {
            Some(status) => {
                self.child = None;
                Err(self.not_ready(format!("exited with {status}")))
            }
            None => Ok(()),
        }
    }

    fn before_retry(&self, deadline: Instant, why: &str) -> Result<(), StartError> {
        if Instant::now() >= deadline {
            return Err(self.not_ready(format!("{why} within {READY_TIMEOUT:?}")));
        }
        Ok(())
    }

    fn not_ready(&self, why: String) -> StartError {
        let what = format!("nats-server in {}", self.dir.path().display());
        StartError::NotReady { what, why, output: self.log_tail() }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// `nats-server` from `PATH`, or where Debian's package puts it.
fn nats_bin() -> &'static str {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("nats-server").is_file()));
    if on_path {
        "nats-server"
    } else {
        "/usr/sbin/nats-server"
    }
}

/// The client port in a ports file: `{"nats":["nats://127.0.0.1:34567"],...}`.
fn port_of(ports_file: &str) -> Option<u16> {
    let start = ports_file.find("nats://")? + "nats://".len();
    let rest = &ports_file[start..];
    let end = rest.find('"')?;
    rest[..end].rsplit(':').next()?.parse().ok()
}

/// One bounded attempt to connect and round-trip to the server (it writes its ports file, and
/// so answers here, only once JetStream is up: "Server is ready" comes after it).
async fn jetstream_answers(url: &str) -> bool {
    let attempt = async {
        let client = async_nats::connect(url).await.ok()?;
        client.flush().await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), attempt).await, Ok(Some(())))
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn the_client_port_is_read_from_a_ports_file() {
        let text = r#"{"nats":["nats://127.0.0.1:40123"],"monitoring":["http://127.0.0.1:8222"]}"#;
        assert_eq!(port_of(text), Some(40123));
        assert_eq!(port_of("{}"), None);
    }
}
