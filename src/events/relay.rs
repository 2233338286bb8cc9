//! The outbox relay: delivers every committed event to the broker, at least once, each session's
//! events in order, and marks a row sent only once the broker acknowledged it.
//!
//! A pass claims up to `relay_batch` undelivered rows ([`Store::claim_events`]: on Postgres the
//! claim keeps order per session across relays, see `store::postgres::outbox`), publishes them
//! in waves (the first undelivered event of every claimed session, then the second, ...: one
//! wave's publishes are pipelined and their acknowledgements awaited together), then marks the
//! acknowledged rows in one statement and releases the claim. A session's later event is only
//! ever handed to the broker after its earlier one was acknowledged, so a failure can delay a
//! session's events but never reorder them: after a failed publish the rest of that session's
//! claimed events stay undelivered, to be retried, oldest first, after a backoff. A publish
//! that reached the broker but was never marked (the relay died, the database failed) is
//! published again; the broker drops it by its `Nats-Msg-Id` within its de-duplication window.
//!
//! The relay sleeps until a local commit wrote outbox rows ([`OutboxSignal`](super::wake)), or
//! `relay_poll` passed (rows written by other nodes, or left by a relay that died), and then
//! passes again and again while passes come back full.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::sink::{Ack, EventSink};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::session::store::{Store, StoreError};
use crate::session::OutboxEvent;

/// First wait after a failed pass; doubled after each further failure, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Most passes in a row without going back to wait (a backlog is drained in this many batches,
/// then the loop checks in with its timers and the shutdown signal).
const MAX_PASSES: usize = 1000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Rows claimed.
    pub claimed: usize,
    /// Rows acknowledged by the broker and marked sent (duplicates included).
    pub published: usize,
    /// Of those, how many the broker dropped as already stored.
    pub duplicates: usize,
    /// Rows left undelivered: their publish failed, or an earlier event of their session's did.
    pub failed: usize,
}

/// What the relay needs besides its store and sink.
pub struct RelayOptions {
    /// Most rows a pass claims.
    pub batch: u32,
    /// How long the relay sleeps when no commit woke it.
    pub poll: Duration,
    /// Raised after every local commit that wrote outbox rows.
    pub wake: Arc<Notify>,
}

/// The relay of one node.
pub struct Relay {
    store: Arc<dyn Store>,
    sink: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    options: RelayOptions,
}

impl Relay {
    pub fn new(
        store: Arc<dyn Store>,
        sink: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        options: RelayOptions,
    ) -> Self {
        Self { store, sink, clock, metrics, options }
    }

