//! The WebSocket modes, built for measuring what an idle connection costs the server.
//!
//! - `ws-tokens` creates sessions through the service API and writes their tokens to a file, so
//!   the server's memory can be sampled after the sessions exist and before any socket opens.
//! - `ws-idle` opens N connections to `/ws` (each from one of the given loopback source addresses,
//!   round-robin), authenticates each with an `auth` frame, keeps them all alive with `ping`s spread
//!   over the heartbeat interval for `--hold-secs`, then closes them and exits.
//!
//! Everything is bounded: connection attempts by `--connect-timeout-secs`, the hold by
//! `--hold-secs` (SIGINT or SIGTERM ends it early), the final close handshakes by a fixed timeout.
//!
//! # Layout
//! - `sessions`: creating sessions and the tokens file.
//! - `conn`: one connection (source binding, handshake, `auth`, the idle loop) and the codec.
//! - `tally`: shared counters, progress lines and the summary.

mod conn;
mod sessions;
mod tally;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;
use futures::StreamExt;
use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::loopback_url;
use conn::{Ended, Target};
use sessions::Tokens;
use tally::Tally;

/// The most connections one process opens: the machine allows 20,000 open files per process,
/// and the process needs a few for itself (runtime, HTTP pool, stdio).
pub const MAX_CONNECTIONS: u32 = 19_900;
/// How long the final close handshakes may take, all together.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `ws-tokens`.
#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    /// Base URL of the server; its host must be a loopback address or `localhost`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Service key with the `sessions:write` scope.
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true)]
    pub service_key: String,
    /// Sessions to create, each for a distinct user.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
    /// File to write, one session a line: `<access token> <refresh token>` (mode 0600).
    #[arg(long)]
    pub out: PathBuf,
    /// `POST /sessions` requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub create_concurrency: u32,
}

/// Options of `ws-idle`.
#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Base URL of the server; its host must be a loopback address or `localhost`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Service key with the `sessions:write` scope (to create the sessions).
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true, required_unless_present = "tokens_file")]
    pub service_key: Option<String>,
    /// Use the sessions of this file (written by `ws-tokens`) instead of creating new ones; takes
    /// precedence over --service-key.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Connections to open and hold, each for its own session.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    pub connections: u32,
    /// Loopback addresses to bind the client sockets to, round-robin (e.g. 127.0.0.2,127.0.0.3):
    /// each address has its own ~28,000 ephemeral ports. Default: let the kernel choose.
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// How long to hold the connections once they are all open.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub hold_secs: u64,
    /// Frame encoding (the subprotocol offered).
    #[arg(long, value_enum, default_value_t = Encoding::Msgpack)]
    pub encoding: Encoding,
    /// `POST /sessions` requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub create_concurrency: u32,
    /// Connection attempts (TCP + upgrade + `auth`) in flight at once, so the server's accept
    /// queue is never overrun.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub connect_concurrency: u32,
    /// Time allowed for one connection attempt, from TCP connect to `welcome`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub connect_timeout_secs: u64,
    /// Ping this often instead of the `heartbeat_interval_ms` that `welcome` announces.
    #[arg(long, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub ping_interval_ms: Option<u64>,
    /// Once every connection attempt has finished, write the counts there as JSON (written to a
    /// temporary name, then renamed, so a reader never sees half a file).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// How frames are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// `session.v1.msgpack`: binary frames.
    Msgpack,
    /// `session.v1.json`: text frames.
    Json,
}

/// `ws-tokens`: creates the sessions and writes the file.
pub async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let base = base_url(&args.base_url)?;
    let created =
        sessions::create(&base, &args.service_key, args.count as usize, args.create_concurrency as usize).await?;
    sessions::write(&args.out, &created)?;
    eprintln!("wrote {} sessions to {}", created.len(), args.out.display());
    Ok(())
}

/// `ws-idle`: opens, holds, closes; fails when a connection could not be opened or was lost.
pub async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let base = base_url(&args.base_url)?;
    let target = Target::resolve(&base, args.encoding, Duration::from_secs(args.connect_timeout_secs)).await?;
    let sources = check_sources(&args.source_ips, target.addr)?;
    let n = args.connections as usize;
    check_open_files_limit(n)?;
    let sessions = match (&args.tokens_file, &args.service_key) {
        (Some(path), _) => sessions::read(path, n)?,
        (None, Some(key)) => sessions::create(&base, key, n, args.create_concurrency as usize).await?,
        (None, None) => bail!("give --service-key or --tokens-file"),
    };

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let tally = Arc::new(Tally::new(n));
    let progress = tokio::spawn(tally::progress(Arc::clone(&tally), stop.clone()));

    let started = Instant::now();
    let mut held = connect_all(&args, &target, &sources, sessions, &tally, &stop).await;
    let connect_time = started.elapsed();
    eprintln!("{}", tally.line("connected", connect_time));
    if let Some(path) = &args.ready_file {
        tally::write_ready(path, &tally).with_context(|| format!("writing {}", path.display()))?;
    }

    tally.start_hold();
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(args.hold_secs)) => {}
        () = stop.cancelled() => eprintln!("interrupted: closing early"),
    }
    stop.cancel();
    progress.abort();
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async { while held.join_next().await.is_some() {} }).await;
    if closed.is_err() {
        eprintln!("{} connections did not close within {CLOSE_TIMEOUT:?}; dropping them", held.len());
        held.abort_all();
    }

    print!("{}", tally.summary(&base, args.encoding, connect_time));
    println!("{}", tally.json(&base, args.encoding, connect_time));
    tally.verdict()
}

