//! `ws-revoke`: cross-node revoke latency. Opens N connections spread over the nodes (connection
//! `i` to node `i % k`), then revokes a random sample of their sessions at a steady rate, each
//! through a node other than the one holding the connection, and times the `revoked` push from
//! just before the revoke request until the frame arrives.
//!
//! The start time and the arrival time are both `std::time::Instant`s: the sampling task takes
//! its own before sending, the connection's task takes the other when the frame is decoded and
//! hands it over a oneshot channel (one per connection), so neither waits on the other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::conn::Ended;
use super::plan::{self, Pacer};
use super::results::{Miss, Results, Sample};
use super::tally::{self, Tally};
use super::{base_url, close_all, stop_on_signal, ConnectArgs, Dialer, MAX_CONNECTIONS};

/// The `reason` sent with every revoke.
const REASON: &str = "loadtest";

/// Options of `ws-revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// Base URLs of the nodes, comma-separated; each host must be a loopback address or
    /// `localhost`. Sessions are created through the first.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..=64)]
    pub base_urls: Vec<String>,
    /// Service key with the `sessions:write` scope, accepted by every node.
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true)]
    pub service_key: String,
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Sessions to revoke, each on a distinct connection picked at random (at most --connections).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    pub samples: u32,
    /// Revokes per second, evenly spaced.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// A sample whose `revoked` has not arrived this long after its revoke was sent is missed;
    /// also the revoke request's own timeout.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub revoke_timeout_secs: u64,
    /// Revokes in flight at once (from sending the request until `revoked` arrives).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub revokes_in_flight: u32,
}

impl RevokeArgs {
    fn revoke_timeout(&self) -> Duration {
        Duration::from_secs(self.revoke_timeout_secs)
    }
}

/// What the sampler needs of a welcomed connection.
struct Probe {
    session_id: String,
    /// When its `revoked` arrived; closed without a value if the connection ends without one.
    arrival: oneshot::Receiver<Instant>,
}

/// The nodes under test: their base URLs, how to connect to them, and the client revoking
/// through them.
struct Cluster {
    nodes: Vec<String>,
    dialer: Dialer,
    http: reqwest::Client,
}

/// The connections once open: their probes and whether each was sampled (by connection index),
/// their tasks, what was measured so far and how long opening them took.
struct Connected {
    probes: Vec<Option<Probe>>,
    sampled: Vec<bool>,
    held: JoinSet<(usize, Ended)>,
    results: Results,
    took: Duration,
}

/// `ws-revoke`: connects, revokes the sample, closes the rest, reports.
pub(crate) async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let n = args.conn.count();
    if args.samples > args.conn.connections {
        bail!("--samples {} is more than --connections {n}", args.samples);
    }
    let nodes = args.base_urls.iter().map(|u| base_url(u)).collect::<anyhow::Result<Vec<_>>>()?;
    if nodes.len() < 2 {
        eprintln!("warning: one node only: each revoke goes through the node holding the connection");
    }
    let dialer = Dialer::new(&nodes, &args.conn).await?;
    let http = revoke_client(&nodes, &args).await?;
    let cluster = Cluster { nodes, dialer, http };
    let sessions = args.conn.sessions(&cluster.nodes[0], Some(&args.service_key)).await?;
    if let Some(s) = plan::repeated_session(sessions.iter().filter_map(|t| t.refresh.as_deref())) {
        bail!("session {s} appears twice in the tokens: its second connection would replace the first");
    }

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let tally = Arc::new(Tally::new(n));
    let progress = tokio::spawn(tally::progress(Arc::clone(&tally), stop.clone()));

    let mut run = connect(&args, &cluster.dialer, sessions, &tally, &stop).await;
    eprintln!("{}", tally.line("connected", run.took));
    tally.start_hold();

    let candidates: Vec<usize> = (0..n).filter(|&i| run.probes[i].is_some()).collect();
    let picked = plan::pick(&candidates, args.samples as usize, &mut rand::thread_rng());
    run.results.asked = args.samples as usize;
    eprintln!("revoking {} sessions at {}/s across {} nodes", picked.len(), args.rate, cluster.nodes.len());
    for sample in revoke_sample(&args, &cluster, &picked, &mut run, &stop).await {
        run.results.record(sample);
    }

    stop.cancel();
    progress.abort();
    let ended = close_all(run.held).await;
    let mut results = run.results;
    results.lost = tally.lost_counts();
    results.classify_revoked(ended.iter().map(|(i, e)| (*i, e)), &run.sampled);
    report(&args, &cluster, &tally, &results, run.took)
}