    /// Runs until `cancel`: passes whenever woken or every `poll`, with a backoff after failures.
    /// A pass under way when `cancel` fires finishes (it is bounded by the sink's deadline).
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let failed = match self.drain(&cancel).await {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(error = %e, sink = self.sink.kind(), retry_in = ?backoff, "outbox relay pass failed");
                    true
                }
            };
            let wait = if failed { backoff } else { self.options.poll };
            backoff = if failed { (backoff * 2).min(MAX_BACKOFF) } else { MIN_BACKOFF };
            tokio::select! {
                () = cancel.cancelled() => return,
                // Commits do not cut a backoff short: a broker that is down is not asked again
                // at the rate sessions change.
                () = self.options.wake.notified(), if !failed => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Passes until one comes back short of a full batch (or [`MAX_PASSES`], or `cancel`).
    async fn drain(&self, cancel: &CancellationToken) -> Result<(), RelayError> {
        for _ in 0..MAX_PASSES {
            let report = self.pass().await?;
            if report.failed > 0 {
                return Err(RelayError::Undelivered(report.failed));
            }
            if report.claimed < self.options.batch as usize || cancel.is_cancelled() {
                break;
            }
        }
        Ok(())
    }

    /// One pass: claim, publish in waves, mark the acknowledged rows, release the claim.
    pub async fn pass(&self) -> Result<PassReport, RelayError> {
        let mut claim = self.store.claim_events(self.options.batch).await.map_err(RelayError::Claim)?;
        let events = std::mem::take(&mut claim.events);
        if events.is_empty() {
            return Ok(PassReport::default());
        }
        let delivery = self.publish(&events).await;
        let now = self.clock.now();
        let ids: Vec<Uuid> = delivery.acked.iter().map(|&(id, _)| id).collect();
        claim.mark_sent(&ids, now).await.map_err(RelayError::Mark)?;
        self.record(&events, &delivery, now);
        Ok(PassReport {
            claimed: events.len(),
            published: ids.len(),
            duplicates: delivery.acked.iter().filter(|&&(_, ack)| ack == Ack::Duplicate).count(),
            failed: events.len() - ids.len(),
        })
    }

    /// Publishes `events` wave after wave, each session's in order, stopping a session at its
    /// first failure.
    pub async fn publish(&self, events: &[OutboxEvent]) -> Delivery {
        let mut delivery = Delivery::default();
        let mut stopped: HashSet<&str> = HashSet::new();
        for wave in waves(events) {
            let batch: Vec<&OutboxEvent> = wave.into_iter().filter(|e| !stopped.contains(session_of(e))).collect();
            if batch.is_empty() {
                continue;
            }
            let outcomes = self.sink.publish(&batch).await;
            for (event, outcome) in batch.iter().zip(outcomes) {
                match outcome {
                    Ok(ack) => delivery.acked.push((event.id, ack)),
                    Err(e) => {
                        if delivery.first_error.is_none() {
                            delivery.first_error = Some(e.to_string());
                        }
                        stopped.insert(session_of(event));
                    }
                }
            }
        }
        if let Some(error) = &delivery.first_error {
            tracing::debug!(%error, "some events were not acknowledged; they stay in the outbox");
        }
        delivery
    }

    fn record(&self, events: &[OutboxEvent], delivery: &Delivery, now: DateTime<Utc>) {
        let acked: HashMap<Uuid, Ack> = delivery.acked.iter().copied().collect();
        for event in events {
            if let Some(ack) = acked.get(&event.id) {
                let lag = (now - event.created_at).to_std().unwrap_or_default();
                self.metrics.event_relayed(lag.as_secs_f64(), *ack == Ack::Duplicate);
            }
        }
        self.metrics.events_unacknowledged((events.len() - acked.len()) as u64);
    }
}

/// What a publish achieved.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Events the broker acknowledged, in the order they were published, with how.
    pub acked: Vec<(Uuid, Ack)>,
    /// The first failure, for the log.
    first_error: Option<String>,
}

/// Why a pass did not deliver everything it claimed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot claim outbox rows")]
    Claim(#[source] StoreError),
    #[error("cannot mark delivered outbox rows (they will be published again and de-duplicated)")]
    Mark(#[source] StoreError),
    #[error("{0} events were not acknowledged by the broker; they stay in the outbox")]
    Undelivered(usize),
}

/// The session an event belongs to: the envelope's `subject` (every session event has one). An
/// envelope without one (none is written so) goes with the others of its type, kept in order
/// among them.
fn session_of(event: &OutboxEvent) -> &str {
    event.payload.get("subject").and_then(serde_json::Value::as_str).unwrap_or(event.subject.as_str())
}

/// `events` (oldest first) in waves: wave n holds the n-th event of every session, in claim order.
fn waves(events: &[OutboxEvent]) -> Vec<Vec<&OutboxEvent>> {
    let mut rank: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<&OutboxEvent>> = Vec::new();
    for event in events {
        let n = rank.entry(session_of(event)).or_insert(0);
        if waves.len() <= *n {
            waves.push(Vec::new());
        }
        waves[*n].push(event);
        *n += 1;
    }
    waves
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn event(session: &str, n: u32) -> OutboxEvent {
        OutboxEvent {
            id: Uuid::now_v7(),
            subject: format!("session.e{n}"),
            created_at: Utc::now(),
            payload: json!({ "subject": session }),
        }
    }

    #[test]
    fn each_wave_holds_at_most_one_event_per_session_in_order() {
        let events = [event("a", 1), event("b", 1), event("a", 2), event("a", 3), event("c", 1), event("b", 2)];
        let waves = waves(&events);
        let names: Vec<Vec<(&str, &str)>> =
            waves.iter().map(|w| w.iter().map(|e| (session_of(e), e.subject.as_str())).collect()).collect();
        assert_eq!(
            names,
            vec![
                vec![("a", "session.e1"), ("b", "session.e1"), ("c", "session.e1")],
                vec![("a", "session.e2"), ("b", "session.e2")],
                vec![("a", "session.e3")],
            ]
        );
    }

    #[test]
    fn an_envelope_without_a_subject_goes_with_its_type() {
        let mut lonely = event("x", 1);
        lonely.payload = json!({});
        assert_eq!(session_of(&lonely), "session.e1");
    }
}
