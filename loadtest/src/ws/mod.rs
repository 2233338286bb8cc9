//! The WebSocket modes, built for measuring what an idle connection costs the server and how fast
//! a revoke reaches a device connected to another node.
//!
//! - `ws-tokens` creates sessions through the service API and writes their tokens to a file, so
//!   the server's memory can be sampled after the sessions exist and before any socket opens.
//! - `ws-idle` opens N connections to `/ws` (each from one of the given loopback source addresses,
//!   round-robin), authenticates each with an `auth` frame, keeps them all alive with `ping`s spread
//!   over the heartbeat interval for `--hold-secs`, then closes them and exits.
//! - `ws-revoke` opens N connections spread over several nodes the same way, then revokes a
//!   sample of their sessions at a steady rate, each through a node other than the one holding the
//!   connection, and measures how long the `revoked` push takes to arrive.
//! - `paced` offers open-loop load at a fixed rate over several nodes on the hot paths: cached
//!   `POST /session/validate`, or a fresh WebSocket's `auth` → `welcome`.
//!
//! Everything is bounded: connection attempts by `--connect-timeout-secs`, the hold by
//! `--hold-secs` or the sample count and rate (SIGINT or SIGTERM ends either early), each revoke by
//! `--revoke-timeout-secs`, the final close handshakes by a fixed timeout.
//!
//! # Layout
//! - `sessions`: creating sessions and the tokens file.
//! - `conn`: one connection (source binding, handshake, `auth`, the idle loop), over the SDK's
//!   codec.
//! - `tally`: shared counters, progress lines and the summary.
//! - `idle`: the `ws-idle` mode.
//! - `revoke`: the `ws-revoke` mode; `plan`: its pure parts (node choice, sampling, pacing).
//! - `paced`: the `paced` mode.

mod conn;
mod idle;
mod paced;
mod plan;
mod results;
mod revoke;
mod sessions;
mod tally;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::ValueEnum;
use futures::StreamExt;
use session_client::proto::ws::codec;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::loopback_url;
use conn::{Live, Target, Welcome};
use sessions::Tokens;
use tally::Tally;

pub(crate) use idle::{idle, IdleArgs};
pub(crate) use paced::{paced, PacedArgs};
pub(crate) use revoke::{revoke, RevokeArgs};

/// The most connections one process opens: the machine allows 20,000 open files per process,
/// and the process needs a few for itself (runtime, HTTP pool, stdio).
pub(crate) const MAX_CONNECTIONS: u32 = 19_900;
/// How long the final close handshakes may take, all together.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `ws-tokens`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokensArgs {
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

/// Where WebSockets come from and what they speak (`ws-idle`, `ws-revoke`, `paced --scenario ws-auth`).
#[derive(Debug, clap::Args)]
pub(crate) struct SocketArgs {
    /// Loopback addresses to bind the client sockets to, round-robin (e.g. 127.0.0.2,127.0.0.3):
    /// each address has its own ~28,000 ephemeral ports. Default: let the kernel choose.
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// Frame encoding (the subprotocol offered).
    #[arg(long, value_enum, default_value_t = Encoding::Msgpack)]
    pub encoding: Encoding,
}

/// How the connections of `ws-idle` and `ws-revoke` are opened and kept alive.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Use the sessions of this file (written by `ws-tokens`) instead of creating new ones.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Connections to open and hold, each for its own session.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    pub connections: u32,
    #[command(flatten)]
    pub sockets: SocketArgs,
    /// `POST /sessions` requests in flight at once (without --tokens-file).
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
}

impl ConnectArgs {
    /// How many connections to open.
    pub(crate) fn count(&self) -> usize {
        self.connections as usize
    }

    /// The sessions to connect with: the tokens file's, or new ones created through `base`.
    async fn sessions(&self, base: &str, service_key: Option<&str>) -> anyhow::Result<Vec<Tokens>> {
        match (&self.tokens_file, service_key) {
            (Some(path), _) => sessions::read(path, self.count()),
            (None, Some(key)) => sessions::create(base, key, self.count(), self.create_concurrency as usize).await,
            (None, None) => bail!("give --service-key or --tokens-file"),
        }
    }

    /// The ping schedule of a connection whose `welcome` announced `heartbeat`.
    fn pings(&self, heartbeat: Duration) -> conn::Pings {
        conn::Pings::spread(self.ping_interval_ms.map_or(heartbeat, Duration::from_millis))
    }
}

/// How frames are encoded on the wire (the command-line choice; the SDK's codec does the work).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Encoding {
    /// `session.v1.msgpack`: binary frames.
    Msgpack,
    /// `session.v1.json`: text frames.
    Json,
}

