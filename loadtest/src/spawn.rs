//! `loadtest spawn`: starts local nodes for one run instead of being given their URLs, runs
//! another mode's command line against them (its `--base-url` or `--base-urls` and its
//! `--service-key` filled in), then stops them.
//!
//! ```text
//! loadtest spawn [--nodes N] [--server-bin PATH] [--database sqlite|postgres] [--postgres-url URL] \
//!                [--redis] [--node-env NAME=VALUE ...] -- <loadtest arguments>
//! ```
//!
//! The nodes come from `session_test_support::fleet`: each binds `127.0.0.1:0` and reports the
//! port it got, so there is no port probe to race. The command line after `--` is checked before
//! anything starts. Every step is bounded (each node has 15 s to come up, Redis 10 s, the
//! database 30 s), and the nodes are stopped however the run ends: by itself, on an error, or on
//! SIGINT/SIGTERM, after which the run gets a grace period to end by itself (the WebSocket modes
//! close their connections) before it is dropped.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::ValueEnum;
use reqwest::Url;
use session_test_support::fleet::{Database, Fleet, FleetSpec};
use tokio_util::sync::CancellationToken;

use crate::cli::{self, Mode};

/// The most nodes one run starts.
const MAX_NODES: u32 = 16;
/// How long a run may go on after a signal before it is dropped and the nodes are stopped: longer
/// than the WebSocket modes' final close handshakes (15 s).
const GRACE: Duration = Duration::from_secs(20);
/// Options the nodes' addresses and key fill in; the command line after `--` must not have them.
const FILLED_IN: &[&str] = &["--base-url", "--base-urls", "--service-key"];
/// The modes that spread over several nodes (`--base-urls`); the others talk to one (`--base-url`).
const MULTI_NODE_MODES: &[&str] = &["ws-revoke", "paced"];

/// Options of `spawn`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: `loadtest spawn -- --scenario validate --concurrency 8 --duration-secs 5`, or \
    `loadtest spawn --nodes 3 --database postgres --redis -- paced --scenario validate --rate 5000`.")]
pub(crate) struct SpawnArgs {
    /// Nodes to start, one at a time; more than one needs `--database postgres` and `--redis`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_NODES)))]
    pub nodes: u32,
    /// The server binary [default: `session-service` next to this executable].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Where the nodes keep their sessions: SQLite in their data directory, or a fresh Postgres
    /// database dropped after the run.
    #[arg(long, value_enum, default_value_t = DatabaseKind::Sqlite)]
    pub database: DatabaseKind,
    /// A Postgres URL allowed to create databases, on a loopback host (with `--database postgres`).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Start a private `redis-server` (from PATH) on loopback for the nodes' bus and cache.
    #[arg(long)]
    pub redis: bool,
    /// An extra variable for every node, e.g. `WS_MAX_CONNECTIONS=20000`; repeatable. A
    /// `RUST_LOG` must keep the info level of `session_service` (the nodes' `listening` line).
    #[arg(long = "node-env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub node_env: Vec<(String, String)>,
    /// The run, after `--`: any `loadtest` command line without --base-url, --base-urls and
    /// --service-key, which are filled in.
    #[arg(last = true, required = true, value_name = "LOADTEST ARGS")]
    pub run: Vec<OsString>,
}

