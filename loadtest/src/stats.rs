//! Measurements: latency distributions ([`Latency`], also used by the WebSocket modes) and
//! per-worker recorders (no sharing, so no locks on the request path), merged into one report at
//! the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use session_client::Error;

/// Latencies are recorded in microseconds, from 1 µs to 5 min with 3 significant digits; longer
/// ones are clamped to the top (the per-request timeout keeps them well below).
const MAX_MICROS: u64 = 300_000_000;

/// A latency distribution, recorded in microseconds and read in milliseconds.
pub(crate) struct Latency(Histogram<u64>);

impl Latency {
    /// An empty distribution.
    pub(crate) fn new() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("the bounds are valid"))
    }

    /// Records one duration (at least 1 µs; beyond [`MAX_MICROS`] clamped to the top).
    pub(crate) fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds `other`'s values to these.
    pub(crate) fn merge(&mut self, other: &Latency) {
        self.0.add(&other.0).expect("histograms with the same bounds merge");
    }

    /// How many durations were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0..=1), in milliseconds; 0 when empty.
    pub(crate) fn ms_at(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest value, in milliseconds; 0 when empty.
    pub(crate) fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// The report's quantiles in milliseconds, named: p50, p90, p99, p99.9, max.
    pub(crate) fn quantiles(&self) -> [(&'static str, f64); 5] {
        [
            ("p50", self.ms_at(0.50)),
            ("p90", self.ms_at(0.90)),
            ("p99", self.ms_at(0.99)),
            ("p99.9", self.ms_at(0.999)),
            ("max", self.max_ms()),
        ]
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// What one worker measured.
pub(crate) struct Recorder {
    /// Latency of successful requests.
    latency: Latency,
    ok: u64,
    /// Failed requests by kind: `<status> <code>`, `<status> undecodable`, `transport <what>`.
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty recorder.
    pub(crate) fn new() -> Self {
        Self { latency: Latency::new(), ok: 0, errors: BTreeMap::new() }
    }

    /// Records a successful request that took `elapsed`.
    pub(crate) fn success(&mut self, elapsed: Duration) {
        self.latency.record(elapsed);
        self.ok += 1;
    }

    /// Counts a failed request under its kind.
    pub(crate) fn failure(&mut self, error: &Error) {
        *self.errors.entry(error_kind(error)).or_default() += 1;
    }

    /// Adds `other`'s measurements to these.
    pub(crate) fn merge(&mut self, other: Recorder) {
        self.latency.merge(&other.latency);
        self.ok += other.ok;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// Successful requests recorded.
    pub(crate) fn ok(&self) -> u64 {
        self.ok
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A stable, low-cardinality name for a failure.
pub(crate) fn error_kind(error: &Error) -> String {
    match error {
        Error::Api { status, code, .. } => format!("{status} {code}"),
        Error::Decode { status, .. } => format!("{status} undecodable"),
        Error::Transport(e) if e.is_timeout() => "transport timeout".to_owned(),
        Error::Transport(e) if e.is_connect() => "transport connect".to_owned(),
        Error::Transport(_) => "transport other".to_owned(),
    }
}

/// The outcome of a run, ready to print.
pub(crate) struct Report<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// Base URL loaded.
    pub target: &'a str,
    /// Workers that ran.
    pub concurrency: usize,
    /// Warm-up before measuring (not counted).
    pub warmup: Duration,
    /// From the end of the warm-up to the last measured request's completion.
    pub measured: Duration,
    /// Every worker's measurements, merged.
    pub recorder: Recorder,
}

impl Report<'_> {
    fn requests(&self) -> u64 {
        self.recorder.ok + self.recorder.error_count()
    }

    fn throughput(&self) -> f64 {
        self.requests() as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Latency quantiles in milliseconds: p50, p90, p99, p99.9, max.
    fn quantiles(&self) -> [(&'static str, f64); 5] {
        self.recorder.latency.quantiles()
    }

    /// The human-readable summary.
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "scenario     {}\ntarget       {}\nconcurrency  {}\nwarm-up      {:.1} s (not counted)\nmeasured     {:.2} s\n",
            self.scenario,
            self.target,
            self.concurrency,
            self.warmup.as_secs_f64(),
            self.measured.as_secs_f64()
        );
        out += &format!(
            "requests     {} ({} ok, {} errors)\nthroughput   {:.1} req/s\n",
            self.requests(),
            self.recorder.ok,
            self.recorder.error_count(),
            self.throughput()
        );
        for (i, (kind, n)) in self.recorder.errors.iter().enumerate() {
            out += &format!("{:13}{n:>8}  {kind}\n", if i == 0 { "errors" } else { "" });
        }
        let latency: Vec<String> = self.quantiles().iter().map(|(q, v)| format!("{q} {v:.3}")).collect();
        out += &format!("latency ms   {} (successful requests)\n", latency.join("  "));
        out
    }

    /// The same numbers as one JSON object, for scripts.
    pub(crate) fn json(&self) -> serde_json::Value {
        let latency: serde_json::Map<_, _> =
            self.quantiles().iter().map(|(q, v)| (q.to_string(), json!(round3(*v)))).collect();
        json!({
            "scenario": self.scenario,
            "target": self.target,
            "concurrency": self.concurrency,
            "warmup_s": self.warmup.as_secs_f64(),
            "measured_s": round3(self.measured.as_secs_f64()),
            "requests": self.requests(),
            "ok": self.recorder.ok,
            "errors": self.recorder.errors,
            "throughput_rps": round3(self.throughput()),
            "latency_ms": latency,
        })
    }
}

/// `x` rounded to three decimals, for the JSON lines.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorders_report_counts_throughput_and_quantiles() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for ms in 1..=100 {
            a.success(Duration::from_millis(ms));
        }
        b.failure(&Error::Api { status: 401, code: "session_revoked".into(), detail: None });
        b.failure(&Error::Api { status: 401, code: "session_revoked".into(), detail: None });
        a.merge(b);
        let report = Report {
            scenario: "refresh",
            target: "http://127.0.0.1:8080",
            concurrency: 2,
            warmup: Duration::ZERO,
            measured: Duration::from_secs(2),
            recorder: a,
        };
        let j = report.json();
        assert_eq!((j["requests"].as_u64(), j["ok"].as_u64()), (Some(102), Some(100)));
        assert_eq!(j["errors"]["401 session_revoked"], 2);
        assert_eq!(j["throughput_rps"], 51.0);
        let p50 = j["latency_ms"]["p50"].as_f64().unwrap();
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert!(j["latency_ms"]["max"].as_f64().unwrap() >= 100.0);
        assert!(report.text().contains("2  401 session_revoked"));
    }
}
