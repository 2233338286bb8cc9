//! The storage adapters: implementations of the domain's [`Store`] port.
//! Every state change writes its audit record and outbox events in the same transaction.
//!
//! Backends: [`postgres`] (production) and [`sqlite`] (embedded default); [`connect`] picks one
//! from the URL scheme and runs its migrations.

#[macro_use]
mod columns;
mod driver;
mod presence;

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use crate::session::store::{Store, StoreError};

/// Connects to the store named by `url` (`postgres://`, `postgresql://` or `sqlite:`) and applies
/// its migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, postgres::DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect`] with a given size of the Postgres connection pool (SQLite has one writer anyway).
pub async fn connect_with(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url, max_connections).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        let scheme = url.split(':').next().unwrap_or("");
        let message = format!("unsupported database URL scheme (expected postgres:// or sqlite:): {scheme}");
        Err(StoreError::Backend(message.into()))
    }
}
