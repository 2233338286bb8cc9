//! `ws-idle`: opens N authenticated connections to one node, holds them for a while with pings,
//! then closes them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::tally::{self, Tally};
use super::{base_url, close_all, stop_on_signal, ConnectArgs, Dialer};

/// Options of `ws-idle`.
#[derive(Debug, clap::Args)]
pub(crate) struct IdleArgs {
    /// Base URL of the server; its host must be a loopback address or `localhost`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Service key with the `sessions:write` scope (to create the sessions); --tokens-file takes
    /// precedence.
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true, required_unless_present = "tokens_file")]
    pub service_key: Option<String>,
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// How long to hold the connections once they are all open.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub hold_secs: u64,
    /// Once every connection attempt has finished, write the counts there as JSON (written to a
    /// temporary name, then renamed, so a reader never sees half a file).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// `ws-idle`: opens, holds, closes; fails when a connection could not be opened or was lost.
pub(crate) async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let base = base_url(&args.base_url)?;
    let dialer = Dialer::new(std::slice::from_ref(&base), &args.conn).await?;
    let sessions = args.conn.sessions(&base, args.service_key.as_deref()).await?;

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let tally = Arc::new(Tally::new(args.conn.count()));
    let progress = tokio::spawn(tally::progress(Arc::clone(&tally), stop.clone()));

    let started = Instant::now();
    let mut held = JoinSet::new();
    dialer
        .connect_all(sessions, &tally, &stop, |_, live, welcome| {
            let pings = args.conn.pings(welcome.heartbeat_interval);
            let (tally, stop) = (Arc::clone(&tally), stop.clone());
            held.spawn(async move {
                if let Some(key) = live.hold(pings, &stop, &tally, None).await.lost_key() {
                    tally.lost(key);
                }
            });
        })
        .await;
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
    close_all(held).await;

    let encoding = args.conn.sockets.encoding;
    print!("{}", tally.summary("ws-idle", &format!("{base}/ws"), encoding, connect_time));
    println!("{}", tally.json("ws-idle", &base, encoding, connect_time));
    tally.verdict()
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse_from, Command, Mode};
    use crate::ws::Encoding;

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
        let Mode::Ws(Command::Idle(args)) = mode else { panic!("not ws-idle") };
        assert_eq!(args.conn.connections, 10_000);
        assert_eq!(args.conn.sockets.source_ips.len(), 2);
        assert_eq!(args.conn.sockets.encoding, Encoding::Json);
        assert!(parse_from(["loadtest", "ws-idle", "--connections", "19901", "--service-key", "k"]).is_err());
        let from_file = parse_from(["loadtest", "ws-idle", "--connections", "5", "--tokens-file", "t"]);
        assert!(matches!(from_file, Ok(Mode::Ws(Command::Idle(_)))));
    }
}
