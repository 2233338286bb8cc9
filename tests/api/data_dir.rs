//! What a node started with no configuration leaves on disk: its data directory, the embedded
//! database with its WAL files, and the keys it generated, all readable by their owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::helpers::*;

/// A directory that does not exist yet (the node must create it), removed on drop.
struct Fresh(PathBuf);

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

async fn a_fresh_node_creates_its_data_directory_and_every_file_in_it_owner_only(backend: Backend) {
    let root = Fresh(std::env::temp_dir().join(format!("session-fresh-{}", uuid::Uuid::new_v4().simple())));
    let data = root.0.join("var").join("data");
    let app = spawn_app_with(backend, |o| {
        o.data_dir.clone_from(&data);
        o.database.url = None; // the embedded default: <data_dir>/sessions.db
        o.http.service_keys = Vec::new(); // generated into <data_dir>/service-key
    })
    .await;
    // A write, so the database has certainly gone through its WAL.
    let key = std::fs::read_to_string(data.join("service-key")).expect("the generated service key");
    let created = app
        .anon(reqwest::Method::POST, "/sessions")
        .bearer_auth(key.trim())
        .json(&session_body("user-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    assert_eq!((mode(&root.0.join("var")), mode(&data)), ("700".into(), "700".into()), "directories");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), mode(&p)))
        .collect();
    files.sort();
    let expected =
        ["refresh-key", "service-key", "sessions.db", "sessions.db-shm", "sessions.db-wal", "signing-key.pem"];
    assert_eq!(files, expected.map(|f| (f.to_owned(), "600".to_owned())).to_vec());
    drop(app);
}

sqlite_only!(a_fresh_node_creates_its_data_directory_and_every_file_in_it_owner_only);
