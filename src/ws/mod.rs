//! The real-time gateway: `GET /ws`. Game clients hold a WebSocket that carries heartbeats, token
//! refresh and server pushes (docs/protocol.md).
//!
//! - [`codec`]: the SDK codec in axum messages, the negotiated encoding, and inbound limits;
//! - [`conn`]: one connection's state machine;
//! - [`close`]: why the server closes a connection, with its codes;
//! - [`pending`]: sockets still waiting to authenticate;
//! - this module: the node-wide [`Gateway`] (config, connection tracking, the sweep that enforces
//!   deadlines and flushes presence) and [`accept`], which completes an upgrade the HTTP layer
//!   accepted (`http::gateway` serves the route).

pub mod close;
pub mod codec;
pub mod conn;
pub mod pending;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use session_client::proto::ws::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::metrics::{Metrics, PushKind};
use crate::registry::{Deadlines, LiveConnections};
use crate::session::SessionService;
use codec::InboundLimits;
use pending::Pending;

/// Sessions per `last_seen` statement.
pub const FLUSH_CHUNK: usize = 250;

/// Gateway settings (docs/protocol.md lists them with their defaults).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub auth_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub token_warning: Duration,
    pub token_grace: Duration,
    /// Authenticated connections per node.
    pub max_connections: usize,
    /// Upgraded sockets still waiting to authenticate; at the cap the oldest is closed.
    pub max_pending: usize,
    pub inbound: InboundLimits,
    /// A write that does not complete in this time drops the connection (slow consumer).
    pub write_timeout: Duration,
    /// tungstenite's read buffer per connection: the largest single cost of an idle connection.
    pub read_buffer_bytes: usize,
    pub sweep_interval: Duration,
    pub presence_flush_interval: Duration,
    /// Upper bound of the random reconnect delay sent in `draining`.
    pub drain_jitter: Duration,
    /// How long shutdown waits for connections to close.
    pub drain_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            auth_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(15),
            heartbeat_timeout: Duration::from_secs(45),
            token_warning: Duration::from_secs(60),
            token_grace: Duration::from_secs(30),
            max_connections: 20_000,
            max_pending: 256,
            inbound: InboundLimits {
                max_message_bytes: 4096,
                messages_per_sec: 20.0,
                burst: 40.0,
                max_malformed_in_a_row: 5,
            },
            write_timeout: Duration::from_secs(10),
            read_buffer_bytes: 1024,
            sweep_interval: Duration::from_secs(1),
            presence_flush_interval: Duration::from_secs(5),
            drain_jitter: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// The node's gateway: everything a connection needs besides its socket.
pub struct Gateway {
    pub sessions: Arc<SessionService>,
    pub registry: Arc<LiveConnections>,
    /// Presence claims and cross-node replacement for new connections.
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
    pub config: GatewayConfig,
    /// Cancelled when the node starts draining; every connection's kill switch is a child.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them (axum runs upgraded sockets detached).
    pub tasks: TaskTracker,
    clock: Arc<dyn Clock>,
    /// Upgraded connections, authenticated or not.
    open: AtomicUsize,
    /// Authenticated connections holding a place under `max_connections`.
    seats: AtomicUsize,
    /// Upgraded sockets waiting to authenticate.
    pub pending: Pending,
}

/// Decrements the open-connection count when a connection task ends.
pub struct OpenGuard<'a>(&'a AtomicUsize);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gateway {
    pub fn new(
        sessions: Arc<SessionService>,
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        config: GatewayConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            registry: fleet.registry().clone(),
            fleet,
            metrics,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            clock,
            open: AtomicUsize::new(0),
            seats: AtomicUsize::new(0),
            pending: Pending::new(config.max_pending),
            config,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn open_guard(&self) -> OpenGuard<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(&self.open)
    }

    /// Upgraded connections (including this one, from inside a connection task).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a place for an authenticated connection, unless `max_connections` are taken; the
    /// connection's registration gives it back.
    fn take_seat(&self) -> bool {
        let max = self.config.max_connections;
        self.seats.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).is_ok()
    }

    fn release_seat(&self) {
        self.seats.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn deadlines(&self) -> Deadlines {
        let ms = |d: Duration| d.as_millis() as i64;
        Deadlines {
            heartbeat_timeout_ms: ms(self.config.heartbeat_timeout),
            token_warning_ms: ms(self.config.token_warning),
            token_grace_ms: ms(self.config.token_grace),
        }
    }

    /// One pass of the deadline sweep at the clock's current time.
    pub fn sweep(&self) {
        let swept = self.registry.sweep(self.now_ms(), &self.deadlines());
        self.metrics.pushes(PushKind::TokenExpiring, swept.warned, swept.warnings_failed);
        self.metrics.set_connections(self.registry.len() as i64);
    }

    /// Writes the activity gathered since the last flush to the store, in statements of at most
    /// [`FLUSH_CHUNK`] sessions: each holds its rows' locks only for its own short transaction, so
    /// a revocation of one of those sessions never waits behind thousands of others (measured:
    /// one statement for a node's whole batch put the cross-node revoke p99 at 83 ms with 10,000
    /// connections; docs/performance.md).
    pub async fn flush_presence(&self) {
        let seen = self.registry.take_seen();
        let mut chunks = seen.chunks(FLUSH_CHUNK);
        while let Some(chunk) = chunks.next() {
            if let Err(e) = self.sessions.record_last_seen(chunk).await {
                let left: Vec<_> = chunk.iter().chain(chunks.flatten()).copied().collect();
                let error = &e as &dyn std::error::Error;
                tracing::warn!(error, sessions = left.len(), "flushing last_seen failed; retrying next flush");
                self.registry.requeue_seen(left);
                return;
            }
        }
    }

    /// Runs the deadline sweep and the presence flush until the node drains, then flushes once
    /// more.
    pub async fn run_sweeper(self: Arc<Self>, stop: CancellationToken) {
        let mut sweep = tokio::time::interval(self.config.sweep_interval);
        let mut flush = tokio::time::interval(self.config.presence_flush_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = sweep.tick() => self.sweep(),
                _ = flush.tick() => self.flush_presence().await,
            }
        }
        self.flush_presence().await;
    }

    /// Tells every connection to reconnect elsewhere and waits (bounded) for them to close.
    pub async fn drain(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(self.config.drain_timeout, self.tasks.wait()).await.is_err() {
            tracing::warn!(left = self.open_connections(), "drain timeout: dropping the remaining connections");
        }
    }
}

/// Completes an accepted upgrade (the HTTP layer has checked the request): negotiates
/// `session.v1.msgpack` or `session.v1.json`, sizes the socket's buffers, and runs the connection
/// under the gateway's task tracker. `bearer` is the access token from the upgrade's
/// `Authorization` header, if any; `ip` is the client's address.
pub fn accept(gw: Arc<Gateway>, upgrade: WebSocketUpgrade, bearer: Option<String>, ip: Option<String>) -> Response {
    let upgrade = upgrade
        .protocols([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON])
        .read_buffer_size(gw.config.read_buffer_bytes)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024);
    let encoding = codec::negotiated(upgrade.selected_protocol().and_then(|p| p.to_str().ok()));
    let tasks = gw.tasks.clone();
    upgrade.on_upgrade(move |socket| {
        let socket = conn::Socket::new(socket, encoding, gw.config.write_timeout);
        tasks.track_future(conn::serve(socket, gw, bearer, ip))
    })
}
