//! Throwaway databases: every test gets its own, so tests run in parallel without seeing each
//! other's rows.
//!
//! Postgres databases are named `sst_<uuid>`; their owner drops them with [`drop_postgres`] (or
//! [`drop_database`]), and `scripts/test.sh` drops any that a crashed run left behind.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{expect_started, StartError};

/// How long creating or dropping a database may take, connection included: a server that
/// accepts connections but never answers must not hold a caller forever.
const DB_TIMEOUT: Duration = Duration::from_secs(30);

/// The server tests create their databases on, from `TEST_DATABASE_URL`.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates a fresh, empty database on the server of `TEST_DATABASE_URL` and returns its URL;
/// panics if it cannot.
pub async fn postgres_url() -> String {
    expect_started(create_database(&postgres_admin_url()).await)
}

/// Drops a database made by [`postgres_url`], disconnecting whoever still uses it; panics if it
/// cannot.
pub async fn drop_postgres(url: &str) {
    expect_started(drop_database(&postgres_admin_url(), url).await);
}

/// Creates a fresh, empty database `sst_<uuid>` on the server that `admin` (a database URL with
/// the right to create databases) points at, and returns the new database's URL.
pub async fn create_database(admin: &str) -> Result<String, StartError> {
    bounded("creating a database", create(admin)).await
}

/// Drops a database made by [`create_database`] on the server of `admin`, disconnecting whoever
/// still uses it. Panics on a name that is not `sst_...`, so nothing else is ever dropped.
pub async fn drop_database(admin: &str, url: &str) -> Result<(), StartError> {
    let name = url::Url::parse(url).expect("not a URL").path().trim_start_matches('/').to_owned();
    assert!(name.starts_with("sst_"), "refusing to drop {name}: not a test database");
    bounded("dropping a database", remove(admin, name)).await
}

async fn bounded<T>(what: &str, work: impl Future<Output = Result<T, StartError>>) -> Result<T, StartError> {
    tokio::time::timeout(DB_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(StartError::Timeout { what: what.to_owned(), after: DB_TIMEOUT }))
}

async fn create(admin: &str) -> Result<String, StartError> {
    let name = format!("sst_{}", Uuid::new_v4().simple());
    let mut url =
        url::Url::parse(admin).map_err(|_| StartError::Invalid("the Postgres admin URL is not a URL".to_owned()))?;
    let mut conn = admin_connection(admin).await?;
    let created = sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await;
    let _ = conn.close().await;
    created.map_err(|source| StartError::Database { what: format!("cannot create database {name}"), source })?;
    url.set_path(&name);
    Ok(url.to_string())
}

async fn remove(admin: &str, name: String) -> Result<(), StartError> {
    let mut conn = admin_connection(admin).await?;
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await;
    let _ = conn.close().await;
    dropped.map_err(|source| StartError::Database { what: format!("cannot drop database {name}"), source })?;
    Ok(())
}

async fn admin_connection(admin: &str) -> Result<PgConnection, StartError> {
    PgConnection::connect(admin)
        .await
        .map_err(|source| StartError::Database { what: format!("cannot connect to {}", redacted(admin)), source })
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "an unparsable URL".to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_server_without_its_password() {
        assert_eq!(redacted("postgres://u:secret@127.0.0.1:5432/postgres"), "postgres://u:***@127.0.0.1:5432/postgres");
        assert_eq!(redacted("postgres://postgres@127.0.0.1/postgres"), "postgres://postgres@127.0.0.1/postgres");
    }
}
