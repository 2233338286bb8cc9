//! Three nodes behind one load balancer behave as one service: they share a database and a Redis
//! (the shared test Redis, under a key prefix of the test's own), and a revocation, logout,
//! replacement or presence question answered by one node holds for devices on the others.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use session_client::proto::ws::close;
use uuid::Uuid;

use crate::helpers::*;
use crate::ws_client::*;

/// Cross-node pushes on loopback come in milliseconds; this bound only catches a push that did
/// not travel (and was left to the reconciliation, seconds later).
const CROSS_NODE: Duration = Duration::from_secs(1);

pub(crate) fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Settings joining the nodes of one test to one bus: the Redis at `url` under `prefix`, with a
/// fast heartbeat so liveness tests are quick, and a reconciliation slow enough that it cannot
/// stand in for a push.
pub(crate) fn on_redis(url: &str, prefix: &str) -> impl Fn(&mut Config) + Clone {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    move |o: &mut Config| {
        o.redis.url = Some(Secret(url.clone()));
        o.redis.prefix.clone_from(&prefix);
        o.fleet.heartbeat_ms = 200;
        o.fleet.liveness_ttl_ms = 1000;
        o.fleet.reconcile_interval_ms = 600_000;
    }
}

/// Three nodes on one database and one Redis prefix.
pub(crate) async fn three_nodes(backend: Backend, tweak: impl Fn(&mut Config) + Clone) -> [TestApp; 3] {
    let a = spawn_app_with(backend, tweak.clone()).await;
    let b = a.sibling(tweak.clone()).await;
    let c = a.sibling(tweak).await;
    [a, b, c]
}

async fn shared_redis_nodes(backend: Backend) -> [TestApp; 3] {
    let prefix = format!("test-{}", Uuid::new_v4().simple());
    three_nodes(backend, on_redis(&redis_url(), &prefix)).await
}

fn assert_cross_node(waited: Duration, what: &str) {
    assert!(waited < CROSS_NODE, "{what}: the push took {waited:?}");
}

async fn online(app: &TestApp, id: Uuid) -> bool {
    app.get_session(id).await["online"].as_bool().expect("online is a boolean")
}

/// Polls `app`'s view of `id` until `online` reads `want`; returns how long it took.
pub(crate) async fn until_online(app: &TestApp, id: Uuid, want: bool, within: Duration) -> Duration {
    let started = Instant::now();
    while online(app, id).await != want {
        assert!(started.elapsed() < within, "online did not become {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn a_revoke_on_one_node_closes_the_device_on_another(backend: Backend) {
    let [a, b, _c] = shared_redis_nodes(backend).await;
    let created = a.create_session("player-1").await;
    let mut device = a.ws_live(Encoding::Msgpack, &created).await;
    let resp = b.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_cross_node(device.expect_revoked("revoked_by_service").await, "revoke on B, device on A");
    // And no node accepts the session any more, from cache or store.
    for node in [&a, &b] {
        let resp = node.player(Method::GET, "/session/me", &created.access).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let mut again = node.ws(Encoding::Json, Some(&created.access)).await;
        again.expect_closing_error("session_revoked", close::REVOKED).await;
    }
}

async fn a_logout_all_on_one_node_closes_devices_on_every_node(backend: Backend) {
    let nodes = shared_redis_nodes(backend).await;
    let mut devices = Vec::new();
    let mut sessions = Vec::new();
    for node in &nodes {
        let created = nodes[0].create_session("player-2").await;
        devices.push(node.ws_live(Encoding::Json, &created).await);
        sessions.push(created);
    }
    let resp = nodes[1].player(Method::DELETE, "/session/all", &sessions[0].access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["revoked"], 3);
    for (i, device) in devices.iter_mut().enumerate() {
        assert_cross_node(device.expect_revoked("logout_all").await, &format!("device on node {i}"));
    }
}

async fn a_refresh_token_reuse_on_one_node_closes_the_device_on_another(backend: Backend) {
    let [a, b, _c] = shared_redis_nodes(backend).await;
    let created = a.create_session("player-3").await;
    let mut device = a.ws_live(Encoding::Json, &created).await;
    b.refresh_ok(&created.refresh).await;
    b.advance(chrono::Duration::minutes(5)); // past the grace window (the nodes share the clock)
    assert_eq!(b.refresh(&created.refresh).await.status(), StatusCode::UNAUTHORIZED);
    assert_cross_node(device.expect_revoked("refresh_token_reuse").await, "reuse on B, device on A");
}

async fn a_newer_connection_on_another_node_replaces_the_older_one(backend: Backend) {
    let [a, b, _c] = shared_redis_nodes(backend).await;
    let created = a.create_session("player-4").await;
    let mut first = a.ws_live(Encoding::Json, &created).await;
    let mut second = b.ws_live(Encoding::Msgpack, &created).await;
    first.expect_closing_error("replaced", close::REPLACED).await;
    second.ping(1).await;
    assert!(online(&a, created.id).await, "the session stays online through its newer connection");
}

async fn online_is_answered_for_the_whole_cluster(backend: Backend) {
    let [a, b, c] = shared_redis_nodes(backend).await;
    let created = a.create_session("player-5").await;
    assert!(!online(&c, created.id).await);
    let device = b.ws_live(Encoding::Json, &created).await;
    assert!(online(&a, created.id).await, "A sees the device connected to B");
    assert!(online(&c, created.id).await, "C sees the device connected to B");
    let me = c.me(&created.access).await.json::<Value>().await.unwrap();
    assert_eq!(me["sessions"][0]["online"], true);
    device.close().await;
    // The directory entry is removed in the background as the connection ends.
    until_online(&a, created.id, false, Duration::from_secs(5)).await;
}

async fn cluster_stats_list_every_node_and_its_connections(backend: Backend) {
    let prefix = format!("test-{}", Uuid::new_v4().simple());
    let on_redis = on_redis(&redis_url(), &prefix);
    let [a, b, c] = three_nodes(backend, move |o: &mut Config| {
        on_redis(o);
        o.ops.stats_refresh_ms = 100;
    })
    .await;
    let first = a.create_session("player-6").await;
    let second = a.create_session("player-7").await;
    let _d1 = b.ws_live(Encoding::Json, &first).await;
    let _d2 = b.ws_live(Encoding::Json, &second).await;
    let stats = |node: &TestApp| node.reader(Method::GET, "/cluster/stats").send();
    // Connection counts travel with the liveness beats (every 200 ms here); session counts are
    // refreshed in the background (every 100 ms here).
    let started = Instant::now();
    let body = loop {
        let body: Value = stats(&c).await.unwrap().json().await.unwrap();
        if body["online_sessions"] == 2 && body["sessions"]["active"] == 2 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "stats never counted the two connections: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["bus"], "redis");
    assert_eq!(body["sessions"]["active"], 2);
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{body}");
    let of_b = nodes.iter().find(|n| n["id"] == b.state().fleet.node_id()).expect("B is listed");
    assert_eq!(of_b["connections"], 2);
    assert_eq!(of_b["addr"], b.addr.to_string());
    // Reading needs a service key.
    assert_eq!(a.anon(Method::GET, "/cluster/stats").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

both!(
    a_revoke_on_one_node_closes_the_device_on_another,
    a_logout_all_on_one_node_closes_devices_on_every_node,
    a_refresh_token_reuse_on_one_node_closes_the_device_on_another,
    a_newer_connection_on_another_node_replaces_the_older_one,
    online_is_answered_for_the_whole_cluster,
    cluster_stats_list_every_node_and_its_connections,
);
