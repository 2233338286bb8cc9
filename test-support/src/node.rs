//! The server binary as a child process, for tests that need a node to die for real (SIGKILL)
//! rather than shut down in-process, and for the load test's own nodes. The node listens on a
//! port of its own choosing and we learn it from its `listening` log line, so there is no fixed
//! port and no sleep. The caller names the binary: a server test passes
//! `env!("CARGO_BIN_EXE_session-service")`, the load test a path it was given or found.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{expect_started, ScratchDir, StartError};

/// How long a node may take from spawn to its `listening` line.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of output kept for failure messages; older lines are dropped, so a chatty node costs
/// bounded memory while its pipes are drained for as long as it runs.
const TAIL_LINES: usize = 400;
/// Longer lines are cut to this many bytes before they are kept.
const MAX_LINE_BYTES: usize = 4096;
/// The only variables the node inherits from the test's environment: anything else (a developer's
/// `DATABASE_URL`, `SESSION_CONFIG`, ...) would make the node depend on where the tests run.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "LD_LIBRARY_PATH", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"];

/// The last lines the node wrote to stdout and stderr, interleaved as they were read.
type Tail = Arc<Mutex<VecDeque<String>>>;

/// A running `session-service` process, killed when dropped.
pub struct NodeProcess {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    tail: Tail,
    /// Working directory and default `DATA_DIR`; removed on drop, after the process is killed
    /// (fields drop after `Drop::drop`).
    dir: ScratchDir,
}

impl NodeProcess {
    /// Spawns `bin` (a server test passes `env!("CARGO_BIN_EXE_session-service")`) with `envs` on
    /// top of these defaults: `LISTEN=127.0.0.1:0`, `DATA_DIR` a fresh temporary directory (also
    /// the working directory), `RUST_LOG=info`, `NO_COLOR=1`. Waits until the node logs its
    /// address; panics with its output if it exits first or takes longer than 15 s.
    pub async fn spawn(bin: &str, envs: &[(&str, String)]) -> NodeProcess {
        expect_started(NodeProcess::start(bin, envs).await)
    }

    /// [`NodeProcess::spawn`], returning the failure instead of panicking. `RUST_LOG`, if given,
    /// must let the server's info-level `listening` line through.
    pub async fn start(bin: &str, envs: &[(&str, String)]) -> Result<NodeProcess, StartError> {
        NodeProcess::spawn_command(Command::new(bin), bin, envs).await
    }

