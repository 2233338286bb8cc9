//! Redis outages, on a private `redis-server` of the test's own (the shared one is never
//! stopped): REST keeps working on the store while Redis is down, the periodic reconciliation
//! closes devices whose revocation could not be pushed, and once Redis is back (empty, as after a
//! restart) the nodes re-announce their connections and resubscribe, so pushes travel again.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::cluster::{on_redis, three_nodes};
use crate::helpers::*;
use crate::redis_server::RedisServer;
use crate::ws_client::*;

async fn rest_keeps_working_while_redis_is_down_and_reconciliation_closes_revoked_devices(backend: Backend) {
    let mut redis = RedisServer::start().await;
    let base = on_redis(&redis.url(), "outage");
    let [a, b, _c] = three_nodes(backend, move |o: &mut Overrides| {
        base(o);
        o.reconcile_interval_ms = Some(500);
    })
    .await;
    let created = a.create_session("player-1").await;
    let mut device = a.ws_live(Encoding::Json, &created).await;
    redis.stop().await;

    // The store is the truth: every REST path answers on it.
    let other = b.create_session("player-2").await;
    assert_eq!(b.validate(&other.refresh).await.status(), StatusCode::OK);
    assert_eq!(b.me(&created.access).await.status(), StatusCode::OK);
    let fresh = b.refresh_ok(&other.refresh).await;
    let resp = b.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The push cannot travel; A's reconciliation finds the revocation in the store.
    device.expect_revoked("revoked_by_service").await;
    assert_eq!(b.me(&created.access).await.status(), StatusCode::UNAUTHORIZED, "revoked on the store path too");
    assert_eq!(a.validate(&fresh.refresh).await.status(), StatusCode::OK);
}

async fn after_a_redis_restart_nodes_reannounce_presence_and_pushes_travel_again(backend: Backend) {
    let mut redis = RedisServer::start().await;
    let [a, b, _c] = three_nodes(backend, on_redis(&redis.url(), "restart")).await;
    let created = a.create_session("player-3").await;
    let mut device = a.ws_live(Encoding::Msgpack, &created).await;
    redis.stop().await;
    redis.restart().await; // empty: no presence, no liveness keys, no cache
    let restarted = Instant::now();
    while b.get_session(created.id).await["online"] != true {
        assert!(restarted.elapsed() < Duration::from_secs(10), "A never re-announced the device");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("presence re-announced {:?} after the restart", restarted.elapsed());
    // The reconciliation runs every 10 minutes here: only a push can close the device in time.
    let resp = b.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let waited = device.expect_revoked("revoked_by_service").await;
    assert!(waited < Duration::from_secs(1), "the push after the restart took {waited:?}");
}

both!(
    rest_keeps_working_while_redis_is_down_and_reconciliation_closes_revoked_devices,
    after_a_redis_restart_nodes_reannounce_presence_and_pushes_travel_again,
);
