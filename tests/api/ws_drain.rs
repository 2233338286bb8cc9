//! Graceful shutdown reaches WebSocket clients: each gets `draining{reconnect_after_ms}` (within
//! the configured jitter) and close 4000, upgrades during the drain are refused, and `App::run`
//! returns within the drain timeout. SQLite only: draining does not depend on the store.

use std::time::{Duration, Instant};

use session_client::proto::ws::{close, ServerFrame};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::helpers::*;
use crate::ws_client::*;

const JITTER_MS: u64 = 300;
const DRAIN_TIMEOUT: Duration = Duration::from_millis(1500);

async fn draining_node(backend: Backend) -> TestApp {
    spawn_app_with(backend, |o| {
        o.drain.jitter_ms = JITTER_MS;
        o.drain.timeout_ms = DRAIN_TIMEOUT.as_millis() as u64;
    })
    .await
}

async fn expect_draining(ws: &mut WsClient) {
    match ws.next_frame().await {
        ServerFrame::Draining { reconnect_after_ms } => {
            assert!(reconnect_after_ms <= JITTER_MS, "reconnect_after_ms {reconnect_after_ms} over the jitter");
        }
        other => panic!("expected draining, got {other:?}"),
    }
}

async fn shutdown_tells_every_client_to_reconnect_and_run_returns(backend: Backend) {
    let mut app = draining_node(backend).await;
    let mut clients = Vec::new();
    for i in 0..4 {
        let created = app.create_session(&format!("user-{i}")).await;
        clients.push(app.ws_live(Encoding::BOTH[i % 2], &created).await);
    }
    let started = Instant::now();
    let stopped = app.shut_down();
    for ws in &mut clients {
        expect_draining(ws).await;
        ws.expect_close(close::DRAINING).await;
    }
    tokio::time::timeout(DRAIN_TIMEOUT, stopped).await.expect("run returns within the drain timeout").unwrap();
    assert!(started.elapsed() < DRAIN_TIMEOUT, "stopped after {:?}", started.elapsed());
}

async fn upgrades_during_the_drain_are_refused(backend: Backend) {
    let mut app = draining_node(backend).await;
    let created = app.create_session("user-1").await;
    let mut ws = app.ws_live(Encoding::Msgpack, &created).await;
    let stopped = app.shut_down();
    // Not reading past `draining` keeps the node waiting for this client's close handshake.
    expect_draining(&mut ws).await;
    match app.ws_upgrade(&[Encoding::Json.protocol()], Some(&created.access)).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok());
            assert_eq!(content_type, Some("application/problem+json"));
        }
        Err(other) => panic!("expected a 503 answer, got {other}"),
        Ok(_) => panic!("an upgrade during the drain was accepted"),
    }
    ws.expect_close(close::DRAINING).await;
    tokio::time::timeout(DRAIN_TIMEOUT, stopped).await.expect("run returns within the drain timeout").unwrap();
}

async fn a_client_that_never_answers_does_not_hold_up_shutdown(backend: Backend) {
    let mut app = spawn_app_with(backend, |o| o.drain.timeout_ms = 300).await;
    let created = app.create_session("user-1").await;
    let _silent = app.ws_live(Encoding::Json, &created).await;
    let started = Instant::now();
    let stopped = app.shut_down();
    tokio::time::timeout(Duration::from_secs(3), stopped).await.expect("run returns").unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "run returned {took:?} after the signal (drain timeout 300 ms)");
}

async fn a_connection_still_authenticating_is_drained_too(backend: Backend) {
    let mut app = spawn_app_with(backend, |o| {
        o.drain.jitter_ms = JITTER_MS;
        o.gateway.auth_timeout_ms = 3000;
    })
    .await;
    let mut ws = app.ws(Encoding::Json, None).await;
    ws.send(&session_client::proto::ws::ClientFrame::Ping { id: Some(1), ts: 1 }).await;
    ws.expect_error("not_authenticated").await;
    let started = Instant::now();
    let stopped = app.shut_down();
    expect_draining(&mut ws).await;
    ws.expect_close(close::DRAINING).await;
    assert!(started.elapsed() < Duration::from_secs(1), "drained after {:?}", started.elapsed());
    tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("run returns").unwrap();
}

sqlite_only!(
    shutdown_tells_every_client_to_reconnect_and_run_returns,
    upgrades_during_the_drain_are_refused,
    a_client_that_never_answers_does_not_hold_up_shutdown,
    a_connection_still_authenticating_is_drained_too,
);
