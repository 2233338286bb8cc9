//! Session counts by stored state, for the operator endpoints. Counting every row takes tens of
//! milliseconds on a large table (87 ms at 500,000 sessions on Postgres), so it runs in the
//! background every `STATS_REFRESH_MS` and scrapes read the last result: a burst of scrapers costs
//! the store nothing, and cannot crowd `/readyz` or the API out of the connection pool.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::session::SessionService;
use crate::session::SessionStatus;

/// Sessions per stored state, as of one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active: i64,
    pub revoked: i64,
    pub expired: i64,
    /// When the store was counted; `None` before the first count succeeded.
    pub counted_at: Option<DateTime<Utc>>,
}

/// The latest counts, shared by the endpoints and refreshed by [`Census::run`].
#[derive(Debug, Default)]
pub struct Census {
    /// A std lock: held to copy a few integers in or out, never across an await.
    latest: RwLock<Counts>,
}

impl Census {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The last counts (zeros and no `counted_at` until the first count).
    pub fn latest(&self) -> Counts {
        *self.latest.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts the store now. A failure keeps the previous counts (and their time).
    pub async fn refresh(&self, sessions: &SessionService, now: DateTime<Utc>) {
        match sessions.count_by_status().await {
            Ok(rows) => {
                let mut counts = Counts { counted_at: Some(now), ..Counts::default() };
                for (status, n) in rows {
                    match status {
                        SessionStatus::Active => counts.active = n,
                        SessionStatus::Revoked => counts.revoked = n,
                        SessionStatus::Expired => counts.expired = n,
                    }
                }
                *self.latest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = counts;
            }
            Err(e) => {
                let error = &e as &dyn std::error::Error;
                tracing::warn!(error, "counting sessions failed; keeping the last counts");
            }
        }
    }

    /// Counts at once, then every `interval`, until `stop`.
    pub async fn run(self: Arc<Self>, sessions: Arc<SessionService>, interval: Duration, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => self.refresh(&sessions, sessions.now()).await,
            }
        }
    }
}