impl Encoding {
    /// The SDK codec's encoding of this choice.
    pub(crate) fn codec(self) -> codec::Encoding {
        match self {
            Self::Msgpack => codec::Encoding::Msgpack,
            Self::Json => codec::Encoding::Json,
        }
    }
}

/// `ws-tokens`: creates the sessions and writes the file.
pub(crate) async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let base = base_url(&args.base_url)?;
    let created =
        sessions::create(&base, &args.service_key, args.count as usize, args.create_concurrency as usize).await?;
    sessions::write(&args.out, &created)?;
    eprintln!("wrote {} sessions to {}", created.len(), args.out.display());
    Ok(())
}

/// Where the connections go and where they come from: connection `i` goes to node `i % nodes`,
/// from source address `i % sources`.
struct Dialer {
    targets: Vec<Target>,
    sources: Vec<Option<IpAddr>>,
    concurrency: usize,
}

impl Dialer {
    /// Resolves each base URL (already checked by [`base_url`]) and checks the source addresses
    /// and the open-files limit.
    async fn new(bases: &[String], args: &ConnectArgs) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(args.connect_timeout_secs);
        let mut targets = Vec::with_capacity(bases.len());
        for base in bases {
            let target = Target::resolve(base, args.sockets.encoding, timeout).await?;
            check_sources(&args.sockets.source_ips, target.addr)?;
            targets.push(target);
        }
        let Some(first) = targets.first() else { bail!("no server to connect to") };
        let sources = check_sources(&args.sockets.source_ips, first.addr)?;
        check_open_files_limit(args.count())?;
        Ok(Self { targets, sources, concurrency: args.connect_concurrency as usize })
    }

    /// The node that connection `i` goes to.
    fn node_of(&self, i: usize) -> usize {
        i % self.targets.len()
    }

    /// Opens a connection for each session, at most `concurrency` attempts at a time, and hands
    /// each welcomed one to `welcomed(i, live, welcome)`; failures are counted in `tally`. Stops
    /// opening new ones on `stop`.
    async fn connect_all(
        &self,
        sessions: Vec<Tokens>,
        tally: &Tally,
        stop: &CancellationToken,
        mut welcomed: impl FnMut(usize, Live, Welcome),
    ) {
        let mut attempts = futures::stream::iter(sessions.into_iter().enumerate())
            .map(|(i, tokens)| {
                let (target, source) = (&self.targets[self.node_of(i)], self.sources[i % self.sources.len()]);
                async move { (i, conn::open(target, source, tokens).await) }
            })
            .buffer_unordered(self.concurrency);
        loop {
            let next = tokio::select! {
                r = attempts.next() => r,
                () = stop.cancelled() => None,
            };
            let Some((i, result)) = next else { break };
            match result {
                Ok((live, welcome)) => {
                    tally.welcomed();
                    welcomed(i, live, welcome);
                }
                Err(failure) => tally.failed(failure.key()),
            }
        }
    }
}

/// Waits for the held connections to close (after `stop` was cancelled), at most
/// [`CLOSE_TIMEOUT`]; drops those that have not by then. Returns what the finished tasks gave.
async fn close_all<T: 'static>(mut held: JoinSet<T>) -> Vec<T> {
    let mut ended = Vec::with_capacity(held.len());
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(r) = held.join_next().await {
            // A panicked connection task has nothing to report; its panic message is on stderr.
            if let Ok(t) = r {
                ended.push(t);
            }
        }
    })
    .await;
    if closed.is_err() {
        eprintln!("{} connections did not close within {CLOSE_TIMEOUT:?}; dropping them", held.len());
        held.abort_all();
    }
    ended
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

/// Cancels `stop` on Ctrl-C (SIGINT) or SIGTERM, so a supervising script ends the run early
/// and the connections still close cleanly.
pub(crate) async fn stop_on_signal(stop: CancellationToken) {
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
    fn the_ws_tokens_command_line_parses() {
        let tokens = parse_from(["loadtest", "ws-tokens", "--service-key", "k", "--count", "3", "--out", "t"]);
        assert!(matches!(tokens, Ok(Mode::Ws(Command::Tokens(_)))));
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

    #[tokio::test]
    async fn connection_i_goes_to_node_i_mod_k() {
        let args = match parse_from(["loadtest", "ws-idle", "--connections", "5", "--tokens-file", "t"]) {
            Ok(Mode::Ws(Command::Idle(a))) => a.conn,
            other => panic!("{other:?}"),
        };
        let bases = ["http://127.0.0.1:9".to_owned(), "http://127.0.0.2:9".to_owned(), "http://127.0.0.3:9".to_owned()];
        let dialer = Dialer::new(&bases, &args).await.unwrap();
        let nodes: Vec<_> = (0..7).map(|i| dialer.targets[dialer.node_of(i)].addr.ip().to_string()).collect();
        assert_eq!(nodes, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
    }
}
