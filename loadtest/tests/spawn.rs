//! `loadtest spawn` end to end: the load test starts its own nodes (the server binary next to it
//! by default), runs a tiny bounded scenario against them, and leaves nothing behind: the nodes
//! have exited and a Postgres database it created is gone.

mod support;

use std::process::Output;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use support::{loadtest, report, server_bin};

/// A spawned run starts up to two nodes, each allowed 15 s, before a one-second run.
const LIMIT: Duration = Duration::from_secs(90);

/// The pids of the `spawned node N at URL (pid PID)` lines on stderr.
fn node_pids(out: &Output) -> Vec<u32> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .filter(|l| l.starts_with("spawned node "))
        .filter_map(|l| l.rsplit_once("(pid ")?.1.strip_suffix(')')?.parse().ok())
        .collect()
}

/// Fails unless every process of `pids` is gone: the load test killed and reaped its nodes.
fn assert_gone(pids: &[u32]) {
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "node {pid} outlived the run");
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_spawned_node_serves_a_bounded_rest_run_and_is_stopped_afterwards() {
    server_bin(); // where `spawn` looks by default
    let out = loadtest(
        &[
            "spawn",
            "--",
            "--scenario",
            "validate",
            "--concurrency",
            "2",
            "--sessions",
            "4",
            "--duration-secs",
            "5",
            "--warmup-secs",
            "0",
            "--max-requests",
            "20",
        ],
        LIMIT,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!((r["scenario"].as_str(), r["ok"].as_u64()), (Some("validate"), Some(20)), "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let pids = node_pids(&out);
    assert_eq!(pids.len(), 1, "{}", stderr(&out));
    assert_gone(&pids);
}

#[tokio::test]
async fn two_spawned_nodes_share_postgres_and_redis_for_a_paced_run_and_leave_nothing_behind() {
    let admin =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let bin = server_bin();
    let out = loadtest(
        &[
            "spawn",
            "--nodes",
            "2",
            "--server-bin",
            bin.to_str().expect("a UTF-8 path"),
            "--database",
            "postgres",
            "--postgres-url",
            &admin,
            "--redis",
            "--",
            "paced",
            "--scenario",
            "validate",
            "--rate",
            "40",
            "--duration-secs",
            "1",
            "--warmup-secs",
            "0",
            "--sessions",
            "10",
        ],
        LIMIT,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!((r["nodes"].as_u64(), r["sent"].as_u64(), r["ok"].as_u64()), (Some(2), Some(40), Some(40)), "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    assert_gone(&node_pids(&out));

    let stderr = stderr(&out);
    let name = stderr.lines().find_map(|l| l.strip_prefix("spawned database ")).expect("the database is named");
    let mut conn = PgConnection::connect(&admin).await.expect("connect to TEST_DATABASE_URL");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("query pg_database");
    assert_eq!(left, 0, "database {name} outlived the run");
}

#[tokio::test]
async fn a_run_that_names_its_own_target_is_refused_before_any_node_starts() {
    let out = loadtest(&["spawn", "--", "--scenario", "me", "--base-url", "http://127.0.0.1:8080"], LIMIT).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("leave out --base-url"), "{}", stderr(&out));
    assert!(node_pids(&out).is_empty(), "{}", stderr(&out));
}
