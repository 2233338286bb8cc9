//! Scaffolding shared by the server's integration tests and the load test: throwaway databases,
//! private `redis-server` processes, the server binary as child processes, and a TCP proxy to
//! cut a connection without stopping either end. Nothing here binds anything but loopback, nothing
//! uses a fixed port, and every wait is bounded: servers and nodes report the port they chose (or
//! are probed for being ours), so there is no start-up sleep and no port race.
//!
//! [`fleet::Fleet`] puts the pieces together as several nodes sharing one database and one
//! Redis; `loadtest spawn` runs on it, and it is the base for the benchmark orchestration that
//! `scripts/lib/cluster.sh` does in shell today.
//!
//! Start-up is fallible (`NodeProcess::start`, `RedisServer::try_start`, `db::create_database`)
//! for callers that report errors, such as the load test; tests use the panicking forms
//! (`NodeProcess::spawn`, `RedisServer::start`, `db::postgres_url`), whose messages carry the
//! process's last output.
//!
//! # Layout
//! - `db`: a database of its own per test, on Postgres or SQLite.
//! - `redis`: private Redis servers (stop, restart, freeze, thaw) and Redis Clusters.
//! - `proxy`: a loopback TCP proxy that can pass, black-hole or refuse traffic.
//! - `nats`: the shared NATS server under a subject and stream prefix of a test's own, and
//!   private `nats-server -js` processes (stop, restart on the same port and storage).
//! - `node`: the server binary as a child process that reports its own address.
//! - `fleet`: nodes sharing one data directory, database and Redis.

pub mod db;
pub mod fleet;
pub mod nats;
pub mod node;
pub mod proxy;
pub mod redis;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a process or a resource of this crate could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be run at all (not found, not executable).
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// It ran but did not become ready: it exited, or took longer than its deadline. `output` is
    /// the last of what it wrote.
    #[error("{what} {why}; its last output:\n{output}")]
    NotReady { what: String, why: String, output: String },
    /// Something that should have been quick did not finish in time.
    #[error("{what} took longer than {after:?}")]
    Timeout { what: String, after: std::time::Duration },
    /// A database could not be created or dropped.
    #[error("{what}")]
    Database {
        what: String,
        #[source]
        source: sqlx::Error,
    },
    /// A file the caller needs could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What was asked for cannot work, e.g. several nodes without a shared bus.
    #[error("{0}")]
    Invalid(String),
}

/// The value, or a panic whose message holds the whole error chain: the form tests want.
fn expect_started<T>(started: Result<T, StartError>) -> T {
    started.unwrap_or_else(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let _ = write!(message, ": {cause}");
            source = cause.source();
        }
        panic!("{message}")
    })
}

/// A fresh directory `sst-<what>-<uuid>` under the system's temporary directory, removed on drop.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "cannot run nowhere/bin: gone")]
    fn a_failed_start_panics_with_its_causes() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        expect_started::<()>(Err(StartError::Spawn { program: "nowhere/bin".to_owned(), source }));
    }

    #[test]
    fn a_scratch_directory_is_removed_on_drop() {
        let dir = ScratchDir::new("unit");
        let path = dir.path().to_owned();
        std::fs::write(path.join("file"), "x").unwrap();
        drop(dir);
        assert!(!path.exists(), "{} is still there", path.display());
    }
}
