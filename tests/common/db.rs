//! Throwaway databases for integration tests: every test gets its own, so tests run in parallel
//! without seeing each other's rows. Include from a test binary with
//! `#[path = "../common/db.rs"] mod db;`.
//!
//! Postgres databases are named `sst_<uuid>`; a test drops its own with [`drop_postgres`], and
//! `scripts/test.sh` drops any a crashed run left behind.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The server tests create their databases on, from `TEST_DATABASE_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates a fresh, empty database and returns its URL.
pub async fn postgres_url() -> String {
    let admin = postgres_admin_url();
    let name = format!("sst_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL ({admin}): {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is not a URL");
    url.set_path(&name);
    url.to_string()
}

/// Drops a database made by [`postgres_url`], disconnecting whoever still uses it.
pub async fn drop_postgres(url: &str) {
    let name = url::Url::parse(url).expect("not a URL").path().trim_start_matches('/').to_owned();
    assert!(name.starts_with("sst_"), "refusing to drop {name}: not a test database");
    let mut conn = PgConnection::connect(&postgres_admin_url()).await.expect("cannot connect to drop");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot drop database {name}: {e}"));
    let _ = conn.close().await;
}

/// A URL for a SQLite file that does not exist yet, in a fresh directory under the system's
/// temporary directory (the directory is not created: the store must create it).
pub fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("sst-{}", Uuid::new_v4()));
    let path = dir.join("sessions.db");
    format!("sqlite://{}", path.display())
}

/// Removes the directory of a database made by [`sqlite_url`].
pub fn remove_sqlite(url: &str) {
    let path = PathBuf::from(url.trim_start_matches("sqlite://"));
    if let Some(dir) = path.parent().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sst-")))
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}