/// Opens every connection, at most `--connect-concurrency` attempts at a time, and spawns the idle
/// loop of each one that is welcomed. Returns the idle loops.
async fn connect_all(
    args: &IdleArgs,
    target: &Target,
    sources: &[Option<IpAddr>],
    sessions: Vec<Tokens>,
    tally: &Arc<Tally>,
    stop: &CancellationToken,
) -> JoinSet<()> {
    let mut held = JoinSet::new();
    let mut attempts = futures::stream::iter(sessions.into_iter().enumerate())
        .map(|(i, tokens)| conn::open(target, sources[i % sources.len()], tokens))
        .buffer_unordered(args.connect_concurrency as usize);
    loop {
        let result = tokio::select! {
            r = attempts.next() => r,
            () = stop.cancelled() => None,
        };
        let Some(result) = result else { break };
        match result {
            Ok(live) => {
                tally.welcomed();
                let every = args.ping_interval_ms.map_or(live.heartbeat_interval, Duration::from_millis);
                // A random phase per connection spreads the pings evenly over the interval, so
                // the server sees a steady trickle rather than one burst per interval.
                let first = every.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
                let (tally, stop) = (Arc::clone(tally), stop.clone());
                held.spawn(async move {
                    let ended = live.hold(first, every, &stop, &tally).await;
                    if let Ended::Lost(why) = ended {
                        tally.lost(why);
                    }
                });
            }
            Err(failure) => tally.failed(failure.key()),
        }
    }
    held
}

/// The base URL without its trailing slash, after the loopback check.
fn base_url(raw: &str) -> anyhow::Result<String> {
    let url = loopback_url(raw)?;
    if url.scheme() != "http" {
        bail!("the WebSocket modes speak plain ws:// only: --base-url must be http://");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The source address of each connection slot: loopback only, of the target's family.
fn check_sources(ips: &[IpAddr], target: SocketAddr) -> anyhow::Result<Vec<Option<IpAddr>>> {
    if ips.is_empty() {
        return Ok(vec![None]);
    }
    for ip in ips {
        if !ip.is_loopback() {
            bail!("refusing source address {ip}: source addresses must be loopback (127.0.0.0/8, ::1)");
        }
        if ip.is_ipv4() != target.is_ipv4() {
            bail!("source address {ip} is not of the same family as the target {target}");
        }
    }
    Ok(ips.iter().copied().map(Some).collect())
}

/// Fails early when the process may not open enough sockets, rather than after thousands of
/// connections with `EMFILE`.
fn check_open_files_limit(connections: usize) -> anyhow::Result<()> {
    let Some(limit) = open_files_limit() else { return Ok(()) };
    // The runtime, the HTTP pool, stdio and the tokens file need a few descriptors of their own.
    let needed = connections as u64 + 64;
    if limit < needed {
        bail!("{connections} connections need about {needed} open files, but the limit is {limit}: raise it with `ulimit -n` or run several processes");
    }
    Ok(())
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` when unknown.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Cancels `stop` on Ctrl-C (SIGINT) or SIGTERM, so a supervising script ends the hold early
/// and the connections still close cleanly.
async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => term.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<Option<()>>();
    tokio::select! {
        Ok(()) = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_from, Command, Mode};

    #[test]
    fn the_documented_ws_idle_command_line_parses() {
        let mode = parse_from([
            "loadtest",
            "ws-idle",
            "--base-url",
            "http://127.0.0.1:8080",
            "--service-key",
            "k",
            "--connections",
            "10000",
            "--source-ips",
            "127.0.0.2,127.0.0.3",
            "--hold-secs",
            "60",
            "--encoding",
            "json",
        ])
        .unwrap();
        let Mode::Ws(Command::WsIdle(args)) = mode else { panic!("not ws-idle") };
        assert_eq!(args.connections, 10_000);
        assert_eq!(args.source_ips.len(), 2);
        assert_eq!(args.encoding, Encoding::Json);
        assert!(parse_from(["loadtest", "ws-idle", "--connections", "19901", "--service-key", "k"]).is_err());
        let from_file = parse_from(["loadtest", "ws-idle", "--connections", "5", "--tokens-file", "t"]);
        assert!(matches!(from_file, Ok(Mode::Ws(Command::WsIdle(_)))));
        let tokens = parse_from(["loadtest", "ws-tokens", "--service-key", "k", "--count", "3", "--out", "t"]);
        assert!(matches!(tokens, Ok(Mode::Ws(Command::WsTokens(_)))));
    }

    #[test]
    fn source_addresses_must_be_loopback_of_the_targets_family() {
        let target: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let ok: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.1.2.3".parse().unwrap()];
        assert_eq!(check_sources(&ok, target).unwrap().len(), 2);
        assert_eq!(check_sources(&[], target).unwrap(), vec![None]);
        for bad in ["10.0.0.2", "192.168.1.4", "::1"] {
            assert!(check_sources(&[bad.parse().unwrap()], target).is_err(), "{bad}");
        }
    }

    #[test]
    fn ws_modes_refuse_non_loopback_and_tls_targets() {
        assert_eq!(base_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert!(base_url("http://10.1.1.1:8080").is_err());
        assert!(base_url("https://127.0.0.1:8443").is_err());
    }
}
