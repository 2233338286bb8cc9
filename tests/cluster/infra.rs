//! The test infrastructure, tested: a private Redis server stops and restarts on its port, a
//! private cluster forms and routes keys, and a node process serves until it is SIGKILLed.

use std::io::ErrorKind;

use ::redis::cluster::ClusterClient;
use ::redis::AsyncCommands;
use session_test_support::node::NodeProcess;
use session_test_support::redis::{RedisCluster, RedisServer};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_private_redis_server_answers_stops_and_answers_again_after_restart_on_the_same_port() {
    let mut server = RedisServer::start().await;
    let port = server.port();
    assert_ne!(port, 6379, "the private server must not be the shared one");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    let mut con = connect(&server.url()).await;
    let pong: String = ::redis::cmd("PING").query_async(&mut con).await.expect("PING");
    assert_eq!(pong, "PONG");
    let () = con.set("infra:before-restart", "1").await.expect("SET");

    server.stop().await;
    let refused = TcpStream::connect(("127.0.0.1", port)).await.expect_err("a stopped server must refuse");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    server.restart().await;
    assert_eq!(server.port(), port, "restart must reuse the port");
    let mut con = connect(&server.url()).await;
    let pong: String = ::redis::cmd("PING").query_async(&mut con).await.expect("PING after restart");
    assert_eq!(pong, "PONG");
    let kept: Option<String> = con.get("infra:before-restart").await.expect("GET");
    assert_eq!(kept, None, "a restarted server starts empty: nothing is persisted");
}

#[tokio::test]
async fn a_three_master_cluster_reaches_state_ok_and_a_key_set_through_a_cluster_client_reads_back() {
    let cluster = RedisCluster::start(3).await;
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    for url in &urls {
        let info =
            session_test_support::redis::cluster_info(url).await.unwrap_or_else(|| panic!("CLUSTER INFO on {url}"));
        assert!(info.lines().any(|l| l.trim() == "cluster_state:ok"), "{url} says:\n{info}");
    }

    let client = ClusterClient::new(urls.clone()).expect("cluster client");
    let mut con = client.get_async_connection().await.expect("cluster connection");
    // Thirty keys hash to slots owned by every master, so each node must be reached.
    for i in 0..30 {
        let () = con.set(format!("infra:{i}"), i).await.expect("SET through the cluster");
    }
    for i in 0..30 {
        let value: Option<i64> = con.get(format!("infra:{i}")).await.expect("GET through the cluster");
        assert_eq!(value, Some(i));
    }
    for url in &urls {
        let mut node = connect(url).await;
        let keys: i64 = ::redis::cmd("DBSIZE").query_async(&mut node).await.expect("DBSIZE");
        assert!(keys > 0, "{url} holds no key: the client did not spread keys over the masters");
    }
}

#[tokio::test]
async fn a_node_process_starts_answers_healthz_and_refuses_connections_after_kill9() {
    let mut node = NodeProcess::spawn(env!("CARGO_BIN_EXE_session-service"), &[]).await;
    let addr = node.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "unexpected address {addr}");

    let health = reqwest::get(format!("{}/healthz", node.base_url())).await.expect("GET /healthz");
    assert_eq!(health.status(), 200, "output:\n{}", node.output_tail());

    node.kill9().await;
    let refused = TcpStream::connect(addr).await.expect_err("a killed node must refuse connections");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

async fn connect(url: &str) -> ::redis::aio::MultiplexedConnection {
    let client = ::redis::Client::open(url).expect("redis URL");
    client.get_multiplexed_async_connection().await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}
