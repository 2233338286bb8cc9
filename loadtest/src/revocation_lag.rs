//! `revocation-lag`: how long after `POST /sessions/{id}/revoke` returns a `Verifier` in this
//! process refuses that session's still-valid access token, through the long-poll feed
//! (`GET /revocations`) and, with `--nats-url`, through NATS (`<prefix>session.revoked`, which
//! needs the server's outbox relay).
//!
//! Sessions are revoked one at a time; for each, every follower's `Verifier` is polled (every
//! `--poll-us`) until it refuses the token. Reports p50/p99/max per path.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use session_client::proto::{Device, NewSession};
use session_client::verifier::{Following, Verifier, VerifierConfig, VerifyError};
use session_client::ServiceClient;

use crate::cli;
use crate::stats::Latency;

/// Options of `revocation-lag`.
#[derive(Debug, clap::Args)]
pub(crate) struct LagArgs {
    /// Base URL of the node; its host must be a loopback address or `localhost`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Service key with the `sessions:read` and `sessions:write` scopes.
    #[arg(long, env = "LOADTEST_SERVICE_KEY", hide_env_values = true)]
    pub service_key: String,
    /// Sessions created and revoked, one after another.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub samples: u32,
    /// Also measure through NATS at this URL (the server must relay its outbox there).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// The server's `events.subject_prefix`.
    #[arg(long, default_value = "")]
    pub nats_prefix: String,
    /// The tokens' `iss`.
    #[arg(long, default_value = "session-service")]
    pub issuer: String,
    /// The tokens' `aud`.
    #[arg(long, default_value = "game-platform")]
    pub audience: String,
    /// How often a `Verifier` is asked about the revoked token, in microseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=100_000))]
    pub poll_us: u64,
    /// A sample not refused this long after its revoke returned is missed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout_secs: u64,
}

/// One way revocations reach a `Verifier`, and what it measured.
struct Path {
    name: &'static str,
    verifier: Verifier,
    _following: Following,
    lag: Latency,
    missed: u64,
}

/// Runs the measurement and prints the report.
pub(crate) async fn run(args: LagArgs) -> anyhow::Result<()> {
    let base = cli::loopback_url(&args.base_url)?.as_str().trim_end_matches('/').to_owned();
    let config = VerifierConfig::new(base.clone(), args.issuer.clone(), args.audience.clone());
    let mut paths = vec![feed_path(&config, &args.service_key).await?];
    if let Some(url) = &args.nats_url {
        paths.push(nats_path(&config, url, &args.nats_prefix).await?);
    }
    let service = ServiceClient::new(base.clone(), args.service_key.clone());
    let http = reqwest::Client::builder().no_proxy().build()?;
    let run_id = format!("{:x}", std::process::id());
    let (poll, timeout) = (Duration::from_micros(args.poll_us), Duration::from_secs(args.timeout_secs));
    for n in 0..args.samples {
        let label = format!("lt-lag-{run_id}-{n}");
        let created = service.create_session(&NewSession::new(label.clone(), Device::new(label, "loadtest"))).await?;
        let (id, token) = (created.session.id, created.access_token);
        for path in &paths {
            path.verifier.verify(&token).await.with_context(|| format!("{}: a fresh token must verify", path.name))?;
        }
        let resp = http.post(format!("{base}/sessions/{id}/revoke")).bearer_auth(&args.service_key).send().await?;
        if !resp.status().is_success() {
            bail!("revoke answered {}", resp.status());
        }
        let revoked = Instant::now();
        for path in &mut paths {
            match refused_within(&path.verifier, &token, revoked, poll, timeout).await {
                Some(lag) => path.lag.record(lag),
                None => path.missed += 1,
            }
        }
    }
    report(&paths, args.samples);
    Ok(())
}

async fn feed_path(config: &VerifierConfig, service_key: &str) -> anyhow::Result<Path> {
    let verifier = Verifier::new(config.clone());
    let mut following = verifier.follow_feed(service_key.to_owned());
    tokio::time::timeout(Duration::from_secs(30), following.synced()).await.context("reading the feed to its end")?;
    Ok(Path { name: "feed", verifier, _following: following, lag: Latency::new(), missed: 0 })
}

async fn nats_path(config: &VerifierConfig, url: &str, prefix: &str) -> anyhow::Result<Path> {
    let client = async_nats::connect(url).await.with_context(|| format!("connecting to NATS at {url}"))?;
    let verifier = Verifier::new(config.clone());
    let following = verifier.follow_nats(client, prefix).await.context("subscribing to session.revoked")?;
    Ok(Path { name: "nats", verifier, _following: following, lag: Latency::new(), missed: 0 })
}

/// How long after `since` the verifier refused `token` as revoked; `None` past `timeout`.
async fn refused_within(
    verifier: &Verifier,
    token: &str,
    since: Instant,
    poll: Duration,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if matches!(verifier.verify(token).await, Err(VerifyError::Revoked(_))) {
            return Some(since.elapsed());
        }
        if since.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(poll).await;
    }
}

fn report(paths: &[Path], samples: u32) {
    println!("revocation-lag: {samples} sessions revoked one by one; time from the revoke returning to the Verifier refusing");
    let mut json = serde_json::Map::new();
    for path in paths {
        let (p50, p99, max) = (path.lag.ms_at(0.5), path.lag.ms_at(0.99), path.lag.max_ms());
        println!(
            "  {:<5} refused {:>6}  missed {:>4}  p50 {p50:>8.1} ms  p99 {p99:>8.1} ms  max {max:>8.1} ms",
            path.name,
            path.lag.count(),
            path.missed
        );
        json.insert(
            path.name.to_owned(),
            serde_json::json!({ "refused": path.lag.count(), "missed": path.missed, "p50_ms": p50, "p99_ms": p99, "max_ms": max }),
        );
    }
    println!("{}", serde_json::Value::Object(json));
}
