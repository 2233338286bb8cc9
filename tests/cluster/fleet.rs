//! A fleet of server processes on one Postgres database and one private Redis, with the calls the
//! multi-node tests make: sessions over REST, devices over WebSocket (JSON), and presence as a
//! node reports it.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use session_client::proto::ws::{codec, SUBPROTOCOL_JSON};
use session_test_support::node::NodeProcess;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Fleet {
    pub nodes: Vec<NodeProcess>,
    key: String,
    http: reqwest::Client,
}

impl Fleet {
    pub(crate) async fn start(n: usize, database_url: &str, redis_url: &str, data_dir: &std::path::Path) -> Fleet {
        let key = format!("sk_fleet_{}", uuid::Uuid::new_v4().simple());
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
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

    pub(crate) fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node].base_url())
    }

    pub(crate) async fn call(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(node, path)).bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the node answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A session and its access token.
    pub(crate) async fn session(&self, node: usize, user: &str) -> (String, String) {
        let body = json!({ "user_id": user, "device": { "id": "dev-1", "platform": "pc" } });
        let (status, created) = self.call(node, reqwest::Method::POST, "/sessions", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["session"]["id"].as_str().expect("session id").to_owned();
        (id, created["access_token"].as_str().expect("access token").to_owned())
    }

    pub(crate) async fn online(&self, node: usize, id: &str) -> bool {
        let (status, view) = self.call(node, reqwest::Method::GET, &format!("/sessions/{id}"), None).await;
        assert_eq!(status, 200, "{view}");
        view["online"].as_bool().expect("online is a boolean")
    }

    /// A device connected to `node`, past its `welcome`.
    pub(crate) async fn device(&self, node: usize, access: &str) -> Ws {
        let mut request = format!("ws://{}/ws", self.nodes[node].addr()).into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL_JSON));
        request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {access}")).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
        let welcome = next_frame(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }
}

pub(crate) async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a message");
        if let Message::Text(text) = message {
            return codec::from_json(&text).expect("a JSON frame");
        }
    }
}
