//! [`SessionService`]: every operation on sessions, from any entry point (the REST API and the
//! WebSocket gateway). It validates input, applies the domain rules, writes through the
//! [`Store`] port and issues tokens. Transports stay thin: parse, call one method, render.
//!
//! By job: [`lifecycle`] opens, reads, lists, changes and ends sessions; [`erasure`] ends a
//! deleted user and erases their personal data; [`tokens`] applies the refresh state machine
//! ([`decide`](super::refresh::decide)) and authenticates access tokens; this file holds what
//! they share: the cache read, the after-commit steps and the records.

mod erasure;
mod lifecycle;
mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cache::{Cached, SessionCache};
use super::outcomes::{CacheOp, Outcomes};
use super::refusals::{Admitted, Refusals};
use super::store::{Revocation, Store};
use super::{Actor, AuditRecord, Device, Policy, RevocationListener, SessionError, SessionRecord};
use crate::clock::Clock;
use crate::tokens::{AccessTokens, RefreshSecrets};

pub use lifecycle::SWEEP_BATCH;

/// Who is calling and from where, for audit and device tracking.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What the auth-service supplies to open a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: String,
    pub device: Device,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub metadata: serde_json::Value,
}

/// A session with a fresh token pair.
#[derive(Debug, Clone)]
pub struct Issued {
    pub session: SessionRecord,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

/// What the service talks to: its ports, each implemented outside the domain.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    /// Read by the hot paths (access-token auth, validate) instead of the store; invalidated by
    /// every change before the call that made it returns.
    pub cache: Arc<dyn SessionCache>,
    pub clock: Arc<dyn Clock>,
    pub access: Arc<AccessTokens>,
    pub listener: Arc<dyn RevocationListener>,
    pub outcomes: Arc<dyn Outcomes>,
}

pub struct SessionService {
    store: Arc<dyn Store>,
    cache: Arc<dyn SessionCache>,
    clock: Arc<dyn Clock>,
    access: Arc<AccessTokens>,
    refresh: RefreshSecrets,
    policy: Policy,
    listener: Arc<dyn RevocationListener>,
    outcomes: Arc<dyn Outcomes>,
    /// Refusals of real sessions, audited in aggregate.
    refusals: Refusals,
}

impl SessionService {
    pub fn new(ports: Ports, refresh: RefreshSecrets, policy: Policy) -> Self {
        let Ports { store, cache, clock, access, listener, outcomes } = ports;
        Self { store, cache, clock, access, refresh, policy, listener, outcomes, refusals: Refusals::default() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock the service reads time from.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A session as the hot paths see it: from the cache, else from the store (then cached).
    pub async fn cached(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        let ticket = match self.cache.get(id).await {
            Ok(Cached::Hit(record)) => {
                self.outcomes.cache_read(true);
                return Ok(Some(*record));
            }
            Ok(Cached::Miss(ticket)) => Some(ticket),
            Err(e) => {
                self.outcomes.cache_failed(CacheOp::Get);
                tracing::debug!(error = &e as &dyn std::error::Error, "cache unavailable; reading the store");
                None
            }
        };
        self.outcomes.cache_read(false);
        let record = self.store.get_session(id).await?;
        if let (Some(ticket), Some(record)) = (ticket, &record) {
            if let Err(e) = self.cache.fill(ticket, record).await {
                self.outcomes.cache_failed(CacheOp::Fill);
                tracing::debug!(error = &e as &dyn std::error::Error, "cache fill failed");
            }
        }
        Ok(record)
    }

    /// After a commit that changed `ids`: drops their cached state. A failure is counted and left
    /// to the cache to replay (the store has the truth; the call still succeeds). Logged at debug
    /// only: in an outage every change fails this way, and the outage itself is logged once.
    async fn changed(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.cache.invalidate(ids).await {
            self.outcomes.cache_failed(CacheOp::Invalidate);
            tracing::debug!(error = &e as &dyn std::error::Error, sessions = ids.len(), "cache invalidation deferred");
        }
    }

    /// After a committed revocation: invalidates, then has the holders of live connections told.
    async fn revoked(&self, sessions: &[SessionRecord], reason: &str) {
        if sessions.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
        self.changed(&ids).await;
        self.listener.revoked(sessions, reason).await;
    }

    fn audit(&self, ctx: &RequestContext, action: &str, outcome: &str) -> AuditRecord {
        AuditRecord::new(self.now(), ctx.actor.clone(), action, outcome).ip(ctx.ip.as_deref())
    }

    fn revocation(&self, ctx: &RequestContext, reason: &str) -> Revocation {
        Revocation {
            reason: reason.to_owned(),
            actor: ctx.actor.clone(),
            ip: ctx.ip.clone(),
            at: self.now(),
            suspicious: false,
            cause: None,
        }
    }

    async fn record(&self, audit: AuditRecord) -> Result<(), SessionError> {
        Ok(self.store.append_audit(&audit).await?)
    }

    /// Audits a refusal against a real session in aggregate (see `refusals`).
    async fn refused(&self, audit: AuditRecord) -> Result<(), SessionError> {
        match self.refusals.admit(audit, self.now()) {
            Admitted::Write(rows) => self.write_refusals(rows).await?,
            Admitted::Counted => {}
            Admitted::Untracked => self.outcomes.refusal_untracked(),
        }
        Ok(())
    }

    /// Writes the aggregate rows of refusal windows that have ended (all of them with
    /// `everything`, at shutdown). Returns how many rows were written; on a failed write the
    /// rows not written are kept for the next call.
    pub async fn flush_refusals(&self, everything: bool) -> Result<usize, SessionError> {
        let rows = self.refusals.close(self.now(), everything);
        let written = rows.len();
        self.write_refusals(rows).await?;
        Ok(written)
    }

    /// Appends refusal rows in order; the ones a failure left unwritten go back to the refusals
    /// for the next flush, so an unreachable store loses no count.
    async fn write_refusals(&self, rows: Vec<AuditRecord>) -> Result<(), SessionError> {
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            if let Err(e) = self.store.append_audit(&row).await {
                self.refusals.unwritten(std::iter::once(row).chain(rows));
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// `Ok` if the session is active at `now`, else why not.
fn ensure_active(session: &SessionRecord, now: DateTime<Utc>) -> Result<(), SessionError> {
    if session.is_active(now) {
        Ok(())
    } else {
        Err(SessionError::inactive(session, now))
    }
}
