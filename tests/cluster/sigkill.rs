//! A node killed with SIGKILL: three server processes share a Postgres database and a private
//! Redis; the first is killed without a chance to clean up. Its session must read offline within
//! the liveness TTL (default 3 s, plus one 1 s beat for the survivors to notice; the issue allows
//! 5 s), and the survivors keep serving: REST, their own devices, revoking the dead node's
//! sessions, and the cluster stats.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use session_client::proto::ws::SUBPROTOCOL_JSON;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::db;
use crate::node::NodeProcess;
use crate::redis::RedisServer;

/// The issue's bound for a dead node's sessions to read offline.
const OFFLINE_WITHIN: Duration = Duration::from_secs(5);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Fleet {
    nodes: Vec<NodeProcess>,
    key: String,
    http: reqwest::Client,
}

impl Fleet {
    async fn start(n: usize, database_url: &str, redis_url: &str, data_dir: &std::path::Path) -> Fleet {
        let key = format!("sk_fleet_{}", uuid::Uuid::new_v4().simple());
        let hash: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let env = [
            ("DATABASE_URL", database_url.to_owned()),
            ("REDIS_URL", redis_url.to_owned()),
            ("REDIS_PREFIX", "fleet".to_owned()),
            ("DATA_DIR", data_dir.display().to_string()),
            ("SERVICE_KEYS", format!("fleet:{hash}:sessions:read+sessions:write")),
        ];
        // One at a time: the first generates the signing and refresh keys the others load.
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(NodeProcess::spawn(env!("CARGO_BIN_EXE_session-service"), &env).await);
        }
        Fleet { nodes, key, http: reqwest::Client::builder().no_proxy().build().unwrap() }
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node].base_url())
    }

    async fn call(&self, node: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(node, path)).bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the node answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A session and its access token.
    async fn session(&self, node: usize, user: &str) -> (String, String) {
        let body = json!({ "user_id": user, "device": { "id": "dev-1", "platform": "pc" } });
        let (status, created) = self.call(node, reqwest::Method::POST, "/sessions", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["session"]["id"].as_str().expect("session id").to_owned();
        (id, created["access_token"].as_str().expect("access token").to_owned())
    }

    async fn online(&self, node: usize, id: &str) -> bool {
        let (status, view) = self.call(node, reqwest::Method::GET, &format!("/sessions/{id}"), None).await;
        assert_eq!(status, 200, "{view}");
        view["online"].as_bool().expect("online is a boolean")
    }

    /// A device connected to `node`, past its `welcome`.
    async fn device(&self, node: usize, access: &str) -> Ws {
        let mut request = format!("ws://{}/ws", self.nodes[node].addr()).into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL_JSON));
        request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {access}")).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
        let welcome = next_frame(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

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

    fleet.nodes[0].kill9().await;
    let killed_at = Instant::now();
    while fleet.online(2, &doomed).await {
        assert!(killed_at.elapsed() < OFFLINE_WITHIN, "still online {:?} after SIGKILL", killed_at.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offline_after = killed_at.elapsed();
    eprintln!("the dead node's session read offline {offline_after:?} after SIGKILL");

    // Nothing else broke: the survivors' devices, REST, revoking the dead node's session.
    assert!(fleet.online(1, &survivor).await);
    on_live_node.send(Message::Text(r#"{"type":"ping","id":1,"ts":5}"#.into())).await.unwrap();
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
