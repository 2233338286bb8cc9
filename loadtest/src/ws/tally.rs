//! Counters shared by every connection task, the progress lines, the ready file and the summary.
//!
//! Plain counters are relaxed atomics: they order nothing else and are read only for reporting.
//! The few keyed counts (failures by close code, errors by code) sit behind a std `Mutex`, taken
//! only on those rare events and never across an `.await`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Encoding;

/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the run has seen so far.
pub(super) struct Tally {
    total: u64,
    started: Instant,
    welcomed: AtomicU64,
    /// Pings sent.
    pub pings: AtomicU64,
    pongs: AtomicU64,
    rtt_sum_ms: AtomicU64,
    rtt_max_ms: AtomicU64,
    /// `token_expiring` frames received.
    pub token_expiring: AtomicU64,
    /// `tokens` frames received (successful refreshes over the socket).
    pub refreshed: AtomicU64,
    /// Connection attempts that did not end in `welcome`, by [`super::conn::Failure::key`].
    failed: Mutex<BTreeMap<String, u64>>,
    /// Welcomed connections that ended before the stop, by reason (not counting `revoked`).
    lost: Mutex<BTreeMap<String, u64>>,
    /// Welcomed connections that ended with a `revoked` frame (`ws-revoke` expects those).
    revoked: AtomicU64,
    /// `error` frames that did not close the connection, by code.
    errors: Mutex<BTreeMap<String, u64>>,
    hold_started: Mutex<Option<Instant>>,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: String) {
    // A poisoned lock only means another task panicked mid-increment; the counts stay usable.
    *map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key).or_default() += 1;
}