    /// [`NodeProcess::spawn`], with the process's file limit (soft and hard) set to `files`
    /// first, as `ulimit -n` does: the shell sets it and then becomes the node (`exec`).
    pub async fn spawn_with_file_limit(bin: &str, files: u64, envs: &[(&str, String)]) -> NodeProcess {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(r#"ulimit -n "$0" && exec "$1""#).arg(files.to_string()).arg(bin);
        expect_started(NodeProcess::spawn_command(cmd, bin, envs).await)
    }

    async fn spawn_command(mut cmd: Command, bin: &str, envs: &[(&str, String)]) -> Result<NodeProcess, StartError> {
        let dir = ScratchDir::new("node");
        cmd.env_clear().current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.kill_on_drop(true);
        for name in INHERITED_ENV {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        let defaults = [
            ("LISTEN", "127.0.0.1:0".to_owned()),
            ("DATA_DIR", dir.path().display().to_string()),
            ("RUST_LOG", "info".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ];
        for (name, value) in defaults.into_iter().filter(|(name, _)| !envs.iter().any(|(n, _)| n == name)) {
            cmd.env(name, value);
        }
        for (name, value) in envs {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().map_err(|source| StartError::Spawn { program: bin.to_owned(), source })?;
        let pid = child.id().expect("a just-spawned process has a pid");

        let tail = Tail::default();
        // Capacity 2: each pipe reports the address at most once and never waits to do so.
        let (found, mut addr_rx) = mpsc::channel(2);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let drains = [drain(stdout, tail.clone(), found.clone()), drain(stderr, tail.clone(), found)];

        match wait_for_addr(&mut child, &mut addr_rx, drains).await {
            Ok(addr) => Ok(NodeProcess { child, pid, addr, tail, dir }),
            Err(why) => Err(StartError::NotReady { what: format!("node {pid}"), why, output: tail_text(&tail) }),
        }
    }

    /// The address it reported in its `listening` line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The node's working directory: its `DATA_DIR` unless `spawn` was given another.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the node with SIGKILL (no drain, no flush: a crash) and waits until it has exited.
    pub async fn kill9(&mut self) {
        // tokio's `kill` sends SIGKILL on unix and then waits for the exit status.
        self.child.kill().await.unwrap_or_else(|e| panic!("cannot kill node {}: {e}", self.pid));
    }

    /// Kills the node (SIGKILL) and waits, at most 2 s, until it has exited. Unlike
    /// [`NodeProcess::kill9`] it never panics: for a caller that is shutting down anyway.
    pub async fn stop(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.kill()).await;
    }

    /// The last lines of the node's output, for failure messages.
    pub fn output_tail(&self) -> String {
        tail_text(&self.tail)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Waits for the address a drain reports, or says why there is none: the node exited or timed
/// out (it is then killed and its pipes read to the end, so the tail has everything it wrote).
async fn wait_for_addr(
    child: &mut Child,
    addr_rx: &mut mpsc::Receiver<SocketAddr>,
    drains: [JoinHandle<()>; 2],
) -> Result<SocketAddr, String> {
    let outcome = tokio::select! {
        Some(addr) = addr_rx.recv() => return Ok(addr),
        status = child.wait() => format!("exited with {}", status.map_or_else(|e| e.to_string(), |s| s.to_string())),
        () = tokio::time::sleep(START_TIMEOUT) => format!("did not log its address within {START_TIMEOUT:?}"),
    };
    let _ = child.kill().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for drain in drains {
            let _ = drain.await;
        }
    })
    .await;
    Err(outcome)
}

/// Reads one pipe to its end, keeping the last lines in `tail` and reporting the address from the
/// first `listening` line. Runs for the node's whole life so the node never blocks on a full pipe.
fn drain(pipe: impl AsyncRead + Unpin + Send + 'static, tail: Tail, found: mpsc::Sender<SocketAddr>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        let mut reported = false;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            buf.truncate(MAX_LINE_BYTES);
            let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
            if !reported {
                if let Some(addr) = listening_addr(&line) {
                    reported = true;
                    let _ = found.try_send(addr);
                }
            }
            let mut tail = tail.lock().expect("tail lock poisoned");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}

/// The `addr` field of the node's `listening` line, in the text (`addr=127.0.0.1:PORT`) or JSON
/// (`"addr":"127.0.0.1:PORT"`) log format.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    let (_, rest) = line.split_once("addr=").or_else(|| line.split_once("\"addr\":\""))?;
    let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == ',').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Removes terminal colour codes (`ESC [ ... letter`), in case the node colours its output anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().take_while(|c| !c.is_ascii_alphabetic()).for_each(drop);
        } else {
            out.push(c);
        }
    }
    out
}

fn tail_text(tail: &Tail) -> String {
    let tail = tail.lock().expect("tail lock poisoned");
    tail.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_listening_line_in_either_log_format() {
        let text = "2025-01-01T00:00:00Z  INFO session_service::app: listening addr=127.0.0.1:40123 ops=None";
        let json = r#"{"level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:40124","ops":"None"}}"#;
        assert_eq!(listening_addr(text), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(listening_addr(json), Some("127.0.0.1:40124".parse().unwrap()));
        assert_eq!(listening_addr("INFO connecting addr=127.0.0.1:5432"), None, "not the listening line");
    }

    #[test]
    fn colour_codes_do_not_hide_the_address() {
        let line = strip_ansi("\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3maddr\u{1b}[0m=127.0.0.1:40125");
        assert_eq!(listening_addr(&line), Some("127.0.0.1:40125".parse().unwrap()), "{line}");
    }
}