/// `--database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// Starts the nodes, runs the mode against them, stops them; the run's outcome wins over a
/// failure to stop, which is reported on stderr.
pub(crate) async fn run(args: SpawnArgs) -> anyhow::Result<()> {
    // The values are placeholders: this only checks the command line (and answers `--help`)
    // before anything starts.
    let placeholders: Vec<String> = (1..=args.nodes).map(|n| format!("http://127.0.0.1:{n}")).collect();
    if let Err(e) = run_mode(&args.run, &placeholders, "placeholder") {
        return match e.downcast::<clap::Error>() {
            Ok(clap) => clap.exit(),
            Err(e) => Err(e),
        };
    }
    let spec = spec(&args)?;
    spec.check()?;

    // Installed before the nodes start, so a signal while they do ends the run here, with the
    // nodes stopped, rather than the process.
    let stop = CancellationToken::new();
    tokio::spawn(crate::ws::stop_on_signal(stop.clone()));
    let fleet = Fleet::start(&spec).await.context("starting the nodes")?;
    describe(&fleet);
    let outcome = if stop.is_cancelled() {
        Err(anyhow::anyhow!("stopped by a signal while the nodes started"))
    } else {
        match run_mode(&args.run, &fleet.base_urls(), fleet.service_key()) {
            Ok(mode) => until_stopped(mode, &stop).await,
            Err(e) => Err(e),
        }
    };
    if outcome.is_err() {
        print_tails(&fleet);
    }
    let stopped = fleet.stop().await.context("stopping the nodes");
    match (outcome, stopped) {
        (Err(e), Err(stop)) => {
            eprintln!("loadtest spawn: {stop:#}");
            Err(e)
        }
        (outcome, stopped) => outcome.and(stopped),
    }
}

/// What `args` asks to start, after the checks that are the load test's own: loopback only, and
/// a server binary that exists.
fn spec(args: &SpawnArgs) -> anyhow::Result<FleetSpec> {
    let database = match args.database {
        DatabaseKind::Sqlite => Database::Sqlite,
        DatabaseKind::Postgres => {
            let url = Url::parse(&args.postgres_url).context("--postgres-url is not a URL")?;
            if !cli::is_loopback(&url) {
                bail!("--postgres-url must point at a loopback host (127.0.0.0/8, [::1]) or localhost");
            }
            Database::Postgres { admin_url: args.postgres_url.clone() }
        }
    };
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => sibling_server_bin()?,
    };
    if !server_bin.is_file() {
        bail!(
            "no server binary at {} (build it with `cargo build --bin session-service`, or pass --server-bin)",
            server_bin.display()
        );
    }
    Ok(FleetSpec { server_bin, nodes: args.nodes as usize, database, redis: args.redis, env: args.node_env.clone() })
}

/// `session-service` in the directory of this executable: cargo builds both into one target
/// directory.
fn sibling_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    Ok(exe.with_file_name(format!("session-service{}", std::env::consts::EXE_SUFFIX)))
}

/// The mode `run` asks for, aimed at `urls` with `service_key`.
fn run_mode(run: &[OsString], urls: &[String], service_key: &str) -> anyhow::Result<Mode> {
    let name = run.first().and_then(|a| a.to_str()).unwrap_or_default();
    if name == "spawn" {
        bail!("`spawn` runs another mode, not itself");
    }
    if let Some(flag) = run.iter().filter_map(|a| a.to_str()).find(|a| FILLED_IN.iter().any(|f| is_flag(a, f))) {
        bail!("leave out {flag}: spawn fills it in from the nodes it starts");
    }
    let several = MULTI_NODE_MODES.contains(&name);
    if !several && urls.len() > 1 {
        bail!("this mode talks to one node; start one, or use {}", MULTI_NODE_MODES.join(" or "));
    }
    let mut argv: Vec<OsString> = vec!["loadtest".into()];
    argv.extend(run.iter().cloned());
    argv.extend([if several { "--base-urls" } else { "--base-url" }.into(), urls.join(",").into()]);
    argv.extend(["--service-key".into(), service_key.into()]);
    Ok(cli::parse_from(argv)?)
}

/// `arg` is `flag` or `flag=value`.
fn is_flag(arg: &str, flag: &str) -> bool {
    arg.strip_prefix(flag).is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
}

/// Runs the mode; after a signal, gives it [`GRACE`] to end by itself.
async fn until_stopped(mode: Mode, stop: &CancellationToken) -> anyhow::Result<()> {
    let run = crate::run(mode);
    tokio::pin!(run);
    tokio::select! {
        outcome = &mut run => outcome,
        () = stop.cancelled() => match tokio::time::timeout(GRACE, run).await {
            Ok(outcome) => outcome,
            Err(_) => bail!("stopped by a signal; the run did not end within {GRACE:?}"),
        },
    }
}

