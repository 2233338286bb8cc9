//! Ending a deleted user: every session revoked and the user's personal data erased, in one
//! transaction, with the after-commit steps of any revocation.

use uuid::Uuid;

use super::{RequestContext, SessionService};
use crate::session::store::{Erased, Erasure, Revocation};
use crate::session::{reasons, validate, SessionError};

impl SessionService {
    /// Revokes every effectively active session of `user_id` (reason `user_deleted`) and erases
    /// the user's personal data from all their session rows, audit entries and kept outbox
    /// events (see [`Erasure`] for what goes and what stays), with one `session.revoked` per
    /// revoked session and one `erase` audit record, all in one transaction. After the commit,
    /// the erased sessions are dropped from the cache and the devices of the revoked ones are
    /// told, on whichever node holds them.
    ///
    /// Idempotent: erasing the same user again revokes nothing, emits nothing and succeeds with
    /// an empty [`Erased`]. The request's IP is not recorded: the erasure writes no new personal
    /// data about the user.
    pub async fn erase_user(&self, user_id: &str, ctx: &RequestContext) -> Result<Erased, SessionError> {
        validate::user_id(user_id)?;
        let revocation = Revocation { ip: None, ..self.revocation(ctx, reasons::USER_DELETED) };
        let erasure = Erasure { user_id: user_id.to_owned(), revocation };
        let erased = self.store.erase_user(&erasure).await?;
        let unrevoked: Vec<Uuid> =
            erased.sessions.iter().copied().filter(|id| erased.revoked.iter().all(|r| r.id != *id)).collect();
        self.changed(&unrevoked).await;
        self.revoked(&erased.revoked, reasons::USER_DELETED).await;
        if !erased.is_empty() {
            tracing::info!(
                user.id = %user_id,
                revoked = erased.revoked.len(),
                sessions = erased.sessions.len(),
                audit_entries = erased.audit_entries,
                events = erased.events,
                "user erased"
            );
        }
        Ok(erased)
    }
}
