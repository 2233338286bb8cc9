//! What `ws-revoke` measured, its report (a summary and one JSON line) and its verdict.
//!
//! Every sample ends up here: the welcome latencies while connecting, then each revoke's HTTP
//! latency and how long its `revoked` push took to arrive (or why it did not), then how each
//! revoked connection was closed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use super::conn::{Ended, Failure};
use crate::stats::Latency;

/// The close code that must follow a `revoked` frame.
pub(super) const REVOKED_CLOSE: u16 = 4101;

/// Why a sample's `revoked` never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Miss {
    /// Nothing within the revoke timeout.
    Timeout,
    /// The connection had already ended when the revoke was sent, or ended without `revoked`.
    ConnectionGone,
}

/// One revoke and what came of it.
#[derive(Debug)]
pub(super) struct Sample {
    /// The revoke request's own latency, or why it failed.
    pub http: Result<Duration, String>,
    /// From just before sending the revoke to the arrival of `revoked`, or why it did not arrive.
    pub delivery: Result<Duration, Miss>,
}

/// Everything `ws-revoke` measured.
#[derive(Default)]
pub(super) struct Results {
    /// From starting the TCP connect to `welcome`.
    pub connect_to_welcome: Latency,
    /// From sending `auth` to `welcome`.
    pub auth_to_welcome: Latency,
    /// Revokes to send.
    pub asked: usize,
    /// Revokes sent (fewer than asked when interrupted, or when fewer connections opened).
    pub sent: usize,
    delivered: Latency,
    http: Latency,
    missed: BTreeMap<&'static str, u64>,
    http_errors: BTreeMap<String, u64>,
    /// Connections that ended before the stop without `revoked`, by reason (the tally's).
    pub lost: BTreeMap<String, u64>,
    /// Connections that ended with `revoked` when they should not have, or then closed with
    /// another code than 4101, by what happened.
    pub misrevoked: BTreeMap<String, u64>,
}

impl Results {
    /// Adds one sample.
    pub(super) fn record(&mut self, sample: Sample) {
        match sample.http {
            Ok(d) => self.http.record(d),
            Err(kind) => *self.http_errors.entry(kind).or_default() += 1,
        }
        match sample.delivery {
            Ok(d) => self.delivered.record(d),
            Err(Miss::Timeout) => *self.missed.entry("no revoked within the timeout").or_default() += 1,
            Err(Miss::ConnectionGone) => *self.missed.entry("connection ended without revoked").or_default() += 1,
        }
    }

    /// Samples sent whose `revoked` did not arrive (including any whose task never reported).
    pub(super) fn missed(&self) -> u64 {
        (self.sent as u64).saturating_sub(self.delivered.count())
    }

    /// Sorts the connections that ended with `revoked` (connection index, how it ended): a
    /// sampled connection must then be closed with 4101, and no other connection may be revoked.
    /// Adds the rest to [`Self::misrevoked`].
    pub(super) fn classify_revoked<'a>(
        &mut self,
        ended: impl IntoIterator<Item = (usize, &'a Ended)>,
        sampled: &[bool],
    ) {
        for (i, ended) in ended {
            let Ended::Revoked { close } = ended else { continue };
            let key = match (sampled.get(i).copied().unwrap_or(false), close) {
                (true, Failure::Closed { code: Some(REVOKED_CLOSE), .. }) => continue,
                (true, close) => format!("revoked, then {}", close.key()),
                (false, close) => format!("revoked without a revoke sent: {}", close.key()),
            };
            *self.misrevoked.entry(key).or_default() += 1;
        }
    }

    /// Connections that ended before the stop without being asked to.
    pub(super) fn unexpected(&self) -> u64 {
        self.lost.values().chain(self.misrevoked.values()).sum()
    }

