//! A node under a small file limit, with far more idle sockets held against it than it has files:
//! the connection caps it sized from the limit keep descriptors free, idle sockets make room for
//! new ones, and a real player still gets its `welcome` and `/healthz` still answers. Before the
//! caps, the node ran out of descriptors (`accept: Too many open files`) and answered nothing.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use session_client::proto::ws::{codec, ClientFrame, SUBPROTOCOL_JSON};
use session_test_support::node::NodeProcess;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The node's file limit: well below the idle sockets held against it.
const FILE_LIMIT: u64 = 512;
const IDLE_SOCKETS: usize = 1_000;
/// How long a real request may take while the flood is held (a busy machine included).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_thousand_idle_sockets_held_and_a_small_file_limit_a_player_still_gets_welcome() {
    let key = format!("sk_limit_{}", uuid::Uuid::new_v4().simple());
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    // Long timeouts: the idle sockets stay unless the node makes room by closing them itself.
    let env = [
        ("SERVICE_KEYS", format!("limit:{hash}:sessions:read+sessions:write")),
        ("HTTP_HEADER_TIMEOUT_MS", "600000".to_owned()),
        ("WS_AUTH_TIMEOUT_MS", "600000".to_owned()),
    ];
    let node = NodeProcess::spawn_with_file_limit(env!("CARGO_BIN_EXE_session-service"), FILE_LIMIT, &env).await;
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().unwrap();
    let body = json!({ "user_id": "player-1", "device": { "id": "d-1", "platform": "pc" } });
    let created: Value = http
        .post(format!("{}/sessions", node.base_url()))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .unwrap();
    let access = created["access_token"].as_str().expect("an access token").to_owned();

    let mut idle = Vec::with_capacity(IDLE_SOCKETS);
    for _ in 0..IDLE_SOCKETS {
        idle.push(TcpStream::connect(node.addr()).await.expect("the kernel accepts the connection"));
    }

    let health = tokio::time::timeout(ANSWER_WITHIN, http.get(format!("{}/healthz", node.base_url())).send()).await;
    let health = health.unwrap_or_else(|_| panic!("/healthz did not answer; node output:\n{}", node.output_tail()));
    assert_eq!(health.expect("/healthz answers").status(), 200);

    let welcome = tokio::time::timeout(ANSWER_WITHIN, welcome(&node, &access)).await;
    let welcome = welcome.unwrap_or_else(|_| panic!("no welcome in time; node output:\n{}", node.output_tail()));
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    let output = node.output_tail();
    assert!(!output.contains("accept failed"), "the node ran out of descriptors:\n{output}");
    assert!(output.contains("connection limits lowered to fit the file limit"), "{output}");
    drop(idle);
}

/// Connects a device with the `auth` frame and returns the server's first frame.
pub(crate) async fn welcome(node: &NodeProcess, access: &str) -> Value {
    let mut request = format!("ws://{}/ws", node.addr()).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL_JSON));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
    let auth = codec::to_json(&ClientFrame::Auth { id: None, token: access.to_owned() }).expect("encodes");
    ws.send(Message::Text(auth.into())).await.unwrap();
    loop {
        match ws.next().await.expect("the connection is open").expect("a message") {
            Message::Text(text) => return codec::from_json(&text).expect("a JSON frame"),
            _ => continue,
        }
    }
}