/// Prints the summary and the JSON line; fails when a connection failed or was lost, or a
/// sample went wrong.
fn report(
    args: &RevokeArgs,
    cluster: &Cluster,
    tally: &Tally,
    results: &Results,
    took: Duration,
) -> anyhow::Result<()> {
    let (target, encoding) = (cluster.nodes.join(","), args.conn.sockets.encoding);
    print!("{}", tally.summary("ws-revoke", &target, encoding, took));
    print!("{}", results.text());
    let mut line = tally.json("ws-revoke", &target, encoding, took);
    line["nodes"] = json!(cluster.nodes.len());
    line["rate"] = json!(args.rate);
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), results.json()) {
        line.extend(fields);
    }
    println!("{line}");
    let problems: Vec<String> =
        [tally.verdict(), results.verdict()].into_iter().filter_map(Result::err).map(|e| e.to_string()).collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// Opens every connection and starts holding each one that is welcomed, recording the welcome
/// latencies.
async fn connect(
    args: &RevokeArgs,
    dialer: &Dialer,
    sessions: Vec<super::sessions::Tokens>,
    tally: &Arc<Tally>,
    stop: &CancellationToken,
) -> Connected {
    let started = Instant::now();
    let mut probes: Vec<Option<Probe>> = std::iter::repeat_with(|| None).take(sessions.len()).collect();
    let mut held = JoinSet::new();
    let mut results = Results::default();
    dialer
        .connect_all(sessions, tally, stop, |i, live, welcome| {
            results.connect_to_welcome.record(welcome.connect_to_welcome);
            results.auth_to_welcome.record(welcome.auth_to_welcome);
            let (tx, rx) = oneshot::channel();
            probes[i] = Some(Probe { session_id: welcome.session_id, arrival: rx });
            let pings = args.conn.pings(welcome.heartbeat_interval);
            let (tally, stop) = (Arc::clone(tally), stop.clone());
            held.spawn(async move {
                let ended = live.hold(pings, &stop, &tally, Some(tx)).await;
                match &ended {
                    Ended::Revoked { .. } => tally.revoked(),
                    Ended::Lost(key) => tally.lost(key.clone()),
                    Ended::Stopped => {}
                }
                (i, ended)
            });
        })
        .await;
    let sampled = vec![false; probes.len()];
    Connected { probes, sampled, held, results, took: started.elapsed() }
}

/// One HTTP/1.1 client for every node, after checking that each answers.
async fn revoke_client(nodes: &[String], args: &RevokeArgs) -> anyhow::Result<reqwest::Client> {
    // Enough idle connections per node for its share of the revokes in flight.
    let per_node = (args.revokes_in_flight as usize).div_ceil(nodes.len());
    let http = crate::http_client(&nodes[0], per_node, args.revoke_timeout()).await?;
    for node in &nodes[1..] {
        crate::check_up(&http, node).await?;
    }
    Ok(http)
}

