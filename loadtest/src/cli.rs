//! Command-line options, and the check that the target is this machine.

use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use reqwest::Url;

use crate::{revocation_lag, spawn, ws};

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Mode {
    /// A REST run (no subcommand).
    Rest(Args),
    /// One of the WebSocket subcommands.
    Ws(Command),
    /// `spawn`: local nodes for the run of another mode.
    Spawn(spawn::SpawnArgs),
}

/// The WebSocket subcommands, parsed apart from the REST options: the REST run's required
/// `--service-key` may come from `LOADTEST_SERVICE_KEY`, and clap would then take every command
/// line for a REST run and ask for its `--scenario`.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct WsCli {
    #[command(subcommand)]
    command: Command,
}

/// `loadtest spawn`, parsed on its own for the same reason.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct SpawnCli {
    #[command(subcommand)]
    command: SpawnCommand,
}

#[derive(Debug, Subcommand)]
enum SpawnCommand {
    /// Starts local nodes, runs another mode's command line against them, then stops them.
    Spawn(spawn::SpawnArgs),
}

/// The WebSocket modes.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Creates sessions and writes their tokens to a file, for `ws-idle --tokens-file`.
    #[command(name = "ws-tokens")]
    Tokens(ws::TokensArgs),
    /// Opens N authenticated WebSockets and keeps them alive with pings for a while.
    #[command(name = "ws-idle")]
    Idle(ws::IdleArgs),
    /// Opens N WebSockets spread over several nodes, revokes sessions through other nodes and
    /// measures how long the `revoked` push takes to arrive.
    #[command(name = "ws-revoke")]
    Revoke(ws::RevokeArgs),
    /// Offers open-loop load at a fixed rate over several nodes: cached `POST /session/validate`
    /// or WebSocket `auth`, timed from each request's due time.
    #[command(name = "paced")]
    Paced(ws::PacedArgs),
    /// Subscribes to the session events relayed to NATS and reports each one's lag from its
    /// envelope's `time` to its arrival.
    #[command(name = "events-lag")]
    EventsLag(crate::events_lag::EventsLagArgs),
    /// Revokes sessions one by one and measures how long a `Verifier` in this process takes to
    /// refuse each one's access token, through the revocation feed (and NATS with --nats-url).
    #[command(name = "revocation-lag")]
    RevocationLag(revocation_lag::LagArgs),
}

/// Parses the command line (exits with the usage on error, as clap does).
pub(crate) fn parse() -> Mode {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args`, the program name first: a subcommand name as the first argument selects a
/// WebSocket mode or `spawn`, anything else is a REST run.
pub(crate) fn parse_from<I, T>(args: I) -> Result<Mode, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("ws-tokens" | "ws-idle" | "ws-revoke" | "paced" | "events-lag" | "revocation-lag") => {
            Ok(Mode::Ws(WsCli::try_parse_from(args)?.command))
        }
        Some("spawn") => {
            let SpawnCommand::Spawn(spawn) = SpawnCli::try_parse_from(args)?.command;
            Ok(Mode::Spawn(spawn))
        }
        _ => Ok(Mode::Rest(Args::try_parse_from(args)?)),
    }
}

/// Load generator for the session service's REST API. Targets loopback addresses only.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    after_help = "WebSocket modes: `loadtest ws-tokens --help`, `loadtest ws-idle --help`, `loadtest ws-revoke --help`, `loadtest paced --help`. Revocation to refusal by a Verifier: `loadtest revocation-lag --help`. Local nodes for any mode: `loadtest spawn --help`."
)]
pub(crate) struct Args {
    /// Base URL of the server under test; its host must be a loopback address or `localhost`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Service key with the `sessions:write` scope, used to create sessions.
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true)]
    pub service_key: String,
    /// What each request does.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Number of concurrent workers, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Measured duration, after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration_secs: u64,
    /// Stop after this many measured requests, even if the duration has not passed.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Sessions created before the run for every scenario but `create` [default: concurrency].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sessions: Option<u32>,
    /// Warm-up before measuring: requests are sent but not counted.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub warmup_secs: u64,
    /// Per-request timeout; a request that takes longer counts as a transport error.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub request_timeout_secs: u64,
}

/// The request mix of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// `POST /sessions`, each with a new user id.
    Create,
    /// `POST /session/refresh` along rotation chains: each worker always presents the newest
    /// refresh token it received for a session.
    Refresh,
    /// `GET /session/me` with each session's access token.
    Me,
    /// `POST /session/validate` with each session's refresh token.
    Validate,
    /// `GET /sessions/{id}` (service key) for each session.
    Get,
    /// `PUT /sessions/{id}` (service key) setting a new device name on each session.
    Update,
    /// `POST /session/validate` with tokens the server must refuse, as an unauthenticated flood
    /// would send them: in turn garbage, a token naming a session that does not exist, and a
    /// forged secret for one of the run's sessions. A `401` is the expected answer and counts as
    /// a success; anything else is an error.
    Forged,
}

impl Scenario {
    /// The name used in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Refresh => "refresh",
            Self::Me => "me",
            Self::Validate => "validate",
            Self::Get => "get",
            Self::Update => "update",
            Self::Forged => "forged",
        }
    }
}

impl Args {
    /// How many workers run.
    pub(crate) fn workers(&self) -> usize {
        self.concurrency as usize
    }

    /// How many sessions to create before the run.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.unwrap_or(self.concurrency) as usize
    }

    /// Warm-up before measuring.
    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_secs)
    }

    /// Measured duration.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// Per-request timeout.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

/// Parses `base_url` and refuses any target that is not this machine: load is only ever sent to
/// loopback addresses.
pub(crate) fn loopback_url(base_url: &str) -> anyhow::Result<Url> {
    let url = Url::parse(base_url).with_context(|| format!("--base-url {base_url:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--base-url must be http:// or https://, not {}://", url.scheme());
    }
    if !is_loopback(&url) {
        bail!("refusing to load {base_url}: the target must be a loopback address (127.0.0.0/8, [::1]) or localhost");
    }
    Ok(url)
}

/// Whether the URL's host is a loopback address or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    // `host_str` gives IPv6 addresses in brackets and IPv4 ones normalized (`127.1` is 127.0.0.1).
    let host = url.host_str().unwrap_or_default();
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in ["http://127.0.0.1:8080", "http://127.1.2.3/", "http://[::1]:8080", "http://LOCALHOST:80"] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:8080",
            "http://192.168.1.10",
            "http://example.com",
            "http://localhost.example.com",
            "http://[::2]:8080",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
        ] {
            assert!(loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_command_line_parses() {
        let mode = parse_from([
            "loadtest",
            "--base-url",
            "http://127.0.0.1:8080",
            "--service-key",
            "k",
            "--scenario",
            "refresh",
            "--concurrency",
            "8",
            "--duration-secs",
            "5",
            "--max-requests",
            "100",
            "--warmup-secs",
            "0",
        ])
        .unwrap();
        let Mode::Rest(args) = mode else { panic!("not a REST run") };
        assert_eq!((args.scenario, args.workers(), args.session_count()), (Scenario::Refresh, 8, 8));
        assert_eq!(args.max_requests, Some(100));
        assert!(parse_from(["loadtest", "--service-key", "k", "--scenario", "me", "--concurrency", "0"]).is_err());
        assert!(parse_from(["loadtest"]).is_err());
    }
}
