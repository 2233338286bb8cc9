//! The live connections this node holds: a `DashMap` keyed by session, an index by user, and the
//! small shared state each connection exposes to the rest of the node (push queue, heartbeat and
//! token deadlines). Heartbeats touch only this memory; `last_seen` reaches the store in batches
//! (`take_seen`), never once per heartbeat.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Pushes a connection's queue can hold. Pushes are rare (revoked, replaced, token warnings,
/// timeouts), so a full queue means the connection task is stuck writing to a client that does
/// not read: it is then killed rather than allowed to grow memory.
pub const PUSH_QUEUE: usize = 8;

/// What the node asks a connection to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// The session was revoked: send `revoked`, close 4101.
    Revoked(Arc<str>),
    /// A newer connection of the same session took over: close 4103.
    Replaced,
    /// No activity within the heartbeat timeout: close 4001.
    HeartbeatTimeout,
    /// The access token expires soon (epoch ms): send `token_expiring`.
    TokenExpiring(i64),
    /// The access token expired and was not refreshed in time: close 4007.
    TokenExpired,
}

/// The part of a connection the node shares. The connection task owns the socket; everything
/// else reaches it through here.
#[derive(Debug)]
pub struct LiveConnection {
    pub id: u64,
    pub session_id: Uuid,
    pub user_id: Arc<str>,
    /// When this connection registered (epoch ms, system clock: nodes compare it with each
    /// other): a replacement from another node closes only connections not newer than itself.
    pub since_ms: i64,
    /// Bounded push queue. Not a tokio mpsc: that allocates a 32-slot block per channel up front
    /// (~1.3 KB per connection, measured), while a `VecDeque` allocates on the first push, which
    /// most connections never get. A std Mutex: held for a push or pop, never across an await.
    queue: Mutex<VecDeque<Push>>,
    /// Wakes the connection task; `notify_one` keeps a permit when nobody waits, so a push
    /// between the task's empty check and its wait is not lost.
    wake: Notify,
    /// Cancelled to drop a connection that cannot take a push (a child of the node's shutdown
    /// token, so shutdown reaches it too).
    pub kill: CancellationToken,
    /// Last activity, epoch ms (atomics: written by the connection, read by the sweep).
    last_seen_ms: AtomicI64,
    /// `last_seen_ms` as of the last flush to the store.
    flushed_seen_ms: AtomicI64,
    access_exp_ms: AtomicI64,
    warned: AtomicBool,
}

impl LiveConnection {
    /// Records activity at `now_ms`.
    pub fn touch(&self, now_ms: i64) {
        self.last_seen_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// The connection now runs on an access token expiring at `exp_ms`.
    pub fn set_access_expiry(&self, exp_ms: i64) {
        self.access_exp_ms.store(exp_ms, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
    }

    /// Queues a push without waiting; `false` if it could not be queued. A full queue kills the
    /// connection (slow consumer).
    #[must_use = "a push that was not queued is counted as failed"]
    pub fn push(&self, push: Push) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.len() >= PUSH_QUEUE {
            drop(queue);
            tracing::info!(session.id = %self.session_id, "push queue full: dropping slow connection");
            self.kill.cancel();
            return false;
        }
        queue.push_back(push);
        drop(queue);
        self.wake.notify_one();
        true
    }

    /// The next push, without waiting.
    pub fn try_next_push(&self) -> Option<Push> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front()
    }

    /// Waits for the next push.
    pub async fn next_push(&self) -> Push {
        loop {
            if let Some(push) = self.try_next_push() {
                return push;
            }
            self.wake.notified().await;
        }
    }
}

/// What one sweep did, for the push counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// `token_expiring` warnings queued.
    pub warned: u64,
    /// Warnings that could not be queued (the connection's queue was full).
    pub warnings_failed: u64,
}

/// Deadlines the sweep enforces.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub heartbeat_timeout_ms: i64,
    pub token_warning_ms: i64,
    pub token_grace_ms: i64,
}

#[derive(Debug, Default)]
pub struct LiveConnections {
    conns: DashMap<Uuid, Arc<LiveConnection>>,
    by_user: DashMap<Arc<str>, Vec<Uuid>>,
    next_id: AtomicU64,
    /// Last activity of connections that ended since the last flush.
    departed: Mutex<Vec<(Uuid, i64)>>,
}

