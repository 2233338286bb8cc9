//! `paced`: open-loop load on the hot paths, at a fixed rate spread over several nodes.
//!
//! Request `k` is due at `start + k / rate` on a fixed grid, goes to node `k % nodes` with
//! session `k % sessions`, and is sent at its due time whether or not earlier ones have
//! answered (a closed loop would slow down with the server and hide its queueing). Its latency
//! is counted from the due time, so a late generator or a backed-up server both show; the time
//! from the actual send is reported beside it. At most `--max-in-flight` requests are
//! outstanding: a request due while all slots are taken is not sent and counts as skipped, so the
//! offered rate stays honest and the report says when the generator, not the server, gave way.
//!
//! - `validate`: `POST /session/validate` with the session's refresh token, over per-node
//!   keep-alive HTTP/1.1 pools.
//! - `ws-auth`: a fresh WebSocket per request (TCP from the next source address, upgrade,
//!   `auth` → `welcome`), closed right after; `auth` → `welcome` is reported on its own as well.
//!
//! Requests due in the warm-up are sent but not counted. Everything is bounded: the schedule by
//! the warm-up and the duration, each request by `--timeout-secs`, the drain by the same
//! timeout after the last due time; SIGINT or SIGTERM ends the schedule early.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::ValueEnum;
use serde_json::json;
use session_client::SessionClient;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::conn::{self, Target};
use super::sessions::{self, Tokens};
use super::{base_url, check_open_files_limit, check_sources, stop_on_signal, SocketArgs};
use crate::stats::{error_kind, round3, Latency};

/// Options of `paced`.
#[derive(Debug, clap::Args)]
pub(crate) struct PacedArgs {
    /// Base URLs of the nodes, comma-separated; each host must be a loopback address or
    /// `localhost`. Request `k` goes to node `k % nodes`; sessions are created through the first.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..=64)]
    pub base_urls: Vec<String>,
    /// Service key with the `sessions:write` scope (to create sessions without --tokens-file).
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true)]
    pub service_key: Option<String>,
    /// Use the sessions of this file (written by `ws-tokens`) instead of creating new ones.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// What each request does.
    #[arg(long, value_enum)]
    pub scenario: PacedScenario,
    /// Requests per second offered, summed over the nodes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Measured duration, after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration_secs: u64,
    /// Warm-up before measuring: requests are sent but not counted.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=120))]
    pub warmup_secs: u64,
    /// Sessions used round-robin. For `ws-auth` keep it well above the connections opened in
    /// one request's lifetime, or a session's new connection replaces its previous one.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions: u32,
    /// Requests outstanding at once; a request due while all are taken is skipped.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    pub max_in_flight: u32,
    /// Time allowed for one request (for `ws-auth`: TCP connect to `welcome`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout_secs: u64,
    // Used by `ws-auth` only.
    #[command(flatten)]
    pub sockets: SocketArgs,
    /// `POST /sessions` requests in flight at once (without --tokens-file).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub create_concurrency: u32,
}

impl PacedArgs {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The request a `paced` run repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PacedScenario {
    /// `POST /session/validate` with a refresh token (served from the session cache).
    Validate,
    /// A new WebSocket authenticated with an access token, closed after `welcome`.
    WsAuth,
}

impl PacedScenario {
    fn name(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::WsAuth => "ws-auth",
        }
    }
}

/// The fixed schedule: request `k` is due `k / rate` seconds after `start`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    start: Instant,
    rate: u64,
}

impl Grid {
    /// `rate` requests a second (at least 1) from `start`.
    pub(super) fn new(start: Instant, rate: u32) -> Self {
        Self { start, rate: u64::from(rate.max(1)) }
    }

