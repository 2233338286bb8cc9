//! The outbox's retention: delivered rows are deleted once `sent_retention` old; with no broker
//! (nothing is ever delivered), every row once `unsent_retention` old. An undelivered row is never
//! deleted while a broker is configured. Deletes go in bounded batches, oldest first.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::EventsConfig;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::session::store::{OutboxPrune, Store, StoreError};

/// How often the sweep runs.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Most rows one delete removes.
pub const BATCH: u32 = 1000;
/// Most batches one sweep deletes (a million rows), so that one sweep ends; the next goes on.
const MAX_BATCHES: usize = 1000;

/// The sweep of one node (every node runs one; their deletes skip each other's rows).
pub struct Retention {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    scope: OutboxPrune,
    age: Duration,
}

impl Retention {
    /// The retention `config` asks for: delivered rows after `sent_retention` with a broker,
    /// any row after `unsent_retention` without one.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>, config: &EventsConfig) -> Self {
        let (scope, age) = match config.nats_url {
            Some(_) => (OutboxPrune::Delivered, config.sent_retention),
            None => (OutboxPrune::Any, config.unsent_retention),
        };
        Self { store, clock, metrics, scope, age }
    }

    /// Sweeps at once, then every [`INTERVAL`], until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => match self.sweep(&cancel).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, scope = ?self.scope, "outbox rows past their retention deleted"),
                    Err(e) => tracing::warn!(error = %e, "outbox retention sweep failed; retrying next interval"),
                },
            }
        }
    }

    /// Deletes what is past retention now, batch after batch until a batch comes back short;
    /// returns how many rows went.
    pub async fn sweep(&self, cancel: &CancellationToken) -> Result<u64, StoreError> {
        let age = chrono::Duration::from_std(self.age).unwrap_or(chrono::Duration::MAX);
        let before = self.clock.now().checked_sub_signed(age).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let mut deleted = 0;
        for _ in 0..MAX_BATCHES {
            let n = self.store.prune_outbox(self.scope, before, BATCH).await?;
            deleted += n;
            self.metrics.outbox_pruned(n);
            if n < u64::from(BATCH) || cancel.is_cancelled() {
                break;
            }
        }
        Ok(deleted)
    }
}
