//! Unauthenticated floods of the refresh-token endpoints must not grow the audit trail: garbage
//! and tokens naming no session are counted in the metrics only, and forged tokens naming a real
//! session leave that session's trail one row per kind and minute, plus one aggregate row with the
//! number of further attempts. (Before: one row per request, 46,453 rows and 10 MB in 10 s.)

use chrono::Duration;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::*;

/// Concurrent flooding clients, and requests each sends.
const CLIENTS: usize = 16;
const REQUESTS_EACH: usize = 150;

impl TestApp {
    /// Rows of `audit_log` and the bytes the database takes on disk (Postgres: the whole
    /// database; SQLite: pages in use).
    async fn audit_footprint(&self) -> (i64, i64) {
        let count = "SELECT COUNT(*) FROM audit_log";
        match self.backend() {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(self.database_url()).await.expect("connecting");
                let rows: i64 = sqlx::query_scalar(count).fetch_one(&mut conn).await.unwrap();
                let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                (rows, bytes)
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(self.database_url()).await.expect("connecting");
                let rows: i64 = sqlx::query_scalar(count).fetch_one(&mut conn).await.unwrap();
                let pages: i64 = sqlx::query_scalar(
                    "SELECT page_count - freelist_count FROM pragma_page_count, pragma_freelist_count",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
                let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut conn).await.unwrap();
                (rows, pages * size)
            }
        }
    }

    async fn trail(&self, id: Uuid) -> Vec<Value> {
        let resp = self.reader(Method::GET, &format!("/sessions/{id}/audit?limit=500")).send().await.unwrap();
        let page: Value = resp.json().await.unwrap();
        page["entries"].as_array().expect("entries").clone()
    }
}

/// The bodies one flooding client sends: garbage, tokens of sessions that do not exist, and
/// forged secrets for the victim's session id, to both endpoints.
fn flood_request(victim: Uuid, i: usize) -> (&'static str, String) {
    let path = if i % 2 == 0 { "/session/validate" } else { "/session/refresh" };
    let secret = "A".repeat(43);
    let token = match i % 3 {
        0 => format!("garbage-{i}"),
        1 => format!("rt1.{}.3.{secret}", Uuid::new_v4()),
        _ => format!("rt1.{victim}.{}.{secret}", i % 7),
    };
    (path, token)
}

async fn a_flood_of_bad_refresh_tokens_leaves_a_few_aggregated_audit_rows(backend: Backend) {
    let app = spawn_app(backend).await;
    let victim = app.create_session("victim").await;
    let (rows_before, bytes_before) = app.audit_footprint().await;
    let trail_before = app.trail(victim.id).await.len();

    let clients = (0..CLIENTS).map(|c| {
        let app = &app;
        async move {
            for r in 0..REQUESTS_EACH {
                let (path, token) = flood_request(victim.id, c * REQUESTS_EACH + r);
                let resp = app.anon(Method::POST, path).json(&json!({ "refresh_token": token })).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            }
        }
    });
    join_all(clients).await;

    let (rows_after, bytes_after) = app.audit_footprint().await;
    let forged_attempts = (0..CLIENTS * REQUESTS_EACH).filter(|i| i % 3 == 2).count() as u64;
    eprintln!("{forged_attempts} forged attempts; audit rows {rows_before} -> {rows_after}; bytes {bytes_before} -> {bytes_after}");
    // The first forged attempt per endpoint is written at once; the rest wait for the minute.
    assert_eq!(rows_after - rows_before, 2, "audit rows written during the flood");
    assert!(bytes_after - bytes_before < 1_000_000, "the database grew by {} bytes", bytes_after - bytes_before);

    // When the minute is over, one more row per endpoint says how many more attempts came.
    app.advance(Duration::seconds(61));
    assert_eq!(app.state().sessions.flush_refusals(false).await.unwrap(), 2);
    let trail = app.trail(victim.id).await;
    let forged: Vec<&Value> = trail.iter().filter(|e| e["outcome"] == "forged").collect();
    assert_eq!(trail.len() - trail_before, 4, "{trail:#?}");
    assert_eq!(forged.len(), 4);
    let attempts: u64 = forged.iter().map(|e| e["attempts"].as_u64().expect("attempts")).sum();
    assert_eq!(attempts, forged_attempts, "every forged attempt is accounted for");
    assert!(forged.iter().all(|e| e["reason"] == "unknown_secret" && e["session_id"] == victim.id.to_string()));
    // The victim's session lives on.
    assert_eq!(app.validate(&victim.refresh).await.status(), StatusCode::OK);
}

both!(a_flood_of_bad_refresh_tokens_leaves_a_few_aggregated_audit_rows);