/// One line per node and per shared service on stderr (stdout is the report's).
fn describe(fleet: &Fleet) {
    for (i, node) in fleet.nodes().iter().enumerate() {
        eprintln!("spawned node {} at {} (pid {})", i + 1, node.base_url(), node.pid());
    }
    if let Some(url) = fleet.database_url() {
        let name = url.rsplit('/').next().unwrap_or(url);
        eprintln!("spawned database {name}");
    }
    if let Some(url) = fleet.redis_url() {
        eprintln!("spawned redis at {url}");
    }
}

/// The last lines each node wrote, on stderr: why a failed run failed is often there.
fn print_tails(fleet: &Fleet) {
    for (i, node) in fleet.nodes().iter().enumerate() {
        let tail = node.output_tail();
        let last: Vec<&str> = tail.lines().rev().take(10).collect();
        last.iter().rev().for_each(|line| eprintln!("node {}: {line}", i + 1));
    }
}

/// `NAME=VALUE`.
fn parse_env(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{raw:?} is not NAME=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn args(line: &[&str]) -> Vec<OsString> {
        line.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_spawn_command_line_parses_with_the_run_after_the_separator() {
        let line = ["loadtest", "spawn", "--nodes", "2", "--database", "postgres", "--redis"];
        let rest = ["--node-env", "WS_MAX_CONNECTIONS=20000", "--", "paced", "--scenario", "validate", "--rate", "9"];
        let Ok(Mode::Spawn(spawn)) = cli::parse_from(line.iter().chain(&rest)) else { panic!("not a spawn") };
        assert_eq!((spawn.nodes, spawn.database, spawn.redis), (2, DatabaseKind::Postgres, true));
        assert_eq!(spawn.node_env, [("WS_MAX_CONNECTIONS".to_owned(), "20000".to_owned())]);
        assert_eq!(spawn.run, args(&["paced", "--scenario", "validate", "--rate", "9"]));
        assert!(cli::parse_from(["loadtest", "spawn"]).is_err(), "a run is required");
        assert!(cli::parse_from(["loadtest", "spawn", "--node-env", "NOEQUALS", "--", "x"]).is_err());
    }

    #[test]
    fn the_run_is_aimed_at_the_spawned_nodes() {
        let urls = ["http://127.0.0.1:1".to_owned(), "http://127.0.0.1:2".to_owned()];
        let rest = run_mode(&args(&["--scenario", "me"]), &urls[..1], "k").unwrap();
        let Mode::Rest(rest) = rest else { panic!("not a REST run") };
        assert_eq!((rest.base_url.as_str(), rest.service_key.as_str()), ("http://127.0.0.1:1", "k"));
        let paced = run_mode(&args(&["paced", "--scenario", "validate", "--rate", "5"]), &urls, "k").unwrap();
        let Mode::Ws(Command::Paced(paced)) = paced else { panic!("not paced") };
        assert_eq!((paced.base_urls, paced.service_key), (urls.to_vec(), Some("k".to_owned())));
    }

    #[test]
    fn a_run_that_names_its_own_targets_or_spreads_a_single_node_mode_is_refused() {
        let one = ["http://127.0.0.1:1".to_owned()];
        for line in [
            &["--scenario", "me", "--base-url", "http://127.0.0.1:8080"][..],
            &["--scenario", "me", "--service-key=k"],
            &["paced", "--scenario", "validate", "--rate", "5", "--base-urls", "http://127.0.0.1:8080"],
            &["spawn", "--", "--scenario", "me"],
        ] {
            let refused = run_mode(&args(line), &one, "k");
            assert!(refused.is_err(), "{line:?}");
        }
        let two = ["http://127.0.0.1:1".to_owned(), "http://127.0.0.1:2".to_owned()];
        assert!(run_mode(&args(&["ws-idle", "--connections", "1"]), &two, "k").is_err());
        assert!(run_mode(&args(&["--scenario", "me", "--base-url-x"]), &one, "k").is_err(), "clap's own check");
    }
}
