//! The storage port: what the domain needs from durable storage of sessions, the audit trail and
//! the event outbox, as one dyn-safe trait with its query types and errors. The adapters
//! (`crate::store::postgres`, `crate::store::sqlite`) implement it; every state change writes
//! the audit records and outbox events of its [`Trail`](super::trail::Trail) in the same
//! transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::trail::eviction;
use super::{Actor, AuditRecord, OutboxEvent, SessionRecord, SessionStatus};

/// The underlying failure of a store operation, kept as the error's `source()` so that logs show
/// the driver's own error chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time.
    #[error("store unavailable")]
    Unavailable(#[source] Cause),
    /// A uniqueness rule was broken (e.g. a session id that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row could not be read back into the domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else the backend reported (bad SQL, a failed migration, an unsupported URL).
    #[error("store error")]
    Backend(#[source] Cause),
}

/// Which sessions a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Effectively active at `now` (status active and not past `expires_at`).
    Active,
    /// Every session of the user, whatever its state.
    All,
}

/// A page of a user's sessions, newest first (`created_at DESC, id DESC`).
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: StatusFilter,
    pub now: DateTime<Utc>,
    pub limit: u32,
    /// Keyset cursor: only sessions strictly after this `(created_at, id)` in the ordering.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// A page of audit records, newest first (by id, a UUIDv7, so by time).
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub session_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub limit: u32,
    /// Only records with an id strictly less than this one.
    pub before: Option<Uuid>,
}

/// A refresh-token rotation, applied only if the session is still at `expected_generation`, active
/// and not expired at `at` (compare-and-swap).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub session_id: Uuid,
    pub expected_generation: i64,
    pub new_hash: Vec<u8>,
    /// Hash of the token being rotated away; becomes `prev_refresh_hash`.
    pub prev_hash: Vec<u8>,
    pub at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub audit: AuditRecord,
    pub event: OutboxEvent,
}

/// Which sessions a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    Session(Uuid),
    /// All of a user's active sessions, optionally sparing one.
    User {
        user_id: String,
        except: Option<Uuid>,
    },
}

/// How a revocation is recorded. Only sessions effectively active at `at` are revoked; for each,
/// the store writes an audit record (action `revoke`, outcome `ok`), a `session.revoked` event and,
/// when `suspicious` is set, a `session.suspicious` event (see [`Trail::revocations`](super::trail::Trail::revocations)).
#[derive(Debug, Clone)]
pub struct Revocation {
    pub reason: String,
    pub actor: Actor,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
    pub suspicious: bool,
    /// The record of what set the revocation off (a detected refresh-token reuse), written in the
    /// same transaction, whether or not a session was still active to revoke.
    pub cause: Option<AuditRecord>,
}

/// The erasure of a deleted user: their effectively active sessions are revoked as `revocation`
/// says (reason `user_deleted`), and the personal data of every one of their session rows (any
/// state), audit entries and kept outbox events is erased, in one transaction.
///
/// Erased: a session's first and last IP, user agent, device name and device fingerprint, its
/// metadata (set to `{}`); an audit entry's IP; the `data.ip` of an outbox event (set to `null`).
/// Kept, as the facts of what happened: ids, the user id, device id, platform, model and app
/// version, statuses, times, reasons and actions. (Places, once sessions hold them, are erased
/// with the rest of a session's personal data.)
#[derive(Debug, Clone)]
pub struct Erasure {
    pub user_id: String,
    pub revocation: Revocation,
}

/// What an erasure changed. All empty when there was nothing left to revoke or erase (a second
/// erasure of the same user).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Erased {
    /// The sessions it revoked, as revoked and erased.
    pub revoked: Vec<SessionRecord>,
    /// Every session whose row it erased (revoked or not).
    pub sessions: Vec<Uuid>,
    /// Audit entries whose IP it erased.
    pub audit_entries: u64,
    /// Outbox events whose IP it erased.
    pub events: u64,
}

impl Erased {
    /// Whether the erasure found nothing to revoke or erase.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.sessions.is_empty() && self.audit_entries == 0 && self.events == 0
    }
}

/// A new session with what its creation leaves behind (its audit record and `session.created`),
/// and the per-user cap: beyond `cap` effectively active sessions, the least recently used
/// others are revoked as `eviction` says.
#[derive(Debug, Clone)]
pub struct Creation<'a> {
    pub session: &'a SessionRecord,
    pub cap: u32,
    pub audit: AuditRecord,
    pub event: OutboxEvent,
    pub eviction: Revocation,
}

impl<'a> Creation<'a> {
    /// The creation of `session` as the domain records it.
    pub fn new(session: &'a SessionRecord, cap: u32, audit: AuditRecord) -> Self {
        let event = OutboxEvent::created(session);
        Self { session, cap, audit, event, eviction: eviction(session.created_at) }
    }
}

