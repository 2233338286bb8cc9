//! The audit trail: one append-only record per operation, with who did it, to which session, from
//! where, and how it ended. Records are built here so every store writes the same thing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who performed an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// A caller of the service API, named by its configured key name.
    Service(String),
    /// A player, by user id.
    User(String),
    /// The service itself (sweeps, limits, reuse detection).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Service(_) => "service",
            Self::User(_) => "user",
            Self::System => "system",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Service(id) | Self::User(id) => Some(id),
            Self::System => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<String>) -> Self {
        match (kind, id) {
            ("service", Some(id)) => Self::Service(id),
            ("user", Some(id)) => Self::User(id),
            _ => Self::System,
        }
    }
}

/// One audit entry. `action` is what was attempted (`create`, `refresh`, `validate`, `extend`,
/// `update`, `revoke`, `delete`, `expire`, `erase`); `outcome` how it ended (`ok`, `rotate`, `replay`,
/// `reuse`, `forged`, `rejected`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub session_id: Option<Uuid>,
    pub user_id: Option<String>,
    pub actor: Actor,
    pub action: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// How many attempts the entry stands for: 1, except for the aggregate of repeated refusals
    /// of one session within a minute (see `session::refusals`).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

impl AuditRecord {
    pub fn new(at: DateTime<Utc>, actor: Actor, action: &str, outcome: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            session_id: None,
            user_id: None,
            actor,
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            reason: None,
            ip: None,
            attempts: 1,
        }
    }

    #[must_use]
    pub fn session(mut self, session_id: Uuid, user_id: &str) -> Self {
        self.session_id = Some(session_id);
        self.user_id = Some(user_id.to_owned());
        self
    }

    /// About a user as a whole, not one of their sessions.
    #[must_use]
    pub fn user(mut self, user_id: &str) -> Self {
        self.user_id = Some(user_id.to_owned());
        self
    }

    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    #[must_use]
    pub fn ip(mut self, ip: Option<&str>) -> Self {
        self.ip = ip.map(str::to_owned);
        self
    }
}
