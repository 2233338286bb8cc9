//! The real binary reads its settings in layers: a nested TOML file (`SESSION_CONFIG`) over the
//! defaults, and the environment over the file, key by key within a section. Seen by a player:
//! the heartbeat values its `welcome` announces.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::file_limit::welcome;
use session_test_support::node::NodeProcess;

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_overrides_one_key_of_a_file_section_and_the_file_keeps_the_others() {
    let key = format!("sk_config_{}", uuid::Uuid::new_v4().simple());
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    let file = TempFile(std::env::temp_dir().join(format!("sst-config-{}.toml", uuid::Uuid::new_v4().simple())));
    let toml = format!(
        "[http]\nservice_keys = [\"cfg:{hash}:sessions:read+sessions:write\"]\n\n\
         [gateway]\nheartbeat_interval_ms = 11000\nheartbeat_timeout_ms = 33000\n"
    );
    std::fs::write(&file.0, toml).unwrap();
    let env = [("SESSION_CONFIG", file.0.display().to_string()), ("WS_HEARTBEAT_INTERVAL_MS", "12000".to_owned())];
    let node = NodeProcess::spawn(env!("CARGO_BIN_EXE_session-service"), &env).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({ "user_id": "player-1", "device": { "id": "d-1", "platform": "pc" } });
    let response = http.post(format!("{}/sessions", node.base_url())).bearer_auth(&key).json(&body).send().await;
    let created: Value = response.expect("the node answers").json().await.unwrap();
    let access = created["access_token"].as_str().unwrap_or_else(|| panic!("the file's service key works: {created}"));

    let welcome = welcome(&node, access).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["heartbeat_interval_ms"], 12_000, "the environment wins over the file");
    assert_eq!(welcome["heartbeat_timeout_ms"], 33_000, "the file wins over the default");
}