/// Revokes the sessions of the `picked` connections, paced at `--rate`, at most
/// `--revokes-in-flight` at a time; marks each as sampled before its revoke goes out. Returns
/// the samples (fewer than picked if `stop` came first).
async fn revoke_sample(
    args: &RevokeArgs,
    cluster: &Cluster,
    picked: &[usize],
    run: &mut Connected,
    stop: &CancellationToken,
) -> Vec<Sample> {
    let key: Arc<str> = Arc::from(args.service_key.as_str());
    // Bounds the revokes in flight; a sample holds its permit until its `revoked` arrives or
    // times out, so a slow cluster slows the pacer down instead of piling up requests.
    let slots = Arc::new(Semaphore::new(args.revokes_in_flight as usize));
    let mut pacer = Pacer::new(Instant::now(), args.rate);
    let mut tasks = JoinSet::new();
    for (nth, &i) in picked.iter().enumerate() {
        let due = tokio::time::Instant::from_std(pacer.due());
        let permit = tokio::select! {
            p = async { tokio::time::sleep_until(due).await; Arc::clone(&slots).acquire_owned().await } => p,
            () = stop.cancelled() => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        pacer.fired(Instant::now());
        let Some(probe) = run.probes[i].take() else { continue };
        run.sampled[i] = true;
        let node = plan::revoking_node(cluster.dialer.node_of(i), cluster.nodes.len(), nth);
        let url = format!("{}/sessions/{}/revoke", cluster.nodes[node], probe.session_id);
        let http = cluster.http.clone();
        tasks.spawn(revoke_one(http, url, Arc::clone(&key), probe.arrival, args.revoke_timeout(), permit));
    }
    run.results.sent = tasks.len();

    // Each sample ends within the revoke timeout of its start; the margin only guards that.
    let mut samples = Vec::with_capacity(tasks.len());
    let all = tokio::time::timeout(args.revoke_timeout() + Duration::from_secs(5), async {
        while let Some(joined) = tasks.join_next().await {
            samples.extend(joined.ok());
        }
    })
    .await;
    if all.is_err() {
        tasks.abort_all();
    }
    samples
}

/// Sends one revoke and waits for its `revoked`, both within `timeout` of the start.
async fn revoke_one(
    http: reqwest::Client,
    url: String,
    key: Arc<str>,
    arrival: oneshot::Receiver<Instant>,
    timeout: Duration,
    _slot: OwnedSemaphorePermit,
) -> Sample {
    let t0 = Instant::now();
    let http_result = post_revoke(&http, &url, &key).await.map(|()| t0.elapsed());
    let delivery = match tokio::time::timeout_at(tokio::time::Instant::from_std(t0 + timeout), arrival).await {
        Ok(Ok(arrived)) => Ok(arrived.saturating_duration_since(t0)),
        Ok(Err(_)) => Err(Miss::ConnectionGone),
        Err(_) => Err(Miss::Timeout),
    };
    Sample { http: http_result, delivery }
}

/// `POST <node>/sessions/<id>/revoke` with our reason; `Err(kind)` unless it answers 2xx.
async fn post_revoke(http: &reqwest::Client, url: &str, key: &str) -> Result<(), String> {
    let transport = |e| crate::stats::error_kind(&session_client::Error::Transport(e));
    let response =
        http.post(url).bearer_auth(key).json(&json!({ "reason": REASON })).send().await.map_err(transport)?;
    let status = response.status();
    // Read the body to the end, so the connection goes back to the pool.
    response.bytes().await.map_err(transport)?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{parse_from, Command, Mode};

    #[test]
    fn the_documented_ws_revoke_command_line_parses() {
        let mode = parse_from([
            "loadtest",
            "ws-revoke",
            "--base-urls",
            "http://127.0.0.1:8001,http://127.0.0.1:8002,http://127.0.0.1:8003",
            "--service-key",
            "k",
            "--connections",
            "10000",
            "--samples",
            "500",
            "--rate",
            "50",
            "--source-ips",
            "127.0.0.2,127.0.0.3",
            "--ping-interval-ms",
            "5000",
        ])
        .unwrap();
        let Mode::Ws(Command::Revoke(args)) = mode else { panic!("not ws-revoke") };
        assert_eq!(args.base_urls.len(), 3);
        assert_eq!((args.conn.connections, args.samples, args.rate), (10_000, 500, 50));
        assert_eq!((args.revoke_timeout_secs, args.revokes_in_flight), (5, 64));
        assert_eq!(args.conn.ping_interval_ms, Some(5000));
        let base = ["loadtest", "ws-revoke", "--base-urls", "http://127.0.0.1:1", "--service-key", "k"];
        let with = |extra: &[&'static str]| parse_from(base.iter().chain(extra).copied());
        assert!(with(&["--connections", "19901"]).is_err());
        assert!(with(&["--connections", "10", "--rate", "0"]).is_err());
        let defaults = with(&["--connections", "10"]).unwrap();
        let Mode::Ws(Command::Revoke(args)) = defaults else { panic!("not ws-revoke") };
        assert_eq!((args.samples, args.rate), (1000, 100));
    }
}
