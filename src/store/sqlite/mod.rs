//! The embedded store: a SQLite file in WAL mode, the default when no database is configured.
//!
//! Two pools: every write transaction goes through a pool of exactly one connection, which
//! serializes writers in-process (so a writer never meets SQLITE_BUSY from a sibling, and never
//! deadlocks upgrading a read lock), while a few read connections serve lookups concurrently
//! from WAL snapshots. An in-memory database (`sqlite::memory:`) exists only inside its one
//! connection, so there both pools are that same single connection.
//!
//! - [`sessions`](self::sessions): create (with the per-user cap), get, list, update, extend.
//! - [`lifecycle`](self::lifecycle): rotate, revoke, delete, expire.
//! - [`erasure`](self::erasure): a deleted user's sessions revoked and personal data erased.
//! - [`feed`](self::feed): the revocation feed, read from the outbox in commit order.
//! - [`journal`](self::journal): audit log and outbox appends.
//! - [`outbox`](self::outbox): the relay's claims (one relay at a time) and pruning.
//! - [`presence`](self::presence): `last_seen_at` from batched heartbeats; which live sessions
//!   are no longer active (reconciliation).
//! - [`rows`](self::rows): binding domain values and decoding rows.

mod erasure;
mod feed;
mod journal;
mod lifecycle;
mod outbox;
mod presence;
mod rows;
mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use uuid::Uuid;

use super::driver::{self, Context};
use crate::session::store::{
    AuditQuery, Creation, Erased, Erasure, FeedPage, FeedQuery, ListQuery, OutboxClaim, OutboxPrune, Revocation,
    RevokeTarget, Rotation, SessionUpdate, Store, StoreError,
};
use crate::session::trail::Trail;
use crate::session::{AuditRecord, OutboxEvent, SessionRecord, SessionStatus};

/// Read connections. Reads are short index lookups; a few cover two cores.
const READERS: u32 = 4;

/// How long a caller waits for a connection (the write connection included) and how long SQLite
/// waits on a lock held by another process before the store reports itself unavailable.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions, audit and outbox in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: all write transactions.
    write: SqlitePool,
    /// Lookups and listings.
    read: SqlitePool,
    /// Held by the relay's claim from the read of its rows until they are marked.
    claims: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if missing) the database at `url`
    /// (`sqlite://path/to/file.db`, `sqlite:file.db` or `sqlite::memory:`) and applies the
    /// migrations in `migrations/sqlite`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit survives a crash of the process; only a power loss
            // can lose the last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(TIMEOUT);
        if url.contains(":memory:") || url.contains("mode=memory") {
            let pool = pool(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            let pool = pool.connect_with(options).await.map_err(db_error)?;
            migrate(&pool).await?;
            return Ok(Self { write: pool.clone(), read: pool, claims: Arc::default() });
        }
        create_owner_only(options.get_filename()).await?;
        let write = pool(1).connect_with(options.clone()).await.map_err(db_error)?;
        migrate(&write).await?;
        let read = pool(READERS).connect_with(options).await.map_err(db_error)?;
        Ok(Self { write, read, claims: Arc::default() })
    }
}

/// Creates the database file (and its missing directories) readable by its owner only, before
/// SQLite opens it: the rows hold user ids, IP addresses and refresh-token hashes. Directories are
/// created 0700 and the file 0600; SQLite gives the `-wal` and `-shm` files it creates later the
/// database file's own permissions. An existing file or directory keeps its permissions (the
/// operator's choice).
async fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    let failed = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(Box::new(Context::new(format!("cannot create {}", what.display()), e)))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir).await.map_err(|e| failed(dir, e))?;
    }
    let mut file = tokio::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    file.mode(0o600);
    match file.open(path).await {
        // An empty file is an empty database to SQLite.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(failed(path, e)),
    }
}

fn pool(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(connections).acquire_timeout(TIMEOUT)
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/sqlite").run(pool).await.map_err(|e| driver::migration(e, transient))
}

