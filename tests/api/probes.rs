//! Looking behind the API: what the database holds and the node's generated keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use session_service::tokens::RefreshSecrets;
use sqlx::{Connection, Row};

use crate::helpers::*;

impl TestApp {
    /// Every stored row of `table`, as text (Postgres: `row_to_json`; SQLite: each column as
    /// text and as lowercase hex), to check what the database holds.
    pub(crate) async fn stored_rows(&self, table: &str) -> String {
        match self.backend() {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(self.database_url()).await.expect("connecting");
                let sql = format!("SELECT row_to_json(t)::text FROM {table} t");
                let rows: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&mut conn).await.expect("a dump");
                rows.join("\n")
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(self.database_url()).await.expect("connecting");
                let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(&mut conn).await.expect("a dump");
                let mut out = String::new();
                for row in rows {
                    for i in 0..row.len() {
                        let bytes: Option<Vec<u8>> = row.try_get_unchecked(i).expect("any column reads as bytes");
                        let bytes = bytes.unwrap_or_default();
                        let hex = hex::encode(&bytes);
                        out.push_str(&format!("{} {hex}\n", String::from_utf8_lossy(&bytes)));
                    }
                }
                out
            }
        }
    }

    /// The outbox, oldest first: `(subject, payload)`.
    pub(crate) async fn outbox(&self) -> Vec<(String, Value)> {
        let rows: Vec<(String, String)> = match self.backend() {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(self.database_url()).await.expect("connecting");
                let sql = "SELECT subject, payload::text FROM outbox ORDER BY id";
                sqlx::query_as(sql).fetch_all(&mut conn).await.expect("the outbox")
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(self.database_url()).await.expect("connecting");
                let sql = "SELECT subject, payload FROM outbox ORDER BY id";
                sqlx::query_as(sql).fetch_all(&mut conn).await.expect("the outbox")
            }
        };
        rows.into_iter().map(|(subject, payload)| (subject, serde_json::from_str(&payload).expect("JSON"))).collect()
    }

    /// The node's refresh-token derivation key, to build genuine tokens of any generation.
    pub(crate) fn refresh_secrets(&self) -> RefreshSecrets {
        let text = std::fs::read_to_string(self.data_dir().join("refresh-key")).expect("the generated refresh key");
        let key = URL_SAFE_NO_PAD.decode(text.trim()).expect("base64url");
        RefreshSecrets::new(key.try_into().expect("32 bytes"), None)
    }
}
