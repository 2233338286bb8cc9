//! The token paths: refresh-token rotation and validation (applying the pure
//! [`decide`](crate::session::refresh::decide)), access-token authentication, and the user's own
//! logouts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ensure_active, Issued, RequestContext, SessionService};
use crate::session::outcomes::{TokenCheck, TokenOutcome};
use crate::session::refresh::{decide, Decision};
use crate::session::store::{Revocation, RevokeTarget, Rotation, StoreError};
use crate::session::{reasons, Actor, OutboxEvent, SessionError, SessionRecord, SessionStatus};
use crate::tokens::{AccessClaims, RefreshToken};

/// How many times a refresh re-reads the session after losing a compare-and-swap race. One retry
/// always suffices (the winner's rotation turns ours into a replay); the rest is margin.
const MAX_REFRESH_ATTEMPTS: usize = 4;

impl SessionService {
    /// Checks an access token: signature and expiry, then the session itself, so a revoked
    /// session's still-unexpired token is refused.
    pub async fn authenticate(&self, access_token: &str) -> Result<(AccessClaims, SessionRecord), SessionError> {
        let now = self.now();
        let claims = self.access.verify(access_token, now)?;
        let session = self.cached(claims.sid).await?;
        let session = session.filter(|s| s.user_id == claims.sub).ok_or(SessionError::InvalidToken)?;
        ensure_active(&session, now)?;
        Ok((claims, session))
    }

    /// The user-API logout of one of the caller's own sessions. Another user's session answers
    /// `NotFound`, exactly like a missing one.
    pub async fn logout(&self, claims: &AccessClaims, id: Uuid, ctx: &RequestContext) -> Result<(), SessionError> {
        let owned = self.cached(id).await?.is_some_and(|s| s.user_id == claims.sub);
        if !owned {
            return Err(SessionError::NotFound);
        }
        let revocation = self.revocation(ctx, reasons::LOGOUT);
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
        let revocation = self.revocation(ctx, reasons::LOGOUT_ALL);
        let revoked = self.store.revoke_sessions(&target, &revocation).await?;
        self.revoked(&revoked, reasons::LOGOUT_ALL).await;
        Ok(revoked)
    }

    /// Rotates a refresh token (docs/tokens.md): the current token gets its successor, the previous
    /// one within the grace window gets the same successor again, an older genuine one revokes the
    /// session, an unknown one is refused without changing anything.
    pub async fn refresh(&self, presented: &str, ctx: &RequestContext) -> Result<Issued, SessionError> {
        let check = TokenCheck::Refresh;
        let token = self.parse_refresh(presented, check)?;
        for _ in 0..MAX_REFRESH_ATTEMPTS {
            let now = self.now();
            let session = self.token_session(&token, check).await?;
            match decide(&session, &token, &self.refresh, now, self.policy.refresh_grace) {
                Decision::Rotate { successor } => {
                    if let Some(rotated) = self.rotate(&session, &token, &successor, now, ctx).await? {
                        self.changed(&[rotated.id]).await;
                        self.outcomes.token_checked(check, TokenOutcome::Rotate);
                        return Ok(self.issue(rotated, successor.encode(), now));
                    }
                    // Lost the race to a concurrent refresh with the same token: look again.
                }
                Decision::Replay { current } => {
                    let outcome = TokenOutcome::Replay;
                    self.record(
                        self.audit(ctx, check.action(), outcome.as_str()).session(session.id, &session.user_id),
                    )
                    .await?;
                    self.outcomes.token_checked(check, outcome);
                    return Ok(self.issue(session, current.encode(), now));
                }
                other => return Err(self.refuse(other, &session, check, ctx).await?),
            }
        }
        Err(SessionError::Store(StoreError::Backend("refresh kept losing its compare-and-swap".into())))
    }

