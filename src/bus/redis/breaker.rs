//! The circuit breaker in front of Redis. Without it every request-path call during an outage
//! waits for the connection manager's reconnection (measured ~540 ms a call), and a REST call
//! that makes two of them takes a second. With it, the first call that fails or times out opens
//! the breaker; while it is open request paths get `Unavailable` at once and read the store
//! instead, and only the node's heartbeat (every `NODE_HEARTBEAT_MS`) still asks Redis. When that
//! probe is answered, the node replays its pending invalidations and closes the breaker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::bus::BusHealth;

/// Open/closed and the counts behind [`BusHealth`]. Atomics only: every Redis call consults it.
#[derive(Debug, Default)]
pub(super) struct Breaker {
    open: AtomicBool,
    trips: AtomicU64,
    short_circuited: AtomicU64,
    attempted: AtomicU64,
}

impl Breaker {
    /// Whether a request-path call may go to Redis (counted either way).
    pub(super) fn admit(&self) -> bool {
        if self.open.load(Ordering::Acquire) {
            self.short_circuited.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            self.attempted.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    /// A call failed for want of Redis. Returns whether this opened the breaker, so the outage
    /// is logged once, not once per call.
    pub(super) fn trip(&self) -> bool {
        let opened = !self.open.swap(true, Ordering::AcqRel);
        if opened {
            self.trips.fetch_add(1, Ordering::Relaxed);
        }
        opened
    }

    /// A probe was answered. Returns whether the breaker was open.
    pub(super) fn close(&self) -> bool {
        self.open.swap(false, Ordering::AcqRel)
    }

    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(super) fn health(&self) -> BusHealth {
        BusHealth {
            open: self.is_open(),
            trips: self.trips.load(Ordering::Relaxed),
            short_circuited: self.short_circuited.load(Ordering::Relaxed),
            attempted: self.attempted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_breaker_refuses_request_paths_until_it_is_closed() {
        let breaker = Breaker::default();
        assert!(breaker.admit());
        assert!(breaker.trip(), "the first failure opens it");
        assert!(!breaker.trip(), "a second failure while open is not a new trip");
        assert!(!breaker.admit());
        assert!(!breaker.admit());
        assert!(breaker.close());
        assert!(breaker.admit());
        let health = breaker.health();
        assert_eq!(health, BusHealth { open: false, trips: 1, short_circuited: 2, attempted: 2 });
    }
}