/// Mutable metadata of a session; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    pub device_name: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Which outbox rows a prune may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxPrune {
    /// Delivered rows only: with a broker, an undelivered row is never deleted.
    Delivered,
    /// Any row, delivered or not: without a broker nothing is ever delivered.
    Any,
}

/// Outbox events claimed by one relay pass ([`Store::claim_events`]), oldest first. Dropping the
/// claim without [`OutboxClaim::mark_sent`] leaves every one undelivered.
pub struct OutboxClaim {
    pub events: Vec<OutboxEvent>,
    lease: Box<dyn OutboxLease>,
}

impl OutboxClaim {
    /// `events`, held by `lease` (an adapter's transaction or lock).
    pub fn new(events: Vec<OutboxEvent>, lease: Box<dyn OutboxLease>) -> Self {
        Self { events, lease }
    }

    /// Marks `ids` (some or all of the claimed events) delivered at `at` in one statement and
    /// releases the claim; the others stay undelivered. An event already marked keeps its first
    /// delivery time.
    pub async fn mark_sent(self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError> {
        self.lease.mark_sent(ids, at).await
    }
}

impl std::fmt::Debug for OutboxClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxClaim").field("events", &self.events.len()).finish_non_exhaustive()
    }
}

/// What holds an [`OutboxClaim`]'s events, implemented by each store adapter.
#[async_trait]
pub trait OutboxLease: Send {
    /// Marks `ids` delivered at `at`, then lets go of the claim.
    async fn mark_sent(self: Box<Self>, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError>;
}

/// A place in the revocation feed: everything up to it has been read. Its meaning is the
/// backend's (Postgres: a transaction id and an event id in it; SQLite: a commit sequence
/// number and the nil id); callers only store it and hand it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedPosition {
    /// The commit-ordered part: Postgres' `xid8` of the writing transaction, SQLite's sequence.
    pub major: u64,
    /// Order among the rows of one `major` (Postgres: the event id; SQLite: always nil).
    pub minor: Uuid,
}

/// What [`Store::revocations`] reads.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    /// Continue after this position; `None` reads from the oldest revocation kept.
    pub after: Option<FeedPosition>,
    /// Only revocations made at or after this time (older ones no longer matter).
    pub since: DateTime<Utc>,
    /// Most revocations in the page.
    pub limit: u32,
}

/// One revoked session, as the feed reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    pub session_id: Uuid,
    pub user_id: String,
    pub revoked_at: DateTime<Utc>,
}