    /// Checks a refresh token without rotating it. Refusals are audited; a reused token revokes
    /// the session exactly as a refresh would.
    pub async fn validate_refresh(&self, presented: &str, ctx: &RequestContext) -> Result<SessionRecord, SessionError> {
        let check = TokenCheck::Validate;
        let token = self.parse_refresh(presented, check)?;
        let session = self.token_session(&token, check).await?;
        match decide(&session, &token, &self.refresh, self.now(), self.policy.refresh_grace) {
            Decision::Rotate { .. } | Decision::Replay { .. } => {
                self.outcomes.token_checked(check, TokenOutcome::Ok);
                Ok(session)
            }
            other => Err(self.refuse(other, &session, check, ctx).await?),
        }
    }

    fn parse_refresh(&self, presented: &str, check: TokenCheck) -> Result<RefreshToken, SessionError> {
        match RefreshToken::parse(presented) {
            Some(t) => Ok(t),
            // Proves nothing about any session: counted, not audited (anyone can send these).
            None => {
                self.outcomes.token_checked(check, TokenOutcome::Forged);
                Err(SessionError::InvalidToken)
            }
        }
    }

    /// The session a refresh token names. A refresh reads the store (it writes anyway, and its
    /// compare-and-swap needs the current generation); a validation reads through the cache.
    async fn token_session(&self, token: &RefreshToken, check: TokenCheck) -> Result<SessionRecord, SessionError> {
        let found = match check {
            TokenCheck::Refresh => self.store.get_session(token.session_id).await?,
            TokenCheck::Validate => self.cached(token.session_id).await?,
        };
        match found {
            Some(s) => Ok(s),
            // No such session: counted, not audited, like a malformed token.
            None => {
                self.outcomes.token_checked(check, TokenOutcome::Forged);
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

    /// Records and answers a refused refresh or validation. A reuse revokes the session, its
    /// audit record riding in the revocation's transaction.
    async fn refuse(
        &self,
        decision: Decision,
        session: &SessionRecord,
        check: TokenCheck,
        ctx: &RequestContext,
    ) -> Result<SessionError, SessionError> {
        let audit = |outcome: TokenOutcome| {
            self.audit(ctx, check.action(), outcome.as_str()).session(session.id, &session.user_id)
        };
        Ok(match decision {
            Decision::Reuse => {
                tracing::warn!(session.id = %session.id, user.id = %session.user_id, "refresh token reuse: revoking");
                self.outcomes.token_checked(check, TokenOutcome::Reuse);
                let revocation = Revocation {
                    actor: Actor::System,
                    suspicious: true,
                    cause: Some(audit(TokenOutcome::Reuse).reason(reasons::REFRESH_TOKEN_REUSE)),
                    ..self.revocation(ctx, reasons::REFRESH_TOKEN_REUSE)
                };
                let revoked = self.store.revoke_sessions(&RevokeTarget::Session(session.id), &revocation).await?;
                self.revoked(&revoked, reasons::REFRESH_TOKEN_REUSE).await;
                SessionError::Revoked
            }
            Decision::Inactive(status) => {
                let err = if status == SessionStatus::Expired { SessionError::Expired } else { SessionError::Revoked };
                self.outcomes.token_checked(check, TokenOutcome::Rejected);
                self.refused(audit(TokenOutcome::Rejected).reason(format!("session_{}", status.as_str()))).await?;
                err
            }
            // `Unknown`; acceptances never reach here.
            Decision::Unknown | Decision::Rotate { .. } | Decision::Replay { .. } => {
                self.outcomes.token_checked(check, TokenOutcome::Forged);
                self.refused(audit(TokenOutcome::Forged).reason("unknown_secret")).await?;
                SessionError::InvalidToken
            }
        })
    }

    pub(super) fn issue(&self, session: SessionRecord, refresh_token: String, now: DateTime<Utc>) -> Issued {
        let ttl = self.policy.lifetimes(&session.device.platform).access_ttl.min(session.expires_at - now);
        let (access_token, access_token_expires_at) = self.access.sign(&session, now, ttl);
        let refresh_token_expires_at = session.expires_at;
        Issued { session, access_token, access_token_expires_at, refresh_token, refresh_token_expires_at }
    }
}
