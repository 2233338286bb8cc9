//! Presence after a clean close: a device that closes its socket reads offline on the other nodes
//! as soon as the node that held it has released its directory entry (one Redis call, made right
//! after the connection task ends). Measured over many rounds, with the distribution printed.

use std::time::{Duration, Instant};

use session_test_support::db;
use session_test_support::redis::RedisServer;

use crate::fleet::Fleet;

/// Connect-close rounds measured.
const ROUNDS: usize = 20;
/// Generous: the release is one Redis round trip after the close (milliseconds on loopback); this
/// only catches an entry left to lapse with its node instead.
const OFFLINE_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanly_closed_device_reads_offline_on_another_node_within_milliseconds() {
    let redis = RedisServer::start().await;
    let database = db::postgres_url().await;
    let data_dir = std::env::temp_dir().join(format!("sst-fleet-{}", uuid::Uuid::new_v4()));
    let fleet = Fleet::start(2, &database, &redis.url(), &data_dir).await;
    let (id, access) = fleet.session(0, "closer").await;

    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let mut device = fleet.device(0, &access).await;
        // The directory entry is claimed before `welcome` is sent.
        assert!(fleet.online(1, &id).await, "round {round}: B sees the device on A");
        device.close(None).await.expect("the close is sent");
        let closed = Instant::now();
        while fleet.online(1, &id).await {
            assert!(
                closed.elapsed() < OFFLINE_WITHIN,
                "round {round}: still online {:?} after the close",
                closed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(closed.elapsed());
        assert!(!fleet.online(0, &id).await, "round {round}: A agrees");
    }
    samples.sort();
    eprintln!(
        "offline on another node after a clean close ({ROUNDS} rounds): min {:?}, median {:?}, max {:?}",
        samples[0],
        samples[ROUNDS / 2],
        samples[ROUNDS - 1]
    );

    drop(fleet);
    let _ = std::fs::remove_dir_all(&data_dir);
    db::drop_postgres(&database).await;
}