/// Translates a sqlx error from SQLite into a [`StoreError`].
fn db_error(e: sqlx::Error) -> StoreError {
    driver::translate(e, transient)
}

/// Result codes worth a retry (primary code of the extended one): BUSY and LOCKED (another
/// process held the lock past the busy timeout), IOERR, FULL and CANTOPEN (the disk).
fn transient(e: &dyn DatabaseError) -> bool {
    let code = e.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
    matches!(code, Some(5 | 6 | 10 | 13 | 14))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(db_error)?;
        Ok(())
    }

    async fn create_session(&self, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::create(&self.write, creation).await
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        sessions::get(&self.read, id).await
    }

    async fn list_user_sessions(&self, user_id: &str, query: &ListQuery) -> Result<Vec<SessionRecord>, StoreError> {
        sessions::list(&self.read, user_id, query).await
    }

    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<Option<SessionRecord>, StoreError> {
        lifecycle::rotate(&self.write, rotation).await
    }

    async fn update_session(
        &self,
        id: Uuid,
        update: &SessionUpdate,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::update(&self.write, id, update, audit).await
    }

    async fn extend_session(
        &self,
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::extend(&self.write, id, expires_at, at, audit).await
    }

    async fn revoke_sessions(
        &self,
        target: &RevokeTarget,
        revocation: &Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        lifecycle::revoke(&self.write, target, revocation).await
    }

    async fn delete_session(&self, id: Uuid, revocation: &Revocation) -> Result<Option<SessionRecord>, StoreError> {
        lifecycle::delete(&self.write, id, revocation).await
    }

    async fn erase_user(&self, erasure: &Erasure) -> Result<Erased, StoreError> {
        erasure::erase_user(&self.write, erasure).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut conn = self.write.acquire().await.map_err(db_error)?;
        let trail = Trail::audit_only(record);
        journal::append(&mut conn, &trail).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        journal::list_audit(&self.read, query).await
    }

    async fn revocations(&self, query: &FeedQuery) -> Result<FeedPage, StoreError> {
        feed::revocations(&self.read, query).await
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<SessionRecord>, StoreError> {
        lifecycle::expire(&self.write, now, limit).await
    }

    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        journal::pending_events(&self.read, limit).await
    }

    async fn mark_events_sent(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        journal::mark_events_sent(&self.write, ids, at).await
    }

    async fn claim_events(&self, limit: u32) -> Result<OutboxClaim, StoreError> {
        outbox::claim(&self.claims, &self.read, &self.write, limit).await
    }

    async fn prune_outbox(&self, scope: OutboxPrune, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        outbox::prune(&self.write, scope, before, limit).await
    }

    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, i64)>, StoreError> {
        let found = sqlx::query("SELECT status, count(*) AS n FROM sessions GROUP BY status ORDER BY status")
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        found
            .iter()
            .map(|row| {
                let status: &str = row.try_get("status").map_err(db_error)?;
                let status = SessionStatus::parse(status).ok_or_else(|| driver::corrupt("session status", status))?;
                Ok((status, row.try_get("n").map_err(db_error)?))
            })
            .collect()
    }

    async fn touch_last_seen(&self, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError> {
        presence::touch_last_seen(&self.write, seen).await
    }

    async fn inactive_among(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<(Uuid, String)>, StoreError> {
        presence::inactive_among(&self.read, ids, now).await
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn a_new_database_its_directory_and_its_wal_files_are_owner_only() {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = std::env::temp_dir().join(format!("sqlite-modes-{}", Uuid::new_v4()));
        let db = root.join("data").join("sessions.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        // The migrations have written through the WAL; the shared-memory file exists while open.
        store.ping().await.unwrap();
        let files = ["sessions.db", "sessions.db-wal", "sessions.db-shm"].map(|f| mode(&db.with_file_name(f)));
        assert_eq!(files, [0o600; 3]);
        assert_eq!((mode(&root), mode(db.parent().unwrap())), (0o700, 0o700));
        drop(store);
        std::fs::remove_dir_all(root).unwrap();
    }
}