fn snapshot(map: &Mutex<BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

impl Tally {
    /// A tally for `total` connections.
    pub(super) fn new(total: usize) -> Self {
        Self {
            total: total as u64,
            started: Instant::now(),
            welcomed: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            rtt_sum_ms: AtomicU64::new(0),
            rtt_max_ms: AtomicU64::new(0),
            token_expiring: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
            failed: Mutex::default(),
            lost: Mutex::default(),
            revoked: AtomicU64::new(0),
            errors: Mutex::default(),
            hold_started: Mutex::default(),
        }
    }

    /// A connection got its `welcome`.
    pub(super) fn welcomed(&self) {
        self.welcomed.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt failed.
    pub(super) fn failed(&self, key: String) {
        bump(&self.failed, key);
    }

    /// A welcomed connection ended before the stop.
    pub(super) fn lost(&self, key: String) {
        bump(&self.lost, key);
    }

    /// A welcomed connection ended with `revoked`, which the run asked for.
    pub(super) fn revoked(&self) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
    }

    /// Welcomed connections that ended before the stop, by reason.
    pub(super) fn lost_counts(&self) -> BTreeMap<String, u64> {
        snapshot(&self.lost)
    }

    /// An `error` frame that left the connection open.
    pub(super) fn error(&self, code: String) {
        bump(&self.errors, code);
    }

    /// A `pong` arrived, `rtt_ms` after its ping was sent.
    pub(super) fn pong(&self, rtt_ms: i64) {
        let rtt = u64::try_from(rtt_ms).unwrap_or(0);
        self.pongs.fetch_add(1, Ordering::Relaxed);
        self.rtt_sum_ms.fetch_add(rtt, Ordering::Relaxed);
        self.rtt_max_ms.fetch_max(rtt, Ordering::Relaxed);
    }

    /// The connect phase is over.
    pub(super) fn start_hold(&self) {
        *self.hold_started.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    fn lost_count(&self) -> u64 {
        snapshot(&self.lost).values().sum()
    }

    fn failed_count(&self) -> u64 {
        snapshot(&self.failed).values().sum()
    }

    /// Connections open right now.
    pub(super) fn live(&self) -> u64 {
        let ended = self.lost_count() + self.revoked.load(Ordering::Relaxed);
        self.welcomed.load(Ordering::Relaxed).saturating_sub(ended)
    }

    /// One progress line.
    pub(super) fn line(&self, phase: &str, elapsed: Duration) -> String {
        format!(
            "[{:>6.1}s] {phase}: welcomed {}/{}, failed {}, live {}, lost {}, revoked {}, pings {}, pongs {}",
            elapsed.as_secs_f64(),
            self.welcomed.load(Ordering::Relaxed),
            self.total,
            self.failed_count(),
            self.live(),
            self.lost_count(),
            self.revoked.load(Ordering::Relaxed),
            self.pings.load(Ordering::Relaxed),
            self.pongs.load(Ordering::Relaxed),
        )
    }

    /// The run as JSON (also the ready file's content).
    pub(super) fn value(&self) -> serde_json::Value {
        let pongs = self.pongs.load(Ordering::Relaxed);
        json!({
            "pid": std::process::id(),
            "connections": self.total,
            "welcomed": self.welcomed.load(Ordering::Relaxed),
            "live": self.live(),
            "failed": snapshot(&self.failed),
            "lost": snapshot(&self.lost),
            "revoked": self.revoked.load(Ordering::Relaxed),
            "errors": snapshot(&self.errors),
            "pings": self.pings.load(Ordering::Relaxed),
            "pongs": pongs,
            "pong_rtt_mean_ms": self.rtt_sum_ms.load(Ordering::Relaxed) as f64 / pongs.max(1) as f64,
            "pong_rtt_max_ms": self.rtt_max_ms.load(Ordering::Relaxed),
            "token_expiring": self.token_expiring.load(Ordering::Relaxed),
            "refreshed": self.refreshed.load(Ordering::Relaxed),
        })
    }

    /// The final report of `mode`, human-readable.
    pub(super) fn summary(&self, mode: &str, target: &str, encoding: Encoding, connect_time: Duration) -> String {
        let v = self.value();
        let mut out = String::new();
        let _ = writeln!(out, "{mode} against {target} ({encoding:?})");
        let _ = writeln!(
            out,
            "  connections  {} asked, {} welcomed in {:.1} s, {} failed",
            self.total,
            v["welcomed"],
            connect_time.as_secs_f64(),
            self.failed_count()
        );
        let _ = writeln!(
            out,
            "  held         {} until the stop, {} revoked, {} lost before it",
            v["live"],
            v["revoked"],
            self.lost_count()
        );
        let _ = writeln!(
            out,
            "  heartbeats   {} pings, {} pongs, rtt mean {:.1} ms, max {} ms",
            v["pings"],
            v["pongs"],
            v["pong_rtt_mean_ms"].as_f64().unwrap_or_default(),
            v["pong_rtt_max_ms"]
        );
        let _ = writeln!(out, "  tokens       {} token_expiring, {} refreshed", v["token_expiring"], v["refreshed"]);
        for (title, key) in [("failed", "failed"), ("lost", "lost"), ("errors", "errors")] {
            if let Some(map) = v[key].as_object().filter(|m| !m.is_empty()) {
                for (k, n) in map {
                    let _ = writeln!(out, "  {title:<12} {n:>6}  {k}");
                }
            }
        }
        out
    }

    /// The final report of `mode` as JSON, printed as one line.
    pub(super) fn json(
        &self,
        mode: &str,
        target: &str,
        encoding: Encoding,
        connect_time: Duration,
    ) -> serde_json::Value {
        let mut v = self.value();
        v["mode"] = json!(mode);
        v["target"] = json!(target);
        v["encoding"] = json!(format!("{encoding:?}").to_lowercase());
        v["connect_secs"] = json!(connect_time.as_secs_f64());
        v
    }

    /// Ok when every connection was welcomed and held until the stop.
    pub(super) fn verdict(&self) -> anyhow::Result<()> {
        let (failed, lost) = (self.failed_count(), self.lost_count());
        if failed + lost > 0 {
            anyhow::bail!("{failed} of {} connections failed to open and {lost} were lost while held", self.total);
        }
        Ok(())
    }
}

/// Prints a progress line every few seconds until `stop` (or until aborted).
pub(super) async fn progress(tally: Arc<Tally>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let hold_started = *tally.hold_started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let phase = match hold_started {
            Some(t) => format!("holding for {:.0} s", t.elapsed().as_secs_f64()),
            None => "connecting".to_owned(),
        };
        eprintln!("{}", tally.line(&phase, tally.started.elapsed()));
    }
}

/// Writes the counts to `path` atomically (temporary file, then rename).
pub(super) fn write_ready(path: &Path, tally: &Tally) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", tally.value()))?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_fails_on_any_failed_or_lost_connection() {
        let t = Tally::new(3);
        for _ in 0..3 {
            t.welcomed();
        }
        assert!(t.verdict().is_ok());
        t.lost("close 4001 (heartbeat_timeout)".into());
        assert_eq!(t.live(), 2);
        assert!(t.verdict().is_err());
        let v = t.value();
        assert_eq!(v["lost"]["close 4001 (heartbeat_timeout)"], 1);
    }

    #[test]
    fn revoked_connections_are_no_longer_live_but_not_lost() {
        let t = Tally::new(2);
        t.welcomed();
        t.welcomed();
        t.revoked();
        assert_eq!(t.live(), 1);
        assert!(t.verdict().is_ok());
        assert!(t.summary("ws-revoke", "x", Encoding::Json, Duration::ZERO).contains("1 revoked"));
    }

    #[test]
    fn pong_round_trips_are_averaged() {
        let t = Tally::new(1);
        t.pong(2);
        t.pong(4);
        t.pong(-1);
        let v = t.value();
        assert_eq!(v["pongs"], 3);
        assert_eq!(v["pong_rtt_max_ms"], 4);
        assert!((v["pong_rtt_mean_ms"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    }
}
