//! A node killed with SIGKILL: three server processes share a Postgres database and a private
//! Redis; the first is killed without a chance to clean up. Its session must read offline within
//! the liveness TTL (default 3 s, plus one 1 s beat for the survivors to notice; the issue allows
//! 5 s), and the survivors keep serving: REST, their own devices, revoking the dead node's
//! sessions, and the cluster stats.

use std::time::{Duration, Instant};

use futures::SinkExt;
use session_client::proto::ws::{codec, ClientFrame};
use session_test_support::db;
use session_test_support::redis::RedisServer;
use tokio_tungstenite::tungstenite::Message;

use crate::fleet::{next_frame, Fleet};

/// The bound for a dead node's sessions to read offline.
const OFFLINE_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_sessions_read_offline_within_the_liveness_ttl_and_the_rest_keeps_working() {
    let redis = RedisServer::start().await;
    let database = db::postgres_url().await;
    let data_dir = std::env::temp_dir().join(format!("sst-fleet-{}", uuid::Uuid::new_v4()));
    let mut fleet = Fleet::start(3, &database, &redis.url(), &data_dir).await;

    let (doomed, doomed_access) = fleet.session(0, "victim").await;
    let (survivor, survivor_access) = fleet.session(1, "bystander").await;
    let _on_dead_node = fleet.device(0, &doomed_access).await;
    let mut on_live_node = fleet.device(1, &survivor_access).await;
    assert!(fleet.online(2, &doomed).await, "C sees the device on A");

    // At a random point of the victim's one-second beat, so that repeated runs sample how long
    // its last liveness key had left (the start-up sequence alone would fix that phase).
    let phase = Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 0..1000));
    tokio::time::sleep(phase).await;
    fleet.nodes[0].kill9().await;
    let killed_at = Instant::now();
    while fleet.online(2, &doomed).await {
        assert!(killed_at.elapsed() < OFFLINE_WITHIN, "still online {:?} after SIGKILL", killed_at.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let offline_after = killed_at.elapsed();
    eprintln!("the dead node's session read offline {offline_after:?} after SIGKILL");

    // Nothing else broke: the survivors' devices, REST, revoking the dead node's session.
    assert!(fleet.online(1, &survivor).await);
    let ping = codec::to_json(&ClientFrame::Ping { id: Some(1), ts: 5 }).expect("encodes");
    on_live_node.send(Message::Text(ping.into())).await.unwrap();
    assert_eq!(next_frame(&mut on_live_node).await["type"], "pong");
    let (status, _) = fleet.call(2, reqwest::Method::POST, &format!("/sessions/{doomed}/revoke"), None).await;
    assert_eq!(status, 200);
    let (status, stats) = fleet.call(1, reqwest::Method::GET, "/cluster/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(2), "the dead node is not listed: {stats}");
    assert_eq!(stats["online_sessions"], 1, "{stats}");

    drop(fleet);
    let _ = std::fs::remove_dir_all(&data_dir);
    db::drop_postgres(&database).await;
}
