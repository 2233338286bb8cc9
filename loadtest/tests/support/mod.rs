//! What the load test's end-to-end tests share: the server binary, running `loadtest` bounded by
//! a timeout, and reading its report.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// The server binary next to this package's `loadtest` (one target directory for the workspace),
/// which is also where `loadtest spawn` looks by default; built first when this test runs without
/// the rest of the workspace.
pub(crate) fn server_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_loadtest")).with_file_name("session-service");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "session-service", "--bin", "session-service"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the server failed");
    }
    bin
}

/// Runs `loadtest` with `args`, killed if it takes longer than `limit`, and returns its output.
pub(crate) async fn loadtest(args: &[&str], limit: Duration) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(limit, run).await.expect("loadtest ends by itself").expect("loadtest runs")
}

/// The report's JSON line (the last line of stdout).
pub(crate) fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().last().unwrap_or_else(|| panic!("no report; stderr:\n{}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}