/// A page of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// In commit order.
    pub revocations: Vec<RevokedSession>,
    /// Where the next read continues; never before the query's `after`.
    pub cursor: FeedPosition,
    /// More revocations follow the cursor already (the page was full).
    pub has_more: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// Round trip to the database (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Inserts the creation's session with its audit record and event. Then, if the user holds
    /// more than `cap` effectively active sessions at `session.created_at`, revokes the least
    /// recently used others (as its `eviction` says: reason `session_limit`, actor system) until
    /// `cap` remain. Atomic; concurrent creations for one user are serialized so the cap holds.
    /// Returns the evicted sessions.
    async fn create_session(&self, creation: &Creation<'_>) -> Result<Vec<SessionRecord>, StoreError>;

    async fn get_session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError>;

    async fn list_user_sessions(&self, user_id: &str, query: &ListQuery) -> Result<Vec<SessionRecord>, StoreError>;

    /// Applies `rotation` if its compare-and-swap holds: generation + 1, new current hash, previous
    /// hash kept, `rotated_at` and `last_used_at` = `at`, `expires_at`, `last_ip` (when given),
    /// `user_agent` (when given); writes its audit and event. `None` when the CAS failed.
    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<Option<SessionRecord>, StoreError>;

    /// Updates device name and/or metadata of a session in any state, with `audit` and a
    /// `session.updated` event. `None` if there is no such session.
    async fn update_session(
        &self,
        id: Uuid,
        update: &SessionUpdate,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Sets `expires_at` and `last_used_at = at` of a session effectively active at `at`, with
    /// `audit` and a `session.extended` event. `None` if it is missing or not active.
    async fn extend_session(
        &self,
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditRecord,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Revokes the target's effectively active sessions (see [`Revocation`]); returns them as
    /// revoked. Already revoked or expired sessions are left untouched and not returned.
    async fn revoke_sessions(
        &self,
        target: &RevokeTarget,
        revocation: &Revocation,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Revokes the session if it is active (as `revoke_sessions` would, reason from `revocation`),
    /// then deletes its row and writes an audit record (action `delete`). Audit records of the
    /// session stay. Returns the record as it was before deletion, `None` if there was none.
    async fn delete_session(&self, id: Uuid, revocation: &Revocation) -> Result<Option<SessionRecord>, StoreError>;

    /// Applies `erasure` (see [`Erasure`]) atomically: revokes the user's effectively active
    /// sessions, each with the trail of a revocation (audit `revoke`, `session.revoked`), erases the
    /// personal data of all the user's session rows, audit entries and kept outbox events, and,
    /// if anything changed, writes one audit record of the erasure (actor and time of the
    /// revocation, action `erase`, the user, no session). A second erasure of the same user
    /// changes nothing and writes nothing.
    async fn erase_user(&self, erasure: &Erasure) -> Result<Erased, StoreError>;

    /// Appends one audit record on its own (operations that change nothing: replays, refusals).
    async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// The revocation feed: the `session.revoked` events of the outbox after `query.after`, in
    /// commit order, and a cursor to continue from. The cursor never passes a revocation that
    /// may still commit (transactions commit out of order: a backend returns only rows whose
    /// writers have all finished, see [`FeedPosition`]), so walking the feed from any cursor it
    /// returned misses nothing that is still in the outbox. Revocations older than `query.since`
    /// are skipped (they no longer matter). Reads only.
    async fn revocations(&self, query: &FeedQuery) -> Result<FeedPage, StoreError>;

    /// Marks up to `limit` sessions that are `active` in storage but past `expires_at` at `now` as
    /// `expired`, each with an audit record (actor system, action `expire`) and a `session.expired`
    /// event. Returns them.
    async fn expire_sessions(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<SessionRecord>, StoreError>;

    /// Oldest undelivered outbox events, in creation order.
    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Marks outbox events delivered.
    async fn mark_events_sent(&self, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Claims up to `limit` undelivered outbox events for one relay pass, oldest first (by
    /// `created_at`, then id), so that several relays never hold the same event and each
    /// session's events are delivered in order: while a claim is held, no other claim returns an
    /// event of a session it holds events of, and a session's events are always claimed from its
    /// oldest undelivered one on. The claim holds them until [`OutboxClaim::mark_sent`] or until
    /// it is dropped (the events then stay undelivered, for the next claim).
    ///
    /// Postgres: a transaction held while the relay publishes; sessions' partitions are locked
    /// with `pg_try_advisory_xact_lock` first, then their rows taken `FOR UPDATE SKIP LOCKED`
    /// (`store::postgres::outbox`). SQLite (one node): an in-process lock, so one claim at a time.
    async fn claim_events(&self, limit: u32) -> Result<OutboxClaim, StoreError>;

    /// Deletes up to `limit` outbox rows created before `before`, oldest first: only delivered
    /// ones ([`OutboxPrune::Delivered`]) or any ([`OutboxPrune::Any`]). Returns how many went.
    async fn prune_outbox(&self, scope: OutboxPrune, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Count of sessions per stored status (for metrics and stats).
    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, i64)>, StoreError>;

    /// Records when live connections were last heard from: the WebSocket gateway batches
    /// heartbeats in memory and flushes them here every few seconds (up to ~10,000 entries a call).
    ///
    /// For each `(session id, time)`, sets `last_seen_at` to the time unless the stored value is
    /// already the same or later: it never moves backwards, however flushes from several nodes
    /// interleave. An id given twice counts once, with its latest time. Ids without a row are
    /// ignored; a row is touched whatever its status (a flush may trail a revocation). Returns the
    /// number of rows changed. An empty slice returns 0 without touching the database.
    ///
    /// Presence is not a state change: no audit record, no outbox event, and no other column
    /// (`last_used_at` and `expires_at` included) is written. One statement on Postgres and one
    /// on SQLite (through the write connection), so a flush is applied entirely or not at all.
    async fn touch_last_seen(&self, seen: &[(Uuid, DateTime<Utc>)]) -> Result<u64, StoreError>;

    /// Of `ids`, those that are not effectively active at `now`, with why: the stored revoke reason
    /// for a revoked session, "expired" for an expired one (status expired, or active but past
    /// expires_at), "deleted" for an id with no row. Active sessions are not returned. Used by each
    /// node's periodic reconciliation of its live WebSocket connections against the store, so it
    /// must be cheap for thousands of ids: one statement per chunk (Postgres: `id = ANY($1)`;
    /// SQLite: an IN list, chunks of at most 500 ids), never one query per id.
    ///
    /// An id given twice is reported once; the order of the result is unspecified. A revoked row
    /// without a stored reason reports `revoked_by_service`. Empty `ids` returns an empty vec
    /// without querying. Reads only: no audit record, no event.
    async fn inactive_among(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<(Uuid, String)>, StoreError>;
}
