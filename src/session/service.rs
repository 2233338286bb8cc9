//! [`SessionService`]: every operation on sessions, from any entry point (REST today, the
//! WebSocket gateway next). It validates input, applies the domain rules, writes through the
//! [`Store`] and issues tokens. Handlers stay thin: parse, call one method, render.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::refresh::{decide, Decision};
use super::refusals::{Admitted, Refusals};
use super::validate::{self, Invalid};
use super::{
    reasons, Actor, AuditRecord, Device, OutboxEvent, Policy, RevocationListener, SessionRecord, SessionStatus,
};
use crate::bus::{Cached, SessionCache};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::{
    AuditQuery, ListQuery, Revocation, RevokeTarget, Rotation, SessionUpdate, StatusFilter, Store, StoreError,
};
use crate::tokens::{AccessClaims, AccessTokens, RefreshSecrets, RefreshToken, TokenError};

/// How many times a refresh re-reads the session after losing a compare-and-swap race. One retry
/// always suffices (the winner's rotation turns ours into a replay); the rest is margin.
const MAX_REFRESH_ATTEMPTS: usize = 4;
/// Rows the expiry sweep handles per statement.
pub const SWEEP_BATCH: u32 = 500;

/// Why an operation was refused. Mapped to problem codes by the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no such session")]
    NotFound,
    /// Malformed, forged or unknown token. Deliberately says nothing more.
    #[error("invalid token")]
    InvalidToken,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("the session has been revoked")]
    Revoked,
    #[error("the session has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TokenError> for SessionError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid => Self::InvalidToken,
            TokenError::Expired => Self::TokenExpired,
        }
    }
}

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

/// What the service talks to.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    /// Read by the hot paths (access-token auth, validate) instead of the store; invalidated by
    /// every change before the call that made it returns.
    pub cache: Arc<dyn SessionCache>,
    pub clock: Arc<dyn Clock>,
    pub access: Arc<AccessTokens>,
    pub listener: Arc<dyn RevocationListener>,
    pub metrics: Arc<Metrics>,
}

pub struct SessionService {
    store: Arc<dyn Store>,
    cache: Arc<dyn SessionCache>,
    clock: Arc<dyn Clock>,
    access: Arc<AccessTokens>,
    refresh: RefreshSecrets,
    policy: Policy,
    listener: Arc<dyn RevocationListener>,
    metrics: Arc<Metrics>,
    /// Refusals of real sessions, audited in aggregate.
    refusals: Refusals,
}

impl SessionService {
    pub fn new(ports: Ports, refresh: RefreshSecrets, policy: Policy) -> Self {
        let Ports { store, cache, clock, access, listener, metrics } = ports;
        Self { store, cache, clock, access, refresh, policy, listener, metrics, refusals: Refusals::default() }
    }