    /// When request `k` is due. Computed from `k` each time, so rounding never accumulates.
    pub(super) fn due(&self, k: u64) -> Instant {
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(self.rate);
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// How many requests fall due before `after` seconds from the start.
    pub(super) fn count_within(&self, after: Duration) -> u64 {
        let n = after.as_nanos() * u128::from(self.rate);
        u64::try_from(n.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }
}

/// What one request measured.
struct Sample {
    /// Due in the measured window (not the warm-up).
    measured: bool,
    /// From the due time to the answer, and from the send to the answer; or the failure's kind.
    outcome: Result<(Duration, Duration), String>,
    /// `ws-auth` only: from sending `auth` to `welcome`.
    auth_to_welcome: Option<Duration>,
}

/// Where the requests go.
enum Targets {
    Validate(Vec<SessionClient>),
    WsAuth { targets: Vec<Target>, sources: Vec<Option<IpAddr>> },
}

/// The totals of the measured window.
#[derive(Default)]
struct Totals {
    from_due: Latency,
    from_send: Latency,
    auth_to_welcome: Latency,
    errors: BTreeMap<String, u64>,
    warmup_requests: u64,
}

impl Totals {
    fn add(&mut self, s: Sample) {
        if !s.measured {
            self.warmup_requests += 1;
            return;
        }
        match s.outcome {
            Ok((due, send)) => {
                self.from_due.record(due);
                self.from_send.record(send);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        if let Some(d) = s.auth_to_welcome {
            self.auth_to_welcome.record(d);
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `paced`: prepares the sessions and the targets, runs the schedule, drains, reports.
pub(crate) async fn paced(args: PacedArgs) -> anyhow::Result<()> {
    let nodes = args.base_urls.iter().map(|u| base_url(u)).collect::<anyhow::Result<Vec<_>>>()?;
    let max_in_flight = args.max_in_flight as usize;
    let targets = match args.scenario {
        PacedScenario::Validate => {
            let per_node = max_in_flight.div_ceil(nodes.len());
            let mut clients = Vec::with_capacity(nodes.len());
            for node in &nodes {
                // A pool per node, so each node's share of the slots has its own connections.
                let http = crate::http_client(node, per_node, args.timeout()).await?;
                clients.push(SessionClient::with_client(node, http));
            }
            Targets::Validate(clients)
        }
        PacedScenario::WsAuth => {
            let mut targets = Vec::with_capacity(nodes.len());
            for node in &nodes {
                targets.push(Target::resolve(node, args.sockets.encoding, args.timeout()).await?);
            }
            let sources = check_sources(&args.sockets.source_ips, targets[0].addr)?;
            for t in &targets[1..] {
                check_sources(&args.sockets.source_ips, t.addr)?;
            }
            check_open_files_limit(max_in_flight)?;
            Targets::WsAuth { targets, sources }
        }
    };
    let tokens: Arc<[Tokens]> = match (&args.tokens_file, &args.service_key) {
        (Some(path), _) => sessions::read(path, args.sessions as usize)?.into(),
        (None, Some(key)) => {
            sessions::create(&nodes[0], key, args.sessions as usize, args.create_concurrency as usize).await?.into()
        }
        (None, None) => bail!("give --service-key or --tokens-file"),
    };
    if args.scenario == PacedScenario::Validate && tokens.iter().any(|t| t.refresh.is_none()) {
        bail!("validate needs refresh tokens: the tokens file has lines without one");
    }

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let warmup = Duration::from_secs(args.warmup_secs);
    let window = warmup + Duration::from_secs(args.duration_secs);
    eprintln!(
        "paced {}: {}/s over {} nodes for {} s (+{} s warm-up), {} sessions, at most {max_in_flight} in flight",
        args.scenario.name(),
        args.rate,
        nodes.len(),
        args.duration_secs,
        args.warmup_secs,
        tokens.len()
    );

    // The first due time a little ahead, so the first requests are not already late.
    let grid = Grid::new(Instant::now() + Duration::from_millis(50), args.rate);
    let measure_from = grid.start + warmup;
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let collector = tokio::spawn(async move {
        let mut totals = Totals::default();
        while let Some(s) = rx.recv().await {
            totals.add(s);
        }
        totals
    });

    let schedule = Schedule {
        grid,
        total: grid.count_within(window),
        measure_from,
        slots: Arc::new(Semaphore::new(max_in_flight)),
        tokens,
        targets: Arc::new(targets),
        runtime: tokio::runtime::Handle::current(),
    };
    // On a thread of its own: tokio's timer wakes at millisecond granularity, which would send
    // the requests of each millisecond in a burst, up to 1 ms late; a thread sleeping to each
    // due time wakes within the kernel's timer slack (~50 µs).
    let (sent, skipped) = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || schedule.run(&tx, &stop)
    })
    .await?;
    let scheduled_for = Instant::now().saturating_duration_since(measure_from);
    // Every request ends within its timeout (plus a close handshake for `ws-auth`).
    let drain = args.timeout() + Duration::from_secs(10);
    let totals = match tokio::time::timeout(drain, collector).await {
        Ok(Ok(totals)) => totals,
        Ok(Err(e)) => bail!("the collector failed: {e}"),
        Err(_) => bail!("requests still outstanding {drain:?} after the schedule ended"),
    };

    let report = Report { args: &args, nodes: &nodes, totals: &totals, sent, skipped, measured: scheduled_for };
    print!("{}", report.text());
    println!("{}", report.json());
    let ok = totals.from_due.count();
    if ok == 0 {
        bail!("no request succeeded in the measured window");
    }
    if totals.error_count() > 0 || skipped > 0 {
        bail!("{} requests failed and {skipped} were skipped (all slots in flight)", totals.error_count());
    }
    Ok(())
}

/// The run's schedule and what each request needs.
struct Schedule {
    grid: Grid,
    /// Requests due in the warm-up and the measured window.
    total: u64,
    measure_from: Instant,
    slots: Arc<Semaphore>,
    tokens: Arc<[Tokens]>,
    targets: Arc<Targets>,
    runtime: tokio::runtime::Handle,
}

impl Schedule {
    /// Sends each request at its due time (on this blocking thread, spawning each onto the
    /// runtime) until the schedule ends or `stop`. Returns how many measured requests were sent
    /// and how many were skipped for want of a free slot.
    fn run(self, tx: &mpsc::UnboundedSender<Sample>, stop: &CancellationToken) -> (u64, u64) {
        let (mut sent, mut skipped) = (0u64, 0u64);
        for k in 0..self.total {
            if stop.is_cancelled() {
                break;
            }
            let due = self.grid.due(k);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let measured = due >= self.measure_from;
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => {
                    let job =
                        Job { k, due, measured, tokens: Arc::clone(&self.tokens), targets: Arc::clone(&self.targets) };
                    self.runtime.spawn(job.run(tx.clone(), permit));
                    sent += u64::from(measured);
                }
                Err(_) => skipped += u64::from(measured),
            }
        }
        (sent, skipped)
    }
}

/// One scheduled request.
struct Job {
    k: u64,
    due: Instant,
    measured: bool,
    tokens: Arc<[Tokens]>,
    targets: Arc<Targets>,
}

impl Job {
    async fn run(self, tx: mpsc::UnboundedSender<Sample>, _slot: OwnedSemaphorePermit) {
        let tokens = &self.tokens[(self.k % self.tokens.len() as u64) as usize];
        let sent = Instant::now();
        let (outcome, auth_to_welcome, live) = match &*self.targets {
            Targets::Validate(clients) => {
                let client = &clients[(self.k % clients.len() as u64) as usize];
                let refresh = tokens.refresh.as_deref().unwrap_or_default();
                let outcome = client.validate(refresh).await.map(drop).map_err(|e| error_kind(&e));
                (outcome, None, None)
            }
            Targets::WsAuth { targets, sources } => {
                let target = &targets[(self.k % targets.len() as u64) as usize];
                let source = sources[(self.k % sources.len() as u64) as usize];
                match conn::open(target, source, tokens.clone()).await {
                    Ok((live, welcome)) => (Ok(()), Some(welcome.auth_to_welcome), Some(live)),
                    Err(failure) => (Err(failure.key()), None, None),
                }
            }
        };
        let answered = Instant::now();
        let outcome = outcome.map(|()| (answered.saturating_duration_since(self.due), answered - sent));
        // The collector outlives every job (it ends when the last sender is dropped).
        let _ = tx.send(Sample { measured: self.measured, outcome, auth_to_welcome });
        if let Some(mut live) = live {
            // Closed while still holding the slot, so open sockets stay within --max-in-flight.
            live.close().await;
        }
    }
}

/// The outcome of a run, ready to print.
struct Report<'a> {
    args: &'a PacedArgs,
    nodes: &'a [String],
    totals: &'a Totals,
    sent: u64,
    skipped: u64,
    /// From the start of the measured window to the end of the schedule.
    measured: Duration,
}

impl Report<'_> {
    fn ok(&self) -> u64 {
        self.totals.from_due.count()
    }

    fn achieved(&self) -> f64 {
        self.ok() as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    fn text(&self) -> String {
        let t = self.totals;
        let mut out = String::new();
        let _ = writeln!(out, "scenario     paced {}", self.args.scenario.name());
        let _ = writeln!(out, "target       {} ({} nodes)", self.nodes.join(","), self.nodes.len());
        let _ = writeln!(out, "offered      {}/s for {:.2} s", self.args.rate, self.measured.as_secs_f64());
        let _ = writeln!(
            out,
            "requests     {} sent ({} ok, {} errors), {} skipped (all {} slots in flight)",
            self.sent,
            self.ok(),
            t.error_count(),
            self.skipped,
            self.args.max_in_flight
        );
        let _ = writeln!(out, "achieved     {:.1} ok/s", self.achieved());
        for (i, (kind, n)) in t.errors.iter().enumerate() {
            let _ = writeln!(out, "{:13}{n:>8}  {kind}", if i == 0 { "errors" } else { "" });
        }
        let line =
            |l: &Latency| l.quantiles().iter().map(|(q, v)| format!("{q} {v:.3}")).collect::<Vec<_>>().join("  ");
        let _ = writeln!(out, "from due ms  {}", line(&t.from_due));
        let _ = writeln!(out, "from send ms {}", line(&t.from_send));
        if self.args.scenario == PacedScenario::WsAuth {
            let _ = writeln!(out, "auth→welcome {} ms", line(&t.auth_to_welcome));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let t = self.totals;
        let q = |l: &Latency| -> serde_json::Map<String, serde_json::Value> {
            l.quantiles().iter().map(|(q, v)| (q.to_string(), json!(round3(*v)))).collect()
        };
        let mut line = json!({
            "mode": "paced",
            "scenario": self.args.scenario.name(),
            "target": self.nodes.join(","),
            "nodes": self.nodes.len(),
            "rate": self.args.rate,
            "measured_s": round3(self.measured.as_secs_f64()),
            "sent": self.sent,
            "ok": self.ok(),
            "errors": t.errors,
            "skipped": self.skipped,
            "warmup_requests": t.warmup_requests,
            "achieved_rps": round3(self.achieved()),
            "from_due_ms": q(&t.from_due),
            "from_send_ms": q(&t.from_send),
        });
        if self.args.scenario == PacedScenario::WsAuth {
            line["auth_to_welcome_ms"] = json!(q(&t.auth_to_welcome));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_from, Command, Mode};

    #[test]
    fn the_grid_spaces_requests_evenly_without_drift() {
        let start = Instant::now();
        let grid = Grid::new(start, 10_000);
        assert_eq!(grid.due(0), start);
        assert_eq!(grid.due(1) - start, Duration::from_micros(100));
        assert_eq!(grid.due(10_000) - start, Duration::from_secs(1));
        assert_eq!(grid.due(123_457) - start, Duration::from_micros(12345700));
        // 3/s does not divide a second: rounding stays per request and never accumulates.
        let thirds = Grid::new(start, 3);
        assert_eq!(thirds.due(1) - start, Duration::from_nanos(333_333_333));
        assert_eq!(thirds.due(3_000) - start, Duration::from_secs(1000));
    }

    #[test]
    fn the_window_holds_rate_times_duration_requests() {
        let grid = Grid::new(Instant::now(), 10_000);
        assert_eq!(grid.count_within(Duration::from_secs(12)), 120_000);
        assert_eq!(grid.count_within(Duration::ZERO), 0);
        // Every counted request is due strictly inside the window, the next one is not.
        let g3 = Grid::new(Instant::now(), 3);
        let n = g3.count_within(Duration::from_secs(1));
        assert_eq!(n, 3);
        assert!(g3.due(n - 1) - g3.start < Duration::from_secs(1));
        assert!(g3.due(n) - g3.start >= Duration::from_secs(1));
    }

    #[test]
    fn warmup_samples_are_not_counted() {
        let mut totals = Totals::default();
        let ok = |measured| Sample {
            measured,
            outcome: Ok((Duration::from_millis(2), Duration::from_millis(1))),
            auth_to_welcome: None,
        };
        totals.add(ok(false));
        totals.add(ok(true));
        totals.add(Sample { measured: true, outcome: Err("503 draining".into()), auth_to_welcome: None });
        totals.add(Sample { measured: false, outcome: Err("transport timeout".into()), auth_to_welcome: None });
        assert_eq!((totals.warmup_requests, totals.from_due.count(), totals.error_count()), (2, 1, 1));
        assert_eq!(totals.errors.keys().collect::<Vec<_>>(), ["503 draining"]);
    }

    #[test]
    fn the_documented_paced_command_line_parses() {
        let mode = parse_from([
            "loadtest",
            "paced",
            "--base-urls",
            "http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003",
            "--tokens-file",
            "t",
            "--scenario",
            "ws-auth",
            "--rate",
            "10000",
            "--source-ips",
            "127.0.0.2,127.0.0.3",
        ])
        .unwrap();
        let Mode::Ws(Command::Paced(args)) = mode else { panic!("not paced") };
        assert_eq!((args.scenario, args.rate, args.base_urls.len()), (PacedScenario::WsAuth, 10_000, 3));
        assert_eq!((args.duration_secs, args.warmup_secs, args.sessions, args.max_in_flight), (10, 2, 10_000, 2_000));
        let base = ["loadtest", "paced", "--base-urls", "http://127.0.0.1:1", "--scenario", "validate"];
        let with = |extra: &[&'static str]| parse_from(base.iter().chain(extra).copied());
        assert!(with(&["--rate", "0"]).is_err());
        assert!(with(&["--rate", "100001"]).is_err());
        assert!(with(&["--rate", "10", "--max-in-flight", "19001"]).is_err());
        assert!(with(&[]).is_err(), "--rate is required");
    }
}
