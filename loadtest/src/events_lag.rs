//! `events-lag`: subscribes to the session events a relay publishes to NATS and reports, for each
//! event received, how long after its envelope's `time` (the change's commit time on the node's
//! clock, the same machine's) it arrived: the outbox-to-broker lag, as a subscriber sees it. Run
//! it beside a REST run (`--scenario refresh`) against nodes with `NATS_URL` set.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;

/// `loadtest events-lag`.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsLagArgs {
    /// NATS server the nodes relay to (loopback).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The nodes' `EVENTS_SUBJECT_PREFIX`.
    #[arg(long, default_value = "")]
    pub subject_prefix: String,
    /// Events arriving during this first part are not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// How long to measure after the warm-up.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
}

/// Subscribes, measures until the deadline, prints the summary and one JSON line.
pub(crate) async fn run(args: EventsLagArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.nats_url.contains("127.0.0.1") || args.nats_url.contains("localhost"),
        "only a loopback NATS server is accepted"
    );
    let client = async_nats::connect(&args.nats_url).await.context("connecting to NATS")?;
    let mut events = client.subscribe(format!("{}session.>", args.subject_prefix)).await.context("subscribing")?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let deadline = measure_from + Duration::from_secs(args.duration_secs);
    let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("a histogram")?;
    let mut unreadable = 0u64;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), events.next()).await;
        let Ok(Some(message)) = next else { break };
        let received = chrono::Utc::now();
        if Instant::now() < measure_from {
            continue;
        }
        let time = serde_json::from_slice::<serde_json::Value>(&message.payload)
            .ok()
            .and_then(|v| v["time"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()));
        match time {
            Some(time) => {
                let micros = (received - time).num_microseconds().unwrap_or(0).max(1);
                lag.saturating_record(micros as u64);
            }
            None => unreadable += 1,
        }
    }
    let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
    let rate = lag.len() as f64 / args.duration_secs.max(1) as f64;
    println!(
        "events-lag: {} events ({rate:.0}/s), lag p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {unreadable} unreadable",
        lag.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        lag.max() as f64 / 1000.0
    );
    let json = serde_json::json!({
        "mode": "events-lag", "events": lag.len(), "rate": rate, "unreadable": unreadable,
        "lag_ms": { "p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999), "max": lag.max() as f64 / 1000.0 },
    });
    println!("{json}");
    Ok(())
}