    /// After a commit that changed `ids`: drops their cached state. A failure is counted and left
    /// to the cache to replay (the store has the truth; the call still succeeds). Logged at debug
    /// only: in an outage every change fails this way, and the outage itself is logged once.
    async fn changed(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.cache.invalidate(ids).await {
            self.metrics.bus_error("invalidate");
            tracing::debug!(error = %e, sessions = ids.len(), "cache invalidation deferred");
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

    /// A session as the hot paths see it: from the cache, else from the store (then cached).
    pub async fn load(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        let ticket = match self.cache.get(id).await {
            Ok(Cached::Hit(record)) => {
                self.metrics.cache(true);
                return Ok(Some(*record));
            }
            Ok(Cached::Miss(ticket)) => Some(ticket),
            Err(e) => {
                self.metrics.bus_error("cache_get");
                tracing::debug!(error = %e, "cache unavailable; reading the store");
                None
            }
        };
        self.metrics.cache(false);
        let record = self.store.get_session(id).await?;
        if let (Some(ticket), Some(record)) = (ticket, &record) {
            if let Err(e) = self.cache.fill(ticket, record).await {
                self.metrics.bus_error("cache_fill");
                tracing::debug!(error = %e, "cache fill failed");
            }
        }
        Ok(record)
    }

    /// Counts a refresh or validate outcome.
    fn outcome(&self, action: &str, outcome: &str) {
        if action == "refresh" {
            self.metrics.refresh(outcome);
        } else {
            self.metrics.validate(outcome);
        }
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

    /// Opens a session and issues its first token pair; may evict the user's least recently used
    /// session to respect the per-user cap.
    pub async fn create(&self, new: NewSession, ctx: &RequestContext) -> Result<Issued, SessionError> {
        validate_new(&new)?;
        let now = self.now();
        let lifetimes = self.policy.lifetimes(&new.device.platform);
        let id = Uuid::new_v4();
        let token = self.refresh.issue_initial(id);
        let absolute = now + lifetimes.absolute_lifetime;
        let record = SessionRecord {
            id,
            user_id: new.user_id,
            status: SessionStatus::Active,
            device: new.device,
            first_ip: new.ip.clone(),
            last_ip: new.ip,
            user_agent: new.user_agent,
            metadata: new.metadata,
            created_at: now,
            last_used_at: now,
            expires_at: lifetimes.expiry_after_use(now, absolute),
            absolute_expires_at: absolute,
            revoked_at: None,
            revoke_reason: None,
            last_seen_at: None,
            refresh_generation: 0,
            refresh_hash: self.refresh.hash(&token),
            prev_refresh_hash: None,
            rotated_at: None,
        };
        let audit = AuditRecord::new(now, ctx.actor.clone(), "create", "ok")
            .session(id, &record.user_id)
            .ip(record.first_ip.as_deref().or(ctx.ip.as_deref()));
        let evicted = self.store.create_session(&record, self.policy.max_sessions_per_user, &audit).await?;
        if !evicted.is_empty() {
            tracing::info!(user.id = %record.user_id, evicted = evicted.len(), "session limit reached");
            self.revoked(&evicted, reasons::SESSION_LIMIT).await;
        }
        Ok(self.issue(record, token.encode(), now))
    }

    pub async fn get(&self, id: Uuid) -> Result<SessionRecord, SessionError> {
        self.store.get_session(id).await?.ok_or(SessionError::NotFound)
    }

    /// A page of a user's sessions, newest first.
    pub async fn list_for_user(
        &self,
        user_id: &str,
        filter: StatusFilter,
        limit: u32,
        after: Option<(DateTime<Utc>, Uuid)>,
    ) -> Result<Vec<SessionRecord>, SessionError> {
        validate::user_id(user_id)?;
        let query = ListQuery { filter, now: self.now(), limit, after };
        Ok(self.store.list_user_sessions(user_id, &query).await?)
    }

    /// Changes the device name and/or metadata.
    pub async fn update(
        &self,
        id: Uuid,
        update: SessionUpdate,
        ctx: &RequestContext,
    ) -> Result<SessionRecord, SessionError> {
        if let Some(name) = &update.device_name {
            validate::text("device_name", name, 128)?;
        }
        if let Some(metadata) = &update.metadata {
            validate::metadata(metadata)?;
        }
        let owner = self.get(id).await?.user_id;
        let audit = self.audit(ctx, "update", "ok").session(id, &owner);
        let updated = self.store.update_session(id, &update, &audit).await?.ok_or(SessionError::NotFound)?;
        self.changed(&[id]).await;
        Ok(updated)
    }

    /// Pushes the idle expiry to `now + idle timeout` (or `now + by`), never past the absolute
    /// expiry and never earlier than it already is (extending never shortens a session).
    pub async fn extend(
        &self,
        id: Uuid,
        by: Option<Duration>,
        ctx: &RequestContext,
    ) -> Result<SessionRecord, SessionError> {
        let now = self.now();
        let current = self.get(id).await?;
        self.ensure_active(&current, now)?;
        let by = by.unwrap_or(self.policy.lifetimes(&current.device.platform).idle_timeout);
        let expires_at = (now + by).min(current.absolute_expires_at).max(current.expires_at);
        let audit = self.audit(ctx, "extend", "ok").session(id, &current.user_id);
        match self.store.extend_session(id, expires_at, now, &audit).await? {
            Some(s) => {
                self.changed(&[id]).await;
                Ok(s)
            }
            // Revoked or expired between our read and the write.
            None => Err(self.inactive_error(&self.get(id).await?, now)),
        }
    }

    /// Revokes one session. Revoking an inactive session changes nothing and answers its state.
    pub async fn revoke(&self, id: Uuid, reason: &str, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let revocation = self.revocation(ctx, reason, false);
        if let Some(s) = self.store.revoke_sessions(&RevokeTarget::Session(id), &revocation).await?.pop() {
            self.revoked(std::slice::from_ref(&s), reason).await;
            return Ok(s);
        }
        self.get(id).await
    }

    /// Revokes (if active) and removes a session; its audit trail stays.
    pub async fn delete(&self, id: Uuid, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let revocation = self.revocation(ctx, reasons::DELETED, false);
        let deleted = self.store.delete_session(id, &revocation).await?.ok_or(SessionError::NotFound)?;
        // Whatever state it was in, a deleted session can keep no connection.
        self.revoked(std::slice::from_ref(&deleted), reasons::DELETED).await;
        Ok(deleted)
    }

    /// Audit trail of one session, newest first.
    pub async fn audit_of_session(
        &self,
        id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<AuditRecord>, SessionError> {
        let query = AuditQuery { session_id: Some(id), user_id: None, limit, before };
        Ok(self.store.list_audit(&query).await?)
    }

    /// Audit trail of one user, newest first.
    pub async fn audit_of_user(
        &self,
        user_id: &str,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<AuditRecord>, SessionError> {
        validate::user_id(user_id)?;
        let query = AuditQuery { session_id: None, user_id: Some(user_id.to_owned()), limit, before };
        Ok(self.store.list_audit(&query).await?)
    }

    /// Marks sessions past their expiry as expired (with audit and events), in batches until none
    /// is left. Returns how many were expired.
    pub async fn sweep_expired(&self) -> Result<usize, SessionError> {
        let mut total = 0;
        loop {
            let batch = self.store.expire_sessions(self.now(), SWEEP_BATCH).await?;
            self.revoked(&batch, reasons::EXPIRED).await;
            total += batch.len();
            if batch.len() < SWEEP_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Checks an access token: signature and expiry, then the session itself, so a revoked
    /// session's still-unexpired token is refused.
    pub async fn authenticate(&self, access_token: &str) -> Result<(AccessClaims, SessionRecord), SessionError> {
        let now = self.now();
        let claims = self.access.verify(access_token, now)?;
        let session = self.load(claims.sid).await?;
        let session = session.filter(|s| s.user_id == claims.sub).ok_or(SessionError::InvalidToken)?;
        self.ensure_active(&session, now)?;
        Ok((claims, session))
    }

    /// The user-API logout of one of the caller's own sessions. Another user's session answers
    /// `NotFound`, exactly like a missing one.
    pub async fn logout(&self, claims: &AccessClaims, id: Uuid, ctx: &RequestContext) -> Result<(), SessionError> {
        let owned = self.load(id).await?.is_some_and(|s| s.user_id == claims.sub);
        if !owned {
            return Err(SessionError::NotFound);
        }
        let revocation = self.revocation(ctx, reasons::LOGOUT, false);
        let revoked = self.store.revoke_sessions(&RevokeTarget::Session(id), &revocation).await?;
        self.revoked(&revoked, reasons::LOGOUT).await;
        Ok(())
    }

    /// Logs the user out everywhere, or everywhere but the calling session. Returns the sessions
    /// revoked.
    pub async fn logout_all(
        &self,
        claims: &AccessClaims,
        except_current: bool,
        ctx: &RequestContext,
    ) -> Result<Vec<SessionRecord>, SessionError> {
        let target = RevokeTarget::User { user_id: claims.sub.clone(), except: except_current.then_some(claims.sid) };
        let revocation = self.revocation(ctx, reasons::LOGOUT_ALL, false);
        let revoked = self.store.revoke_sessions(&target, &revocation).await?;
        self.revoked(&revoked, reasons::LOGOUT_ALL).await;
        Ok(revoked)
    }

    /// Rotates a refresh token (docs/tokens.md): the current token gets its successor, the previous
    /// one within the grace window gets the same successor again, an older genuine one revokes the
    /// session, an unknown one is refused without changing anything.
    pub async fn refresh(&self, presented: &str, ctx: &RequestContext) -> Result<Issued, SessionError> {
        let token = self.parse_refresh(presented, "refresh")?;
        for _ in 0..MAX_REFRESH_ATTEMPTS {
            let now = self.now();
            let session = self.load_for_token(&token, "refresh").await?;
            match decide(&session, &token, &self.refresh, now, self.policy.refresh_grace) {
                Decision::Rotate { successor } => {
                    if let Some(rotated) = self.rotate(&session, &token, &successor, now, ctx).await? {
                        self.changed(&[rotated.id]).await;
                        self.metrics.refresh("rotate");
                        return Ok(self.issue(rotated, successor.encode(), now));
                    }
                    // Lost the race to a concurrent refresh with the same token: look again.
                }
                Decision::Replay { current } => {
                    self.record(self.audit(ctx, "refresh", "replay").session(session.id, &session.user_id)).await?;
                    self.metrics.refresh("replay");
                    return Ok(self.issue(session, current.encode(), now));
                }
                other => return Err(self.refuse(other, &session, "refresh", ctx).await?),
            }
        }
        Err(SessionError::Store(StoreError::Backend("refresh kept losing its compare-and-swap".into())))
    }

    /// Checks a refresh token without rotating it. Refusals are audited; a reused token revokes
    /// the session exactly as a refresh would.
    pub async fn validate_refresh(&self, presented: &str, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let token = self.parse_refresh(presented, "validate")?;
        let session = self.load_for_token(&token, "validate").await?;
        match decide(&session, &token, &self.refresh, self.now(), self.policy.refresh_grace) {
            Decision::Rotate { .. } | Decision::Replay { .. } => {
                self.metrics.validate("ok");
                Ok(session)
            }
            other => Err(self.refuse(other, &session, "validate", ctx).await?),
        }
    }

    fn parse_refresh(&self, presented: &str, action: &str) -> Result<RefreshToken, SessionError> {
        match RefreshToken::parse(presented) {
            Some(t) => Ok(t),
            // Proves nothing about any session: counted, not audited (anyone can send these).
            None => {
                self.outcome(action, "forged");
                Err(SessionError::InvalidToken)
            }
        }
    }

    /// The session a refresh token names. A refresh reads the store (it writes anyway, and its
    /// compare-and-swap needs the current generation); a validation reads through the cache.
    async fn load_for_token(&self, token: &RefreshToken, action: &str) -> Result<SessionRecord, SessionError> {
        let found = match action {
            "refresh" => self.store.get_session(token.session_id).await?,
            _ => self.load(token.session_id).await?,
        };
        match found {
            Some(s) => Ok(s),
            // No such session: counted, not audited, like a malformed token.
            None => {
                self.outcome(action, "forged");
                Err(SessionError::InvalidToken)
            }
        }
    }

    async fn rotate(
        &self,
        session: &SessionRecord,
        token: &RefreshToken,
        successor: &RefreshToken,
        now: DateTime<Utc>,
        ctx: &RequestContext,
    ) -> Result<Option<SessionRecord>, SessionError> {
        let lifetimes = self.policy.lifetimes(&session.device.platform);
        let mut after = session.clone();
        after.refresh_generation = successor.generation;
        after.last_used_at = now;
        after.rotated_at = Some(now);
        after.expires_at = lifetimes.expiry_after_use(now, session.absolute_expires_at);
        if ctx.ip.is_some() {
            after.last_ip = ctx.ip.clone();
        }
        if ctx.user_agent.is_some() {
            after.user_agent = ctx.user_agent.clone();
        }
        let rotation = Rotation {
            session_id: session.id,
            expected_generation: token.generation,
            new_hash: self.refresh.hash(successor),
            prev_hash: self.refresh.hash(token),
            at: now,
            expires_at: after.expires_at,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            audit: self.audit(ctx, "refresh", "rotate").session(session.id, &session.user_id),
            event: OutboxEvent::refreshed(&after, now, successor.generation),
        };
        Ok(self.store.rotate_refresh(&rotation).await?)
    }

    /// Records and answers a refused refresh or validation.
    async fn refuse(
        &self,
        decision: Decision,
        session: &SessionRecord,
        action: &str,
        ctx: &RequestContext,
    ) -> Result<SessionError, SessionError> {
        let audit = |outcome: &str| self.audit(ctx, action, outcome).session(session.id, &session.user_id);
        Ok(match decision {
            Decision::Reuse => {
                tracing::warn!(session.id = %session.id, user.id = %session.user_id, "refresh token reuse: revoking");
                self.outcome(action, "reuse");
                self.record(audit("reuse").reason(reasons::REFRESH_TOKEN_REUSE)).await?;
                let revocation =
                    Revocation { actor: Actor::System, ..self.revocation(ctx, reasons::REFRESH_TOKEN_REUSE, true) };
                let revoked = self.store.revoke_sessions(&RevokeTarget::Session(session.id), &revocation).await?;
                self.revoked(&revoked, reasons::REFRESH_TOKEN_REUSE).await;
                SessionError::Revoked
            }
            Decision::Inactive(status) => {
                let err = if status == SessionStatus::Expired { SessionError::Expired } else { SessionError::Revoked };
                self.outcome(action, "rejected");
                self.refused(audit("rejected").reason(format!("session_{}", status.as_str()))).await?;
                err
            }
            // `Unknown`; acceptances never reach here.
            _ => {
                self.outcome(action, "forged");
                self.refused(audit("forged").reason("unknown_secret")).await?;
                SessionError::InvalidToken
            }
        })
    }

    fn issue(&self, session: SessionRecord, refresh_token: String, now: DateTime<Utc>) -> Issued {
        let ttl = self.policy.lifetimes(&session.device.platform).access_ttl.min(session.expires_at - now);
        let (access_token, access_token_expires_at) = self.access.sign(&session, now, ttl);
        let refresh_token_expires_at = session.expires_at;
        Issued { session, access_token, access_token_expires_at, refresh_token, refresh_token_expires_at }
    }

    fn ensure_active(&self, session: &SessionRecord, now: DateTime<Utc>) -> Result<(), SessionError> {
        if session.is_active(now) {
            Ok(())
        } else {
            Err(self.inactive_error(session, now))
        }
    }

    fn inactive_error(&self, session: &SessionRecord, now: DateTime<Utc>) -> SessionError {
        match session.effective_status(now) {
            SessionStatus::Expired => SessionError::Expired,
            _ => SessionError::Revoked,
        }
    }

    fn audit(&self, ctx: &RequestContext, action: &str, outcome: &str) -> AuditRecord {
        AuditRecord::new(self.now(), ctx.actor.clone(), action, outcome).ip(ctx.ip.as_deref())
    }

    fn revocation(&self, ctx: &RequestContext, reason: &str, suspicious: bool) -> Revocation {
        Revocation {
            reason: reason.to_owned(),
            actor: ctx.actor.clone(),
            ip: ctx.ip.clone(),
            at: self.now(),
            suspicious,
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
            Admitted::Untracked => self.metrics.audit_untracked(),
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

fn validate_new(new: &NewSession) -> Result<(), Invalid> {
    validate::user_id(&new.user_id)?;
    validate::device_id(&new.device.id)?;
    validate::platform(&new.device.platform)?;
    let d = &new.device;
    for (field, value) in [
        ("device.name", &d.name),
        ("device.model", &d.model),
        ("device.app_version", &d.app_version),
        ("device.fingerprint", &d.fingerprint),
    ] {
        if let Some(v) = value {
            validate::text(field, v, 128)?;
        }
    }
    if let Some(ip) = &new.ip {
        validate::ip(ip)?;
    }
    if let Some(ua) = &new.user_agent {
        validate::text("user_agent", ua, 512)?;
    }
    validate::metadata(&new.metadata)
}