    /// The report's lines, after the connection summary.
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        let q = |l: &Latency, qs: &[(&str, f64)]| -> String {
            let mut parts: Vec<String> = qs.iter().map(|(n, q)| format!("{n} {:.2}", round2(l.ms_at(*q)))).collect();
            parts.push(format!("max {:.2}", round2(l.max_ms())));
            parts.join("  ")
        };
        let all = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];
        let _ = writeln!(out, "  connect+auth to welcome  {} ms", q(&self.connect_to_welcome, &all));
        let _ = writeln!(out, "  auth to welcome          {} ms", q(&self.auth_to_welcome, &all));
        let _ = writeln!(
            out,
            "  revoke to revoked        {} ms ({} of {} sent delivered, {} asked)",
            q(&self.delivered, &all),
            self.delivered.count(),
            self.sent,
            self.asked
        );
        let _ = writeln!(
            out,
            "  revoke HTTP call         p50 {:.2}  p99 {:.2} ms ({} answered 2xx)",
            round2(self.http.ms_at(0.5)),
            round2(self.http.ms_at(0.99)),
            self.http.count()
        );
        let _ = writeln!(out, "  missed                   {}", self.missed());
        let _ =
            writeln!(out, "  closed unexpectedly      {} (lost above, or revoked wrongly below)", self.unexpected());
        let keyed = self.missed.iter().map(|(k, n)| ("missed", k.to_string(), n));
        let keyed = keyed.chain(self.http_errors.iter().map(|(k, n)| ("http error", k.clone(), n)));
        for (title, k, n) in keyed.chain(self.misrevoked.iter().map(|(k, n)| ("misrevoked", k.clone(), n))) {
            let _ = writeln!(out, "  {title:<12} {n:>6}  {k}");
        }
        out
    }

    /// The report's JSON fields.
    pub(super) fn json(&self) -> serde_json::Value {
        let all = |l: &Latency| json!({"p50": round2(l.ms_at(0.5)), "p90": round2(l.ms_at(0.9)), "p99": round2(l.ms_at(0.99)), "max": round2(l.max_ms())});
        json!({
            "connect_to_welcome_ms": all(&self.connect_to_welcome),
            "auth_to_welcome_ms": all(&self.auth_to_welcome),
            "samples": self.asked,
            "revokes_sent": self.sent,
            "delivered": self.delivered.count(),
            "revoke_to_revoked_ms": all(&self.delivered),
            "revoke_http_ms": {"p50": round2(self.http.ms_at(0.5)), "p99": round2(self.http.ms_at(0.99))},
            "missed": self.missed(),
            "missed_by_cause": self.missed,
            "http_errors": self.http_errors,
            "closed_unexpectedly": self.unexpected(),
            "misrevoked": self.misrevoked,
        })
    }

    /// Ok when every revoke asked for was sent and its `revoked` arrived, and no connection
    /// ended unexpectedly. (Connection failures are the tally's verdict.)
    pub(super) fn verdict(&self) -> anyhow::Result<()> {
        let unexpected = self.unexpected();
        if self.sent < self.asked || self.missed() > 0 || unexpected > 0 {
            anyhow::bail!(
                "{} of {} revokes sent, {} missed their revoked frame, {unexpected} connections ended unexpectedly",
                self.sent,
                self.asked,
                self.missed()
            );
        }
        Ok(())
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(ms: u64) -> Sample {
        Sample { http: Ok(Duration::from_millis(ms)), delivery: Ok(Duration::from_millis(ms)) }
    }

    #[test]
    fn delivered_samples_report_quantiles_in_milliseconds_with_two_decimals() {
        let mut r = Results { asked: 100, sent: 100, ..Results::default() };
        for ms in 1..=100 {
            r.record(delivered(ms));
        }
        r.connect_to_welcome.record(Duration::from_micros(1234));
        let j = r.json();
        assert_eq!(j["delivered"], 100);
        assert_eq!(j["missed"], 0);
        let p50 = j["revoke_to_revoked_ms"]["p50"].as_f64().unwrap();
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert_eq!(j["connect_to_welcome_ms"]["max"], 1.23);
        assert!(r.text().contains("max 1.23 ms"), "{}", r.text());
        assert!(r.verdict().is_ok());
    }

    #[test]
    fn a_missed_sample_or_a_failed_revoke_fails_the_run() {
        let mut r = Results { asked: 3, sent: 3, ..Results::default() };
        r.record(delivered(2));
        r.record(Sample { http: Ok(Duration::from_millis(1)), delivery: Err(Miss::Timeout) });
        r.record(Sample { http: Err("HTTP 404".into()), delivery: Err(Miss::ConnectionGone) });
        let j = r.json();
        assert_eq!(j["missed"], 2);
        assert_eq!(j["http_errors"]["HTTP 404"], 1);
        assert_eq!(j["missed_by_cause"]["no revoked within the timeout"], 1);
        assert!(r.verdict().is_err());
    }

    #[test]
    fn an_interrupted_run_fails_even_when_every_sent_revoke_arrived() {
        let mut r = Results { asked: 2, sent: 1, ..Results::default() };
        r.record(delivered(1));
        assert_eq!(r.missed(), 0);
        assert!(r.verdict().is_err());
    }

    #[test]
    fn only_sampled_connections_closed_with_4101_after_revoked_are_expected() {
        let closed =
            |code| Ended::Revoked { close: Failure::Closed { code: Some(code), reason: Some("revoked: x".into()) } };
        let ended = [(0, closed(4101)), (1, closed(1006)), (2, closed(4101)), (3, Ended::Stopped)];
        let mut r = Results::default();
        r.classify_revoked(ended.iter().map(|(i, e)| (*i, e)), &[true, true, false, true]);
        let keys: Vec<&str> = r.misrevoked.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["revoked without a revoke sent: close 4101 (revoked: x)", "revoked, then close 1006 (revoked: x)"]
        );
        assert_eq!(r.unexpected(), 2);
        assert!(r.verdict().is_err());
    }

    #[test]
    fn a_connection_lost_while_holding_fails_the_run() {
        let mut r = Results { asked: 1, sent: 1, ..Results::default() };
        r.record(delivered(1));
        r.lost.insert("close 4001 (heartbeat_timeout)".into(), 1);
        assert_eq!(r.json()["closed_unexpectedly"], 1);
        assert!(r.verdict().is_err());
    }
}
