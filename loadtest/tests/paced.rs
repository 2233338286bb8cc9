//! `loadtest paced` end to end, against a real node (the server binary, embedded SQLite and
//! in-process bus): every request due is sent and answered and the report counts it, failures are
//! counted by kind and fail the run, for both scenarios. Small rates: this checks the harness's
//! accounting, not the server's speed (that is `scripts/hot-paths-bench.sh`).

mod support;

use std::process::Output;
use std::time::Duration;

use session_test_support::node::NodeProcess;
use support::{report, server_bin};

async fn node() -> NodeProcess {
    // The default log level: the harness learns the port from the `listening` line.
    NodeProcess::spawn(server_bin().to_str().expect("a UTF-8 path"), &[]).await
}

/// Runs `loadtest paced` with `args` (bounded by a timeout) and returns its output.
async fn paced(args: &[&str]) -> Output {
    let args: Vec<&str> = ["paced"].iter().chain(args).copied().collect();
    support::loadtest(&args, Duration::from_secs(60)).await
}

#[tokio::test]
async fn every_due_request_is_sent_answered_and_counted_in_both_scenarios() {
    let node = node().await;
    let key = std::fs::read_to_string(node.dir().join("service-key")).expect("the node wrote its service key");
    let base = node.base_url();
    // The same node twice: requests alternate between the two URLs.
    let bases = format!("{base},{base}");
    for (scenario, rate) in [("validate", "200"), ("ws-auth", "100")] {
        let out = paced(&[
            "--base-urls",
            &bases,
            "--service-key",
            key.trim(),
            "--scenario",
            scenario,
            "--rate",
            rate,
            "--duration-secs",
            "1",
            "--warmup-secs",
            "1",
            "--sessions",
            "40",
        ])
        .await;
        let r = report(&out);
        assert!(out.status.success(), "{scenario}: {r}\n{}", String::from_utf8_lossy(&out.stderr));
        let rate: u64 = rate.parse().unwrap();
        assert_eq!((r["scenario"].as_str(), r["nodes"].as_u64()), (Some(scenario), Some(2)), "{r}");
        assert_eq!(
            (r["sent"].as_u64(), r["ok"].as_u64(), r["skipped"].as_u64()),
            (Some(rate), Some(rate), Some(0)),
            "{r}"
        );
        assert_eq!(
            r["warmup_requests"].as_u64(),
            Some(rate),
            "the warm-up's requests are answered but not counted: {r}"
        );
        assert_eq!(r["errors"], serde_json::json!({}), "{r}");
        let (p50, max) = (r["from_due_ms"]["p50"].as_f64().unwrap(), r["from_due_ms"]["max"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= max, "{r}");
        assert!(r["from_send_ms"]["p50"].as_f64().unwrap() <= p50, "from send never exceeds from due: {r}");
        if scenario == "ws-auth" {
            assert!(r["auth_to_welcome_ms"]["p50"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
}

#[tokio::test]
async fn refused_requests_are_counted_by_kind_and_fail_the_run() {
    let node = node().await;
    let tokens = node.dir().join("forged-tokens");
    // Well-formed refresh tokens of sessions that do not exist; access tokens that are not JWTs.
    let line = |n: u32| format!("not-a-jwt-{n} rt1.{}.1.{}\n", uuid::Uuid::new_v4(), "A".repeat(43));
    std::fs::write(&tokens, (0..10).map(line).collect::<String>()).unwrap();
    let tokens = tokens.to_str().unwrap();
    for scenario in ["validate", "ws-auth"] {
        let out = paced(&[
            "--base-urls",
            &node.base_url(),
            "--tokens-file",
            tokens,
            "--scenario",
            scenario,
            "--rate",
            "50",
            "--duration-secs",
            "1",
            "--warmup-secs",
            "0",
            "--sessions",
            "10",
        ])
        .await;
        assert!(!out.status.success(), "{scenario}: a run where every request failed must fail");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // With nothing successful the report is still printed before the error.
        let r = report(&out);
        assert_eq!((r["sent"].as_u64(), r["ok"].as_u64()), (Some(50), Some(0)), "{scenario}: {stdout}");
        let errors = r["errors"].as_object().unwrap();
        assert_eq!(errors.values().filter_map(serde_json::Value::as_u64).sum::<u64>(), 50, "{scenario}: {r}");
        let expected = if scenario == "validate" { "401 invalid_token" } else { "close 4100" };
        assert!(errors.keys().all(|k| k.starts_with(expected)), "{scenario}: {r}");
    }
}
