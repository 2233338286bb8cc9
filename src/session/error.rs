//! [`SessionError`]: why a domain operation was refused, with the stable code every transport
//! renders (REST in its problem body, the WebSocket gateway in its `error` frame).

use chrono::{DateTime, Utc};

use super::store::StoreError;
use super::validate::Invalid;
use super::{SessionRecord, SessionStatus};
use crate::tokens::TokenError;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("no such session")]
    NotFound,
    /// Malformed, forged or unknown token. Deliberately says nothing more.
    #[error("missing or invalid token")]
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

impl SessionError {
    /// Why `session`, not active at `now`, is refused: expired or revoked.
    pub fn inactive(session: &SessionRecord, now: DateTime<Utc>) -> Self {
        match session.effective_status(now) {
            SessionStatus::Expired => Self::Expired,
            _ => Self::Revoked,
        }
    }

    /// The stable machine-readable code (listed in docs/errors.md).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_field",
            Self::NotFound => "session_not_found",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::Revoked => "session_revoked",
            Self::Expired => "session_expired",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(_) => "internal_error",
        }
    }

    /// What a caller may be told: the error's own text, except for a store failure, whose cause
    /// is for the logs only.
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(StoreError::Unavailable(_)) => "the store is unavailable".to_owned(),
            Self::Store(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<TokenError> for SessionError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid => Self::InvalidToken,
            TokenError::Expired => Self::TokenExpired,
        }
    }
}
