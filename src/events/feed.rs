//! The revocation feed behind `GET /revocations`: a read of the store's feed that, with nothing
//! new, waits (long-poll) until a revocation is committed on any node or the wait runs out.
//!
//! Wake-up: while at least one request is waiting, one task per node polls the store every
//! [`POLL`] (one query per interval per node, however many requests wait) and wakes every
//! waiter when the feed moved; a revocation made on this node (the [`Announcing`] listener)
//! makes it poll at once. A woken waiter reads its own page again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::session::store::{FeedPage, FeedPosition, FeedQuery, Store, StoreError};
use crate::session::{RevocationListener, SessionRecord};

/// How often a node looks for revocations committed elsewhere while requests wait.
pub const POLL: Duration = Duration::from_millis(200);

/// Revocations one poll reads per query, and the most queries of one poll catching up.
const POLL_PAGE: u32 = 500;
const CATCH_UP_QUERIES: usize = 20;

/// The feed of one node: its waiters, and the poll that wakes them.
pub struct RevocationFeed {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// How long a revocation matters: the longest access-token lifetime.
    window: chrono::Duration,
    max_wait: Duration,
    /// Bumped whenever the feed moved.
    moved: watch::Sender<u64>,
    /// A revocation was committed on this node: poll now.
    kick: Notify,
    waiters: AtomicUsize,
    /// The first waiter arrived.
    wanted: Notify,
    /// The node is shutting down: waiters answer now.
    closed: CancellationToken,
}

/// A revocation read from the feed, with when it stops mattering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub session_id: uuid::Uuid,
    pub user_id: String,
    pub revoked_at: chrono::DateTime<chrono::Utc>,
    /// `revoked_at` + the longest access-token lifetime: no token of the session is still valid
    /// after it (a conservative bound on its last token's expiry).
    pub not_after: chrono::DateTime<chrono::Utc>,
}

/// What a read answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAnswer {
    pub revocations: Vec<FeedEntry>,
    pub cursor: FeedPosition,
    pub has_more: bool,
}

impl RevocationFeed {
    /// The feed over `store`. `window`: the longest access-token lifetime; `max_wait`: the
    /// longest a read waits.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, window: chrono::Duration, max_wait: Duration) -> Self {
        Self {
            store,
            clock,
            window,
            max_wait,
            moved: watch::Sender::new(0),
            kick: Notify::new(),
            waiters: AtomicUsize::new(0),
            wanted: Notify::new(),
            closed: CancellationToken::new(),
        }
    }

    /// The longest a read waits (`events.feed_max_wait_ms`).
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Revocations after `after` (or all still mattering), at most `limit`. With none, waits up
    /// to `wait` (capped by the maximum) for one; an empty answer keeps the cursor given.
    pub async fn read(
        &self,
        after: Option<FeedPosition>,
        wait: Duration,
        limit: u32,
    ) -> Result<FeedAnswer, StoreError> {
        let deadline = Instant::now() + wait.min(self.max_wait);
        let _waiting = (!wait.is_zero()).then(|| Waiting::enter(self));
        let mut moved = self.moved.subscribe();
        loop {
            moved.mark_unchanged();
            let query = FeedQuery { after, since: self.clock.now() - self.window, limit };
            let page = self.store.revocations(&query).await?;
            let done = !page.revocations.is_empty() || Instant::now() >= deadline || self.closed.is_cancelled();
            if done {
                return Ok(self.answer(page, after));
            }
            tokio::select! {
                changed = moved.changed() => if changed.is_err() { return Ok(self.answer(page, after)) },
                () = tokio::time::sleep_until(deadline) => return Ok(self.answer(page, after)),
                () = self.closed.cancelled() => return Ok(self.answer(page, after)),
            }
        }
    }

    fn answer(&self, page: FeedPage, after: Option<FeedPosition>) -> FeedAnswer {
        let cursor = match after {
            Some(after) if page.revocations.is_empty() => after,
            _ => page.cursor,
        };
        let revocations = page
            .revocations
            .into_iter()
            .map(|r| FeedEntry {
                not_after: r.revoked_at + self.window,
                session_id: r.session_id,
                user_id: r.user_id,
                revoked_at: r.revoked_at,
            })
            .collect();
        FeedAnswer { revocations, cursor, has_more: page.has_more }
    }

    /// A revocation was committed on this node: waiters hear of it now rather than at the next
    /// poll.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Answers every waiting read at once (shutdown), and every later one without waiting.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Polls the store while requests wait, until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut head: Option<FeedPosition> = None;
        loop {
            if self.waiters.load(Ordering::Acquire) == 0 {
                // Idle: forget the head (a stale one would be caught up on for nothing).
                head = None;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = self.wanted.notified() => {}
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
                () = self.kick.notified() => {}
            }
            match self.poll(head).await {
                Ok(at) => head = Some(at),
                Err(e) => tracing::debug!(error = &e as &dyn std::error::Error, "revocation feed poll failed"),
            }
        }
    }

    /// Reads the feed after `head` and wakes the waiters if it moved; returns the new head. The
    /// first poll (no head) only finds the head, and wakes the waiters in case something came
    /// between their read and it.
    async fn poll(&self, head: Option<FeedPosition>) -> Result<FeedPosition, StoreError> {
        let Some(mut at) = head else {
            // Nothing is made in the future: this reads only the cursor at the feed's end.
            let query = FeedQuery { after: None, since: self.clock.now() + chrono::Duration::days(1), limit: 1 };
            let page = self.store.revocations(&query).await?;
            self.bump();
            return Ok(page.cursor);
        };
        let mut moved = false;
        for _ in 0..CATCH_UP_QUERIES {
            let query = FeedQuery { after: Some(at), since: self.clock.now() - self.window, limit: POLL_PAGE };
            let page = self.store.revocations(&query).await?;
            moved |= !page.revocations.is_empty();
            at = page.cursor;
            if !page.has_more {
                break;
            }
        }
        if moved {
            self.bump();
        }
        Ok(at)
    }

    fn bump(&self) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A waiting read, counted while it lives.
struct Waiting<'a>(&'a RevocationFeed);

impl<'a> Waiting<'a> {
    fn enter(feed: &'a RevocationFeed) -> Self {
        if feed.waiters.fetch_add(1, Ordering::AcqRel) == 0 {
            feed.wanted.notify_one();
        }
        Self(feed)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The node's revocation listener with the feed told first: a waiting read on this node hears of
/// a revocation made here without waiting for the next poll.
pub struct Announcing {
    inner: Arc<dyn RevocationListener>,
    feed: Arc<RevocationFeed>,
}

impl Announcing {
    pub fn new(inner: Arc<dyn RevocationListener>, feed: Arc<RevocationFeed>) -> Self {
        Self { inner, feed }
    }
}

#[async_trait]
impl RevocationListener for Announcing {
    async fn revoked(&self, sessions: &[SessionRecord], reason: &str) {
        self.feed.kick();
        self.inner.revoked(sessions, reason).await;
    }
}
