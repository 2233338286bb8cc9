//! Upgraded sockets that have not authenticated yet. They are capped on their own, apart from the
//! authenticated connections: a socket that upgrades and never sends `auth` must not be able to
//! take a place a real player needs. At the cap, the oldest waiting socket is closed to make room
//! for the new one (a real client authenticates within a round trip, so the oldest is almost
//! always one that never will).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The waiting sockets, oldest first.
pub struct Pending {
    /// Each socket's eviction token, by arrival. A std mutex: held for an insert or a removal,
    /// never across an await.
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
    next: AtomicU64,
    max: usize,
}

/// A socket's place among the waiting ones; leaving it (dropping the guard) frees the place.
pub struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
    /// Cancelled when the socket is evicted, or when the node drains (a child of its token).
    pub token: CancellationToken,
}

impl Pending {
    pub fn new(max: usize) -> Self {
        Self { waiting: Mutex::new(BTreeMap::new()), next: AtomicU64::new(0), max: max.max(1) }
    }

    /// Enters a new socket, evicting the oldest waiting one if the cap is reached. `shutdown` is
    /// the node's drain token. Returns the new socket's place and whether one was evicted.
    pub fn enter(&self, shutdown: &CancellationToken) -> (Waiting<'_>, bool) {
        let token = shutdown.child_token();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let evicted = waiting.len() >= self.max;
        if evicted {
            if let Some((_, oldest)) = waiting.pop_first() {
                oldest.cancel();
            }
        }
        waiting.insert(id, token.clone());
        (Waiting { pending: self, id, token }, evicted)
    }

    /// Sockets waiting to authenticate.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_waiting_socket_is_evicted() {
        let shutdown = CancellationToken::new();
        let pending = Pending::new(2);
        let (first, _) = pending.enter(&shutdown);
        let (second, _) = pending.enter(&shutdown);
        let (third, evicted) = pending.enter(&shutdown);
        assert!(evicted);
        assert!(first.token.is_cancelled(), "the oldest made room");
        assert!(!second.token.is_cancelled() && !third.token.is_cancelled());
        assert_eq!(pending.len(), 2);
        drop(first);
        drop(second);
        assert_eq!(pending.len(), 1, "a socket that authenticated or left frees its place");
    }

    #[test]
    fn draining_the_node_reaches_every_waiting_socket() {
        let shutdown = CancellationToken::new();
        let pending = Pending::new(4);
        let (one, _) = pending.enter(&shutdown);
        shutdown.cancel();
        assert!(one.token.is_cancelled());
    }
}
