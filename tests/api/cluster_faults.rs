//! Redis outages, on a private `redis-server` of the test's own (the shared one is never
//! stopped): REST keeps working on the store while Redis is down, the periodic reconciliation
//! closes devices whose revocation could not be pushed, and once Redis is back (empty, as after a
//! restart) the nodes re-announce their connections and resubscribe, so pushes travel again.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use session_test_support::redis::{Mode, Proxy, RedisServer};

use crate::cluster::{on_redis, three_nodes, until_online};
use crate::helpers::*;
use crate::ws_client::*;

async fn rest_keeps_working_while_redis_is_down_and_reconciliation_closes_revoked_devices(backend: Backend) {
    let mut redis = RedisServer::start().await;
    let base = on_redis(&redis.url(), "outage");
    let [a, b, _c] = three_nodes(backend, move |o: &mut Config| {
        base(o);
        o.fleet.reconcile_interval_ms = 500;
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

/// Redis timeout in the tests below: short, so a frozen or cut-off Redis costs little time.
const TIMEOUT_MS: u64 = 250;
/// Heartbeat of `on_redis` nodes.
const HEARTBEAT_MS: u64 = 200;
/// Allowance on top of a documented bound for a machine busy with other tests.
const SLACK: Duration = Duration::from_millis(1500);

/// `on_redis` with the short [`TIMEOUT_MS`].
fn on_redis_quick(url: &str, prefix: &str) -> impl Fn(&mut Config) + Clone {
    let base = on_redis(url, prefix);
    move |o: &mut Config| {
        base(o);
        o.redis.timeout_ms = TIMEOUT_MS;
    }
}

/// The value of `series` in the node's metrics, 0 if absent.
fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.state().metrics.encode(&[]);
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Polls `GET /session/me` on `app` from `since` until `bound + confirm` has passed: it must
/// answer 401 from `bound` on, never 200. Returns when it was first refused.
async fn refused_from(app: &TestApp, access: &str, since: Instant, bound: Duration, confirm: Duration) -> Duration {
    let mut first_refusal = None;
    while since.elapsed() < bound + confirm {
        let status = app.me(access).await.status();
        let at = since.elapsed();
        match status {
            StatusCode::OK => assert!(at < bound, "the revoked session was still accepted {at:?} after the event"),
            StatusCode::UNAUTHORIZED => _ = first_refusal.get_or_insert(at),
            other => panic!("GET /session/me answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first_refusal.expect("refused at least once")
}

async fn a_session_revoked_while_redis_is_frozen_is_refused_everywhere_within_a_heartbeat_of_the_thaw(
    backend: Backend,
) {
    let redis = RedisServer::start().await;
    let [a, b, _c] = three_nodes(backend, on_redis_quick(&redis.url(), "freeze")).await;
    let created = a.create_session("player-4").await;
    assert_eq!(b.me(&created.access).await.status(), StatusCode::OK); // B caches the session
    redis.freeze();
    let resp = a.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the store is the truth");
    assert_eq!(
        a.me(&created.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "A never trusts what it could not invalidate"
    );
    // Both breakers open (A's at its failed invalidation, B's at its next heartbeat) before the thaw.
    let frozen = Instant::now();
    while !(a.state().fleet.bus().health().open && b.state().fleet.bus().health().open) {
        assert!(frozen.elapsed() < Duration::from_secs(5), "the breakers did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.thaw();
    // Documented bound: A replays the invalidation at its first heartbeat that reaches Redis.
    let bound = Duration::from_millis(HEARTBEAT_MS + TIMEOUT_MS) + SLACK;
    let took = refused_from(&b, &created.access, Instant::now(), bound, Duration::from_secs(1)).await;
    eprintln!("B refused the session {took:?} after the thaw");
}

async fn a_session_revoked_by_a_node_cut_off_from_redis_is_refused_elsewhere_within_the_cache_max_age(
    backend: Backend,
) {
    const MAX_AGE: Duration = Duration::from_secs(2);
    let redis = RedisServer::start().await;
    let proxy = Proxy::start(redis.addr()).await;
    let tweak = |url: String| {
        let base = on_redis_quick(&url, "partition");
        move |o: &mut Config| {
            base(o);
            o.redis.cache_ttl_secs = MAX_AGE.as_secs();
        }
    };
    let a = spawn_app_with(backend, tweak(redis.url())).await;
    let b = a.sibling(tweak(proxy.url())).await; // B reaches Redis through the proxy only
    let created = a.create_session("player-5").await;
    assert_eq!(a.me(&created.access).await.status(), StatusCode::OK); // A fills the shared cache
    let filled = Instant::now();
    proxy.set(Mode::Cut);
    let resp = b.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(b.me(&created.access).await.status(), StatusCode::UNAUTHORIZED, "B reads the store");
    // B cannot invalidate; A's entry was read from the store before `filled` and lives MAX_AGE.
    let took = refused_from(&a, &created.access, filled, MAX_AGE + SLACK, Duration::from_secs(1)).await;
    eprintln!("A refused the session {took:?} after filling its cache entry");
    // Healed, B replays its invalidation and closes its breaker.
    proxy.set(Mode::Open);
    let healed = Instant::now();
    while b.state().fleet.bus().health().open {
        assert!(healed.elapsed() < Duration::from_secs(5), "B's breaker did not close after the heal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn while_redis_is_unreachable_requests_stop_asking_it_and_only_heartbeats_probe(backend: Backend) {
    let redis = RedisServer::start().await;
    let proxy = Proxy::start(redis.addr()).await;
    let base = on_redis(&proxy.url(), "breaker");
    let heartbeat = Duration::from_secs(1);
    let app = spawn_app_with(backend, move |o: &mut Config| {
        base(o);
        o.fleet.heartbeat_ms = heartbeat.as_millis() as u64;
        o.fleet.liveness_ttl_ms = 3000;
    })
    .await;
    let created = app.create_session("player-6").await;
    let other = app.create_session("player-7").await;
    proxy.set(Mode::Refuse);
    assert_eq!(app.me(&created.access).await.status(), StatusCode::OK, "the first call finds Redis gone");
    let (before, started) = (proxy.accepted(), Instant::now());
    let mut calls = 0;
    for round in 0..4 {
        assert_eq!(app.me(&created.access).await.status(), StatusCode::OK);
        assert_eq!(app.validate(&other.refresh).await.status(), StatusCode::OK);
        let path = format!("/sessions/{}", created.id);
        assert_eq!(app.writer(Method::GET, &path).send().await.unwrap().status(), StatusCode::OK);
        let body = serde_json::json!({ "device_name": format!("rig {round}") });
        assert_eq!(app.writer(Method::PUT, &path).json(&body).send().await.unwrap().status(), StatusCode::OK);
        calls += 4;
    }
    // Each beat's probe connects at most twice (a failed connection's first call only starts
    // its reconnection); requests never do.
    let beats = (started.elapsed().as_secs_f64() / heartbeat.as_secs_f64()).ceil() as u64 + 1;
    let tries = proxy.accepted() - before;
    assert!(tries <= 2 * beats + 1, "{calls} requests and {beats} beats made {tries} connection attempts");
    // The breaker's count reaches the metrics at the next beat.
    while metric(&app, "session_bus_short_circuited_total") < f64::from(calls) {
        assert!(started.elapsed() < heartbeat * 5, "short-circuited calls were not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app, "session_bus_breaker_open"), 1.0);
    assert_eq!(metric(&app, "session_bus_breaker_trips_total"), 1.0);
}

async fn while_redis_is_frozen_the_reconciliation_keeps_its_interval(backend: Backend) {
    let interval = Duration::from_millis(100);
    let redis = RedisServer::start().await;
    let base = on_redis(&redis.url(), "reconcile");
    let app = spawn_app_with(backend, move |o: &mut Config| {
        base(o);
        o.redis.timeout_ms = 1000; // every beat waits this long on the frozen Redis
        o.fleet.reconcile_interval_ms = interval.as_millis() as u64;
    })
    .await;
    redis.freeze();
    let frozen = Instant::now();
    while !app.state().fleet.bus().health().open {
        assert!(frozen.elapsed() < Duration::from_secs(5), "no beat noticed the freeze");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (before, started) = (metric(&app, "session_reconciliation_runs_total"), Instant::now());
    tokio::time::sleep(interval * 20).await; // the window over which passes are counted
    let runs = metric(&app, "session_reconciliation_runs_total") - before;
    let due = started.elapsed().as_secs_f64() / interval.as_secs_f64();
    assert!(runs >= due / 2.0, "{runs} reconciliation passes while {due:.0} were due");
    redis.thaw();
}

async fn a_connection_made_while_the_breaker_was_open_is_announced_once_it_closes(backend: Backend) {
    let redis = RedisServer::start().await;
    let proxy = Proxy::start(redis.addr()).await;
    let via_proxy = on_redis(&proxy.url(), "reannounce");
    let a = spawn_app_with(backend, move |o: &mut Config| {
        via_proxy(o);
        o.fleet.heartbeat_ms = 1000; // a long beat, so the breaker's trip happens between two
        o.fleet.liveness_ttl_ms = 3000;
    })
    .await;
    let b = a.sibling(on_redis(&redis.url(), "reannounce")).await;
    let created = a.create_session("player-8").await;
    proxy.set(Mode::Refuse); // drops A's connections: its next call fails and opens the breaker
    assert_eq!(a.get_session(created.id).await["online"], false);
    proxy.set(Mode::Open);
    let _device = a.ws_live(Encoding::Json, &created).await; // its claim may skip Redis
    until_online(&b, created.id, true, Duration::from_secs(5)).await;
}

async fn a_device_that_closed_while_redis_was_frozen_reads_offline_once_redis_is_back(backend: Backend) {
    let redis = RedisServer::start().await;
    let [a, b, _c] = three_nodes(backend, on_redis_quick(&redis.url(), "release")).await;
    let created = a.create_session("player-9").await;
    let device = a.ws_live(Encoding::Json, &created).await;
    until_online(&b, created.id, true, Duration::from_secs(5)).await;
    redis.freeze();
    device.close().await;
    // A's release of the directory entry cannot reach Redis (its call times out, the breaker opens).
    let frozen = Instant::now();
    while !a.state().fleet.bus().health().open {
        assert!(frozen.elapsed() < Duration::from_secs(5), "A's breaker did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.thaw();
    // The entry names A, a live node: only A's retry at its next good beat removes it.
    let took = until_online(&b, created.id, false, Duration::from_millis(HEARTBEAT_MS + TIMEOUT_MS) + SLACK).await;
    eprintln!("offline {took:?} after the thaw");
}

both!(
    a_device_that_closed_while_redis_was_frozen_reads_offline_once_redis_is_back,
    rest_keeps_working_while_redis_is_down_and_reconciliation_closes_revoked_devices,
    after_a_redis_restart_nodes_reannounce_presence_and_pushes_travel_again,
    a_session_revoked_while_redis_is_frozen_is_refused_everywhere_within_a_heartbeat_of_the_thaw,
    a_session_revoked_by_a_node_cut_off_from_redis_is_refused_elsewhere_within_the_cache_max_age,
    while_redis_is_unreachable_requests_stop_asking_it_and_only_heartbeats_probe,
    while_redis_is_frozen_the_reconciliation_keeps_its_interval,
    a_connection_made_while_the_breaker_was_open_is_announced_once_it_closes,
);