impl LiveConnections {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Registers the live connection of `session_id`, replacing (and telling) any earlier one.
    pub fn register(
        &self,
        session_id: Uuid,
        user_id: &str,
        access_exp_ms: i64,
        now_ms: i64,
        parent: &CancellationToken,
    ) -> Arc<LiveConnection> {
        let conn = Arc::new(LiveConnection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            session_id,
            user_id: Arc::from(user_id),
            since_ms: chrono::Utc::now().timestamp_millis(),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            kill: parent.child_token(),
            last_seen_ms: AtomicI64::new(now_ms),
            flushed_seen_ms: AtomicI64::new(0),
            access_exp_ms: AtomicI64::new(access_exp_ms),
            warned: AtomicBool::new(false),
        });
        // The map's entry guard is dropped at the end of the statement, before the push.
        let previous = self.conns.insert(session_id, conn.clone());
        match previous {
            // Not queued means the old connection was already being dropped: the outcome sought.
            Some(old) => {
                let _queued = old.push(Push::Replaced);
            }
            None => self.by_user.entry(conn.user_id.clone()).or_default().push(session_id),
        }
        conn
    }

    /// Removes `conn` if it is still the session's current connection.
    pub fn unregister(&self, conn: &LiveConnection) {
        if self.conns.remove_if(&conn.session_id, |_, c| c.id == conn.id).is_none() {
            return;
        }
        self.by_user.remove_if_mut(&conn.user_id, |_, sessions| {
            sessions.retain(|s| *s != conn.session_id);
            sessions.is_empty()
        });
        let mut departed = self.departed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        departed.push((conn.session_id, conn.last_seen_ms()));
    }

    pub fn get(&self, session_id: &Uuid) -> Option<Arc<LiveConnection>> {
        self.conns.get(session_id).map(|c| c.clone())
    }

    pub fn is_online(&self, session_id: &Uuid) -> bool {
        self.conns.contains_key(session_id)
    }

    /// Sessions of `user_id` connected here.
    pub fn sessions_of(&self, user_id: &str) -> Vec<Uuid> {
        self.by_user.get(user_id).map(|s| s.clone()).unwrap_or_default()
    }

    /// Pushes to every connection; used for draining.
    pub fn all(&self) -> Vec<Arc<LiveConnection>> {
        self.conns.iter().map(|c| c.value().clone()).collect()
    }

    /// One pass over every connection: heartbeat timeouts, token warnings and token expiry.
    /// A timeout or expiry that cannot be queued has killed the connection, which is its point;
    /// the `token_expiring` warnings are counted for the caller.
    pub fn sweep(&self, now_ms: i64, d: &Deadlines) -> Swept {
        let mut swept = Swept::default();
        for entry in &self.conns {
            let conn = entry.value();
            if now_ms - conn.last_seen_ms() > d.heartbeat_timeout_ms {
                let _queued = conn.push(Push::HeartbeatTimeout);
                continue;
            }
            let exp = conn.access_exp_ms.load(Ordering::Relaxed);
            if now_ms >= exp + d.token_grace_ms {
                let _queued = conn.push(Push::TokenExpired);
            } else if now_ms >= exp - d.token_warning_ms && !conn.warned.swap(true, Ordering::Relaxed) {
                if conn.push(Push::TokenExpiring(exp)) {
                    swept.warned += 1;
                } else {
                    swept.warnings_failed += 1;
                }
            }
        }
        swept
    }

    /// Puts back activity a failed flush could not write, for the next flush (writing a time
    /// twice is harmless: the store never moves `last_seen` backwards).
    pub fn requeue_seen(&self, seen: Vec<(Uuid, DateTime<Utc>)>) {
        let mut departed = self.departed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        departed.extend(seen.into_iter().map(|(id, at)| (id, at.timestamp_millis())));
    }

    /// Activity not yet written to the store: live connections seen since the last call, and
    /// connections that ended. Marks them flushed.
    pub fn take_seen(&self) -> Vec<(Uuid, DateTime<Utc>)> {
        let departed = std::mem::take(&mut *self.departed.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let live = self.conns.iter().filter_map(|entry| {
            let conn = entry.value();
            let seen = conn.last_seen_ms();
            (conn.flushed_seen_ms.swap(seen, Ordering::Relaxed) != seen).then_some((conn.session_id, seen))
        });
        departed
            .into_iter()
            .chain(live.collect::<Vec<_>>())
            .filter_map(|(id, ms)| DateTime::from_timestamp_millis(ms).map(|t| (id, t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines { heartbeat_timeout_ms: 45_000, token_warning_ms: 60_000, token_grace_ms: 30_000 };

    fn registry() -> (LiveConnections, CancellationToken) {
        (LiveConnections::new(), CancellationToken::new())
    }

    #[test]
    fn a_second_connection_replaces_the_first_and_only_the_current_one_unregisters() {
        let (r, root) = registry();
        let sid = Uuid::new_v4();
        let first = r.register(sid, "u", 1_000_000, 0, &root);
        let second = r.register(sid, "u", 1_000_000, 0, &root);
        assert_eq!(first.try_next_push(), Some(Push::Replaced));
        r.unregister(&first);
        assert!(r.is_online(&sid), "the old connection leaving must not remove the new one");
        assert_eq!(r.sessions_of("u"), vec![sid]);
        r.unregister(&second);
        assert!(!r.is_online(&sid));
        assert!(r.sessions_of("u").is_empty());
    }

    #[test]
    fn a_revocation_reaches_the_connection_of_that_session_only() {
        let (r, root) = registry();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ca = r.register(a, "u", 1_000_000, 0, &root);
        let cb = r.register(b, "u", 1_000_000, 0, &root);
        assert!(r.get(&a).unwrap().push(Push::Revoked(Arc::from("logout"))));
        assert_eq!(ca.try_next_push(), Some(Push::Revoked(Arc::from("logout"))));
        assert!(cb.try_next_push().is_none());
    }

    #[test]
    fn a_full_queue_kills_the_connection_instead_of_growing() {
        let (r, root) = registry();
        let conn = r.register(Uuid::new_v4(), "u", 1_000_000, 0, &root);
        for _ in 0..PUSH_QUEUE {
            assert!(conn.push(Push::HeartbeatTimeout));
        }
        assert!(!conn.kill.is_cancelled());
        assert!(!conn.push(Push::HeartbeatTimeout), "a push beyond the queue is refused");
        assert!(conn.kill.is_cancelled());
    }

    #[test]
    fn the_sweep_times_out_silent_connections_and_warns_once_before_token_expiry() {
        let (r, root) = registry();
        let quiet = r.register(Uuid::new_v4(), "u", 10_000_000, 0, &root);
        let busy = r.register(Uuid::new_v4(), "v", 100_000, 0, &root);
        busy.touch(45_000);
        r.sweep(45_000, &D);
        assert!(quiet.try_next_push().is_none(), "exactly at the timeout is not yet past it");
        assert_eq!(busy.try_next_push(), Some(Push::TokenExpiring(100_000)));
        quiet.touch(0);
        r.sweep(45_001, &D);
        assert_eq!(quiet.try_next_push(), Some(Push::HeartbeatTimeout));
        assert!(busy.try_next_push().is_none(), "the warning is sent once per token");
        busy.touch(130_000);
        r.sweep(130_000, &D);
        assert_eq!(busy.try_next_push(), Some(Push::TokenExpired));
        busy.set_access_expiry(500_000);
        busy.touch(440_000);
        r.sweep(440_000, &D);
        assert_eq!(busy.try_next_push(), Some(Push::TokenExpiring(500_000)), "a new token re-arms the warning");
    }

    #[test]
    fn seen_times_are_flushed_once_and_departed_connections_are_included() {
        let (r, root) = registry();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ca = r.register(a, "u", 1_000_000, 1_000, &root);
        let cb = r.register(b, "v", 1_000_000, 1_000, &root);
        let mut first = r.take_seen();
        first.sort();
        assert_eq!(first.len(), 2);
        assert!(r.take_seen().is_empty(), "nothing new since the last flush");
        ca.touch(2_000);
        assert_eq!(r.take_seen(), vec![(a, DateTime::from_timestamp_millis(2_000).unwrap())]);
        cb.touch(3_000);
        r.unregister(&cb);
        assert_eq!(r.take_seen(), vec![(b, DateTime::from_timestamp_millis(3_000).unwrap())]);
    }

    #[test]
    fn activity_from_a_failed_flush_goes_out_with_the_next_one() {
        let (r, root) = registry();
        let a = Uuid::new_v4();
        let conn = r.register(a, "u", 1_000_000, 5_000, &root);
        let failed = r.take_seen();
        assert!(r.take_seen().is_empty());
        r.requeue_seen(failed.clone());
        assert_eq!(r.take_seen(), failed);
        drop(conn);
    }
}
