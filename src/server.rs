//! The HTTP server under the router: the accept loop, hyper's connection settings and the bound
//! on open HTTP connections (those not yet upgraded to WebSockets).
//!
//! Three things keep a node answering while strangers hold sockets open:
//! - hyper's header-read timeout runs from the accept, and again from the end of each response on
//!   a keep-alive connection, to the end of the next request's headers: a socket that sends
//!   nothing, sends its headers a byte at a time or idles after a response is closed when it
//!   lapses;
//! - tower-http's request-body timeout ends a body that pauses for too long (the JSON extractor
//!   also gives the whole body a deadline, so a body trickling in a byte at a time ends too);
//! - at most `max_connections` HTTP connections are open. When a new one arrives at the cap, the
//!   oldest connection that is not serving a request is closed to make room (it was idle or still
//!   sending its headers); only when every connection is serving a request is the new one closed.
//!   So a flood of idle sockets can delay a real request by at most one accept, never refuse it.
//!
//! [`FileBudget`] sizes these bounds and the WebSocket ones below the process's file limit, so
//! the node never runs out of descriptors (`accept: Too many open files`).

mod budget;

pub use budget::{FileBudget, Limits};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics::{ListenerMetrics, Metrics};

/// Most header fields hyper accepts; beyond it hyper itself answers an empty 431. The router's own
/// limits (`http::limits`) are lower, so a client normally gets a problem+json answer first.
const HYPER_MAX_HEADERS: usize = 128;
/// hyper's read buffer cap: the request line and headers must fit in it.
const HYPER_MAX_BUF: usize = 64 * 1024;
/// After an accept error (descriptors exhausted despite the budget, say), wait this long before
/// accepting again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// An accept error is logged at most once per this interval; the rest are only counted.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Settings of one HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The listener's name in the metrics (`listener` label): `public` or `ops`.
    pub name: &'static str,
    /// hyper's header-read timeout (see the module docs): also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// Longest pause inside a request body, and the deadline for a whole body.
    pub body_timeout: Duration,
    /// HTTP connections open at once (WebSockets are counted by the gateway once upgraded).
    pub max_connections: usize,
    /// How long shutdown waits for open HTTP connections to finish their requests.
    pub drain_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            name: "public",
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 512,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open connections finish
/// their requests (bounded by the drain timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: HttpConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let metrics = metrics.listener(config.name);
    let pool = Arc::new(Pool::new(config.max_connections, metrics.clone()));
    let tasks = TaskTracker::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(slot) = pool.admit() else {
                    metrics.refused.inc();
                    continue; // every connection is serving a request: drop this one
                };
                let conn =
                    Connection { router: router.clone(), config: config.clone(), slot, peer, stop: stop.clone() };
                tasks.spawn(conn.run(stream));
            }
            Err(e) => {
                accept_errors.record(&e, &metrics);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    tasks.close();
    if tokio::time::timeout(config.drain_timeout, tasks.wait()).await.is_err() {
        tracing::warn!(left = pool.len(), "HTTP drain timeout: dropping the remaining connections");
    }
}

/// Rate-limits the logging of accept errors: under descriptor exhaustion they come every few ms.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    since: u64,
}

impl AcceptErrors {
    fn record(&mut self, e: &std::io::Error, metrics: &ListenerMetrics) {
        metrics.accept_errors.inc();
        self.since += 1;
        if self.last_logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
            tracing::warn!(error = %e, errors = self.since, "accept failed; backing off");
            self.last_logged = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// One accepted HTTP connection and what it needs to serve.
struct Connection {
    router: Router,
    config: HttpConfig,
    slot: SlotGuard,
    peer: SocketAddr,
    stop: CancellationToken,
}

impl Connection {
    /// Serves requests until the peer closes, a timeout fires, the connection upgrades (the
    /// socket then belongs to the WebSocket task and leaves the pool), it is evicted, or the
    /// server stops.
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let Connection { router, config, slot, peer, stop } = self;
        let in_flight = slot.slot.clone();
        let service = router
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(axum::body::Body::new)
            })
            .map_future(move |response| {
                let busy = Busy::start(&in_flight);
                async move {
                    let response = response.await;
                    drop(busy);
                    response
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .max_headers(HYPER_MAX_HEADERS)
            .max_buf_size(HYPER_MAX_BUF);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
        tokio::pin!(conn);
        let mut evictable = true;
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = slot.slot.evicted.notified(), if evictable => {
                    // Dropping the connection closes the socket. A request that started between
                    // the pool's choice and now is answered first, and the connection closes
                    // after it (the pool is over its cap by one until then).
                    if slot.slot.in_flight.load(Ordering::Relaxed) == 0 {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    evictable = false;
                }
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    return;
                }
            }
        }
    }
}

/// A pool entry: how many requests the connection is serving, and its eviction signal.
#[derive(Default)]
struct Slot {
    in_flight: AtomicUsize,
    /// `notify_one` keeps a permit, so an eviction signalled before the task waits is not lost.
    evicted: Notify,
}

/// Marks a connection busy while a request's response is being produced.
struct Busy(Arc<Slot>);

impl Busy {
    fn start(slot: &Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(slot.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open HTTP connections, oldest first.
struct Pool {
    /// By accept order. A std mutex: held for an insert, a removal or the eviction scan (at most
    /// `max` entries, and only at the cap), never across an await.
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
    max: usize,
    metrics: ListenerMetrics,
}

/// Removes its connection from the pool when the connection task ends.
struct SlotGuard {
    pool: Arc<Pool>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut open = self.pool.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(&self.id);
        self.pool.metrics.connections.set(open.len() as i64);
    }
}

impl Pool {
    fn new(max: usize, metrics: ListenerMetrics) -> Self {
        Self { open: Mutex::new(BTreeMap::new()), next: AtomicU64::new(0), max: max.max(1), metrics }
    }

    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A place for a new connection: at the cap, the oldest connection serving no request is
    /// evicted for it. `None` when every connection is serving a request.
    fn admit(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= self.max {
            let idle = open.iter().find(|(_, s)| s.in_flight.load(Ordering::Relaxed) == 0).map(|(id, _)| *id)?;
            if let Some(victim) = open.remove(&idle) {
                victim.evicted.notify_one();
                self.metrics.evicted.inc();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        open.insert(id, slot.clone());
        self.metrics.connections.set(open.len() as i64);
        Some(SlotGuard { pool: self.clone(), id, slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let pool = Arc::new(Pool::new(2, Metrics::new().listener("test")));
        let first = pool.admit().unwrap();
        let second = pool.admit().unwrap();
        let _busy = Busy::start(&first.slot);
        let third = pool.admit().expect("the idle second connection is evicted");
        assert_eq!(pool.len(), 2);
        let open: Vec<u64> = pool.open.lock().unwrap().keys().copied().collect();
        assert_eq!(open, vec![first.id, third.id], "the busy first connection stays");
        drop(second); // its task ends after the eviction; the pool is not touched twice
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn when_every_connection_is_busy_the_new_one_is_refused() {
        let pool = Arc::new(Pool::new(1, Metrics::new().listener("test")));
        let only = pool.admit().unwrap();
        let busy = Busy::start(&only.slot);
        assert!(pool.admit().is_none());
        drop(busy);
        assert!(pool.admit().is_some(), "once idle it can be evicted");
    }
}
