//! `GET /metrics`: the Prometheus text of a node, with the counters the issue names moving as the
//! node works (refresh outcomes, validations, pushes, bus traffic, HTTP latency per route).

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::cluster::{on_redis, redis_url, three_nodes};
use crate::helpers::*;
use crate::ws_client::*;

async fn scrape(app: &TestApp) -> String {
    let resp = app.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    resp.text().await.unwrap()
}

/// The value of the series written exactly as `series` (name and labels), or 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or_else(|_| panic!("{series}: {v} is not a number")))
}

/// Scrapes until `series` reads `want` (session counts are refreshed in the background).
async fn scrape_until(app: &TestApp, series: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(app).await;
        if value(&text, series) == want {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{series} never read {want}:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn the_counters_follow_what_the_node_does(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.ops.stats_refresh_ms = 100).await;
    let created = app.create_session("player-1").await;
    let other = app.create_session("player-2").await;
    app.refresh_ok(&created.refresh).await; // rotate
    app.refresh_ok(&created.refresh).await; // replay, within the grace window
    assert_eq!(app.refresh("rt1.garbage").await.status(), StatusCode::UNAUTHORIZED); // forged
    assert_eq!(app.validate(&other.refresh).await.status(), StatusCode::OK);
    let mut device = app.ws_live(Encoding::Json, &other).await;
    let before = scrape_until(&app, r#"session_sessions{state="active"}"#, 2.0).await;
    assert_eq!(value(&before, "session_live_connections"), 1.0);
    let resp = app.writer(Method::POST, &format!("/sessions/{}/revoke", other.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    device.expect_revoked("revoked_by_service").await;

    let text = scrape_until(&app, r#"session_sessions{state="revoked"}"#, 1.0).await;
    assert_eq!(value(&text, r#"session_refresh_total{outcome="rotate"}"#), 1.0, "{text}");
    assert_eq!(value(&text, r#"session_refresh_total{outcome="replay"}"#), 1.0);
    assert_eq!(value(&text, r#"session_refresh_total{outcome="forged"}"#), 1.0);
    assert_eq!(value(&text, r#"session_refresh_total{outcome="reuse"}"#), 0.0);
    assert_eq!(value(&text, r#"session_validate_total{outcome="ok"}"#), 1.0);
    assert_eq!(value(&text, r#"session_pushes_sent_total{kind="revoked"}"#), 1.0);
    assert_eq!(value(&text, r#"session_sessions{state="active"}"#), 1.0);
    assert_eq!(value(&text, "session_ws_auth_duration_seconds_count"), 1.0);
    let refreshes =
        r#"session_http_request_duration_seconds_count{method="POST",route="/session/refresh",status="200"}"#;
    assert_eq!(value(&text, refreshes), 2.0);
    let forged = r#"session_http_request_duration_seconds_count{method="POST",route="/session/refresh",status="401"}"#;
    assert_eq!(value(&text, forged), 1.0);
    assert!(!text.contains(&other.id.to_string()), "no raw paths as labels");
}

async fn bus_traffic_is_counted_on_both_ends(backend: Backend) {
    let prefix = format!("test-{}", Uuid::new_v4().simple());
    let [a, b, _c] = three_nodes(backend, on_redis(&redis_url(), &prefix)).await;
    let created = a.create_session("player-3").await;
    let mut device = a.ws_live(Encoding::Json, &created).await;
    let resp = b.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    device.expect_revoked("revoked_by_service").await;
    let (on_a, on_b) = (scrape(&a).await, scrape(&b).await);
    assert_eq!(value(&on_b, r#"session_bus_published_total{kind="revoke"}"#), 1.0, "{on_b}");
    assert_eq!(value(&on_a, r#"session_bus_received_total{kind="revoke"}"#), 1.0, "{on_a}");
    assert_eq!(value(&on_a, "session_bus_delivery_seconds_count"), 1.0);
    assert_eq!(value(&on_a, r#"session_pushes_sent_total{kind="revoked"}"#), 1.0);
    assert_eq!(value(&on_a, "session_bus_connected"), 1.0);
    // The device's handshake missed the cache at auth, filled it, and hit it at the re-check.
    assert_eq!(value(&on_a, r#"session_cache_lookups_total{result="miss"}"#), 1.0, "{on_a}");
    assert_eq!(value(&on_a, r#"session_cache_lookups_total{result="hit"}"#), 1.0);
}

async fn scrapes_read_the_background_count_and_never_count_the_store_themselves(backend: Backend) {
    // Counted once at start (no session yet); the next count is an hour away.
    let app = spawn_app_with(backend, |o| o.ops.stats_refresh_ms = 3_600_000).await;
    let stats = || async {
        let resp = app.reader(Method::GET, "/cluster/stats").send().await.unwrap();
        resp.json::<serde_json::Value>().await.unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        let body = stats().await;
        if body["sessions"]["counted_at"].is_string() {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "the start-up count never finished: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for user in ["player-1", "player-2", "player-3"] {
        app.create_session(user).await;
    }
    for _ in 0..20 {
        let text = scrape(&app).await;
        assert_eq!(value(&text, r#"session_sessions{state="active"}"#), 0.0, "a scrape counted the store");
        assert_eq!(stats().await["sessions"], first["sessions"], "the stats counted the store");
    }
    // The background count is what moves them.
    app.state().census.refresh(&app.state().sessions, app.now()).await;
    assert_eq!(value(&scrape(&app).await, r#"session_sessions{state="active"}"#), 3.0);
}

async fn with_ops_listen_the_operator_endpoints_leave_the_public_address(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.ops.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let ops = app.ops_addr().expect("an operator listener");
    let on_ops = |path: &str| app.client.get(format!("http://{ops}{path}")).send();
    let metrics = on_ops("/metrics").await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("session_http_connections"));
    let stats = app.client.get(format!("http://{ops}/cluster/stats")).bearer_auth(&app.reader_key).send().await;
    assert_eq!(stats.unwrap().status(), StatusCode::OK);
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(on_ops(probe).await.unwrap().status(), StatusCode::OK, "{probe} on the operator address");
        let public = app.anon(Method::GET, probe).send().await.unwrap();
        assert_eq!(public.status(), StatusCode::OK, "{probe} stays on the public address");
    }
    assert_eq!(app.anon(Method::GET, "/metrics").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let stats = app.reader(Method::GET, "/cluster/stats").send().await.unwrap();
    assert_eq!(stats.status(), StatusCode::NOT_FOUND);
    // The API is not served on the operator address.
    assert_eq!(on_ops("/.well-known/jwks.json").await.unwrap().status(), StatusCode::NOT_FOUND);
}

both!(
    the_counters_follow_what_the_node_does,
    bus_traffic_is_counted_on_both_ends,
    scrapes_read_the_background_count_and_never_count_the_store_themselves,
    with_ops_listen_the_operator_endpoints_leave_the_public_address,
);
