//! `[database]`: the store a node keeps its sessions in. The pool size defaults to
//! [`DEFAULT_MAX_CONNECTIONS`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::store::postgres::DEFAULT_MAX_CONNECTIONS;

/// `[database]`: the store.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://...` for production, or `sqlite:...`. Unset: SQLite in
    /// `<data_dir>/sessions.db`.
    #[arg(id = "database.url", long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: Option<Secret>,
    /// Postgres connection pool per node.
    #[arg(id = "database.max_connections", long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS")]
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: None, max_connections: DEFAULT_MAX_CONNECTIONS }
    }
}

impl DatabaseSettings {
    /// The configured URL, or the embedded SQLite database in `data_dir`.
    pub(super) fn url(&self, data_dir: &Path) -> Secret {
        let embedded = || Secret(format!("sqlite://{}", data_dir.join("sessions.db").display()));
        self.url.clone().unwrap_or_else(embedded)
    }
}
