//! `loadtest`: drives the session service's REST API through the client SDK and reports
//! throughput, latency quantiles and errors by kind; or holds many idle WebSocket connections.
//!
//! ```text
//! loadtest --base-url http://127.0.0.1:8080 --service-key KEY --scenario create|refresh|me|validate|get|update \
//!          --concurrency 64 --duration-secs 10 [--max-requests N] [--sessions N] [--warmup-secs 2]
//! loadtest ws-tokens --service-key KEY --count N --out FILE
//! loadtest ws-idle [--service-key KEY | --tokens-file FILE] --connections N \
//!          [--source-ips 127.0.0.2,127.0.0.3] [--hold-secs 60] [--encoding msgpack|json]
//! loadtest ws-revoke --base-urls URL1,URL2,URL3 --service-key KEY [--tokens-file FILE] \
//!          --connections N [--samples 1000] [--rate 100] [--revoke-timeout-secs 5]
//! loadtest paced --base-urls URL1,URL2,URL3 [--service-key KEY | --tokens-file FILE] \
//!          --scenario validate|ws-auth --rate 10000 [--duration-secs 10] [--warmup-secs 2] \
//!          [--sessions 10000] [--max-in-flight 2000] [--source-ips 127.0.0.2,...]
//! loadtest events-lag [--nats-url nats://127.0.0.1:4222] [--subject-prefix P] [--duration-secs 10]
//! loadtest revocation-lag --service-key KEY [--samples 200] [--nats-url nats://127.0.0.1:4222 --nats-prefix P]
//! loadtest spawn [--nodes N] [--server-bin PATH] [--database sqlite|postgres] [--redis] \
//!          -- <any of the above without --base-url(s) and --service-key>
//! ```
//!
//! Only loopback targets are accepted. Every loop is bounded by the deadline (warm-up + duration)
//! and, when given, the request budget; requests are bounded by a timeout, so a run always ends by
//! itself. The summary goes to stdout, followed by the same numbers as one JSON line. `spawn`
//! starts the nodes itself (loopback only, each on a port it chose and reported) and stops them
//! when the run ends.
//!
//! # Layout
//! - `cli`: options and the loopback check.
//! - `scenarios`: session set-up and the worker loops.
//! - `stats`: per-worker recorders and the final report.
//! - `ws`: the WebSocket and multi-node modes (`ws-tokens`, `ws-idle`, `ws-revoke`, `paced`).
//! - `events_lag`: the relay's outbox-to-broker lag, seen by a NATS subscriber.
//! - `revocation_lag`: revocation to refusal by a `Verifier`, through the feed and NATS.
//! - `spawn`: local nodes for a run of any of these.

mod cli;
mod events_lag;
mod revocation_lag;
mod scenarios;
mod spawn;
mod stats;
mod ws;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use session_client::{ServiceClient, SessionClient};

use cli::{Args, Command, Mode, Scenario};
use scenarios::{Run, Work};
use stats::{Recorder, Report};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match cli::parse() {
        Mode::Spawn(args) => spawn::run(args).await,
        mode => run(mode).await,
    }
}

/// Runs one mode against nodes that are already up.
async fn run(mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Ws(Command::Tokens(args)) => ws::tokens(args).await,
        Mode::Ws(Command::Idle(args)) => ws::idle(args).await,
        Mode::Ws(Command::Revoke(args)) => ws::revoke(args).await,
        Mode::Ws(Command::Paced(args)) => ws::paced(args).await,
        Mode::Ws(Command::EventsLag(args)) => events_lag::run(args).await,
        Mode::Ws(Command::RevocationLag(args)) => revocation_lag::run(args).await,
        Mode::Rest(args) => rest(args).await,
        // `spawn::run` refuses to run itself, so this is not reached.
        Mode::Spawn(_) => bail!("`spawn` runs another mode, not itself"),
    }
}

/// A REST run: prepares sessions, runs the workers until the deadline, prints the report.
async fn rest(args: Args) -> anyhow::Result<()> {
    let url = cli::loopback_url(&args.base_url)?;
    let base = url.as_str().trim_end_matches('/').to_owned();

    // One pool for every worker: at least one idle connection per worker survives between its
    // requests, so the run measures the server, not connection set-up. HTTP/1.1 only, one
    // request in flight per connection, as a gateway fleet would behave.
    let http = http_client(&base, args.workers(), args.request_timeout()).await?;

    let run_id = format!("{:x}{:x}", std::process::id(), unix_nanos() % (1 << 40));
    let mut run = Run {
        service: ServiceClient::with_client(&base, &args.service_key, http.clone()),
        user: SessionClient::with_client(&base, http.clone()),
        raw: scenarios::RawService { http, base: base.clone(), service_key: args.service_key.clone() },
        run_id,
        measure_from: Instant::now(),
        deadline: Instant::now(),
        budget: AtomicU64::new(args.max_requests.unwrap_or(u64::MAX)),
    };

    let prepared_at = Instant::now();
    let work = scenarios::prepare(&run, args.scenario, args.session_count(), args.workers()).await?;
    if args.scenario != Scenario::Create {
        let n: usize = work.iter().map(Work::sessions).sum();
        eprintln!("prepared {n} sessions in {:.2} s", prepared_at.elapsed().as_secs_f64());
    }

    let start = Instant::now();
    run.measure_from = start + args.warmup();
    run.deadline = run.measure_from + args.duration();
    let run = Arc::new(run);
    let tasks: Vec<_> = work.into_iter().map(|w| tokio::spawn(scenarios::worker(Arc::clone(&run), w))).collect();
    let workers = tasks.len();

    let mut recorder = Recorder::new();
    let mut live_chains = 0;
    for task in tasks {
        let (r, work) = task.await.context("a worker panicked")?;
        recorder.merge(r);
        live_chains += work.sessions();
    }
    let measured = Instant::now().saturating_duration_since(run.measure_from);

    if args.scenario == Scenario::Refresh {
        eprintln!("rotation chains still alive at the end: {live_chains} of {}", args.session_count());
    }
    let ok = recorder.ok();
    let report = Report {
        scenario: args.scenario.name(),
        target: &base,
        concurrency: workers,
        warmup: args.warmup(),
        measured,
        recorder,
    };
    print!("{}", report.text());
    println!("{}", report.json());
    if ok == 0 {
        bail!("no request succeeded in the measured window");
    }
    Ok(())
}

/// An HTTP/1.1 client pooled for `pool` concurrent requests, after checking that `base` answers.
async fn http_client(base: &str, pool: usize, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    let http = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(pool)
        .tcp_nodelay(true)
        .timeout(timeout)
        .user_agent(concat!("loadtest/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    check_up(&http, base).await?;
    Ok(http)
}

/// Fails unless `base` answers `GET /healthz`.
async fn check_up(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}: is the server running?"))?;
    Ok(())
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}
