//! The node's background work as a cluster member, in two loops that never wait for each other:
//! the heartbeat (liveness key, the bus's probe, re-announcing presence after the bus lost it)
//! and the reconciliation (live connections against the store). The reconciliation needs only
//! the store, so it keeps its interval through a Redis outage: when both shared one loop, a beat
//! held by Redis for half a second each time took most of the loop's turns, and a revocation
//! that could not be pushed waited several intervals for its reconciliation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Fleet, RECONCILE_BATCH};
use crate::bus::Liveness;
use crate::metrics::BusOp;

impl Fleet {
    /// Runs until `cancel`: the heartbeat and the reconciliation, side by side. Leaves the
    /// cluster on the way out.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        tokio::join!(cancel.run_until_cancelled(self.beat_loop()), cancel.run_until_cancelled(self.reconcile_loop()));
        if let Err(e) = self.bus.leave().await {
            tracing::debug!(error = %e, "could not remove the liveness key; it lapses with its TTL");
        }
    }

    async fn beat_loop(&self) {
        let mut beat = tokio::time::interval(self.config.heartbeat_interval);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            beat.tick().await;
            self.beat().await;
        }
    }

    /// Every reconciliation interval, and at once when the bus comes back or resubscribes.
    async fn reconcile_loop(&self) {
        let mut every = tokio::time::interval(self.config.reconcile_interval);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        every.tick().await; // the first tick is immediate; connections are all fresh
        loop {
            tokio::select! {
                _ = every.tick() => {}
                // A permit is kept if nobody waits, so a request made during a pass is not lost.
                () = self.reconcile_now.notified() => every.reset(),
            }
            self.reconcile().await;
        }
    }

    async fn beat(&self) {
        let beat = self.bus.heartbeat(&self.info()).await;
        let health = self.bus.health();
        self.metrics.set_bus_breaker(health.open, health.trips, health.short_circuited);
        let tripped = health.trips > self.trips_seen.swap(health.trips, Ordering::Relaxed);
        match beat {
            Ok(liveness) => {
                let was_degraded = self.degraded.swap(false, Ordering::Relaxed);
                self.metrics.set_bus_connected(true);
                self.retry_releases().await;
                if liveness == Liveness::Recreated || was_degraded || tripped {
                    tracing::info!("bus state lost or unreachable meanwhile: re-announcing presence");
                    let entries: Vec<(Arc<str>, Uuid)> =
                        self.registry.all().iter().map(|c| (c.user_id.clone(), c.session_id)).collect();
                    if let Err(e) = self.bus.claim_all(&entries).await {
                        self.metrics.bus_error(BusOp::Claim);
                        tracing::warn!(error = %e, "re-announcing presence failed; retrying next beat");
                        self.degraded.store(true, Ordering::Relaxed);
                    }
                    self.reconcile_now.notify_one();
                }
            }
            Err(e) => {
                self.metrics.bus_error(BusOp::Heartbeat);
                self.metrics.set_bus_connected(false);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "bus unreachable; REST keeps working, pushes wait for reconciliation");
                }
            }
        }
    }

    /// Closes every live connection whose session is no longer active in the store.
    pub async fn reconcile(&self) -> usize {
        let ids: Vec<Uuid> = self.registry.all().iter().map(|c| c.session_id).collect();
        let mut closed = 0;
        for chunk in ids.chunks(RECONCILE_BATCH) {
            match self.store.inactive_among(chunk, self.clock.now()).await {
                Ok(inactive) => {
                    for (id, reason) in inactive {
                        closed += usize::from(self.push_local(&id, &Arc::from(reason.as_str())));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation could not read the store; retrying next interval");
                    break;
                }
            }
        }
        if closed > 0 {
            tracing::info!(closed, "reconciliation closed connections of revoked sessions");
        }
        self.metrics.reconciled(closed as u64);
        closed
    }
}
