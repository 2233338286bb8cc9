//! [`Outcomes`]: the port through which the domain reports what happened (a refresh rotated, a
//! validation found a reused token, the cache missed), so that counting stays at the edge. The
//! node's metrics implement it; the domain never sees a metrics type.

/// Which refresh-token operation a [`TokenOutcome`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenCheck {
    /// `POST /session/refresh` or a socket `refresh`: rotates.
    Refresh,
    /// `POST /session/validate`: checks without rotating.
    Validate,
}

impl TokenCheck {
    /// The audit action of the check.
    pub fn action(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Validate => "validate",
        }
    }
}

/// How a refresh or validation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenOutcome {
    /// The current token got its successor (refresh only).
    Rotate,
    /// The previous token, within the grace window, got the current successor again (refresh
    /// only).
    Replay,
    /// The token is good (validate only).
    Ok,
    /// An older genuine token: the session is revoked.
    Reuse,
    /// Malformed, unknown session or unknown secret.
    Forged,
    /// A genuine token of a revoked or expired session.
    Rejected,
}

impl TokenOutcome {
    pub const ALL: [Self; 6] = [Self::Rotate, Self::Replay, Self::Ok, Self::Reuse, Self::Forged, Self::Rejected];

    /// The stable name: the audit outcome and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Replay => "replay",
            Self::Ok => "ok",
            Self::Reuse => "reuse",
            Self::Forged => "forged",
            Self::Rejected => "rejected",
        }
    }
}

/// A session-cache operation that failed (the domain then falls back to the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheOp {
    Get,
    Fill,
    Invalidate,
}

/// Told what the domain did. Implementations must be cheap and never block: they are called on
/// the hot paths.
pub trait Outcomes: Send + Sync + 'static {
    /// A refresh or validation ended with `outcome`.
    fn token_checked(&self, check: TokenCheck, outcome: TokenOutcome);
    /// A session was read through the cache: found there (`hit`) or read from the store.
    fn cache_read(&self, hit: bool);
    /// A cache operation failed.
    fn cache_failed(&self, op: CacheOp);
    /// A refusal of a real session found no room among the aggregated audit windows.
    fn refusal_untracked(&self);
}
