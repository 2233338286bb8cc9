//! Wire types only the service API answers with: pages of a user's sessions, pages of the audit
//! trail, and the cluster's counts. Read as leniently as the rest of [`proto`](super).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Session;

/// A page of a user's sessions (`GET /sessions/user/{user_id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPage {
    /// The sessions of this page.
    pub sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of audit entries, newest first (`GET /sessions/{id}/audit`,
/// `GET /sessions/user/{user_id}/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The entries of this page.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Uuid>,
}

/// One operation on a session, as the audit trail recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Entry id (UUIDv7, so ids sort by time).
    pub id: Uuid,
    /// When the operation happened.
    pub at: DateTime<Utc>,
    /// The session operated on; `null` for an operation that named no known session.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// The session's user, when known; `null` otherwise.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Who performed it.
    pub actor: Actor,
    /// What was attempted: `create`, `refresh`, `validate`, `extend`, `update`, `revoke`,
    /// `delete`, `expire`.
    pub action: String,
    /// How it ended: `ok`, `rotate`, `replay`, `reuse`, `forged`, `rejected`.
    pub outcome: String,
    /// Why, for revocations and refusals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The caller's IP address, when it was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// How many attempts the entry stands for: 1, except for the aggregate of one session's
    /// repeated refusals within a minute.
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// Who performed an audited operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// What kind of caller it was.
    pub kind: ActorKind,
    /// The service key's name for [`ActorKind::Service`], the user id for [`ActorKind::User`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The kinds of [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A caller of the service API.
    Service,
    /// A player.
    User,
    /// The service itself: sweeps, limits, reuse detection.
    System,
    /// A kind this SDK version does not know yet.
    #[serde(other)]
    Unknown,
}

/// Answer of `GET /cluster/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    /// `redis`, or `memory` for a single node.
    pub bus: String,
    /// The node that answered.
    pub node: String,
    /// Sessions per stored state.
    pub sessions: SessionCounts,
    /// Sessions with a live connection, summed over the live nodes.
    pub online_sessions: u64,
    /// The live nodes.
    pub nodes: Vec<NodeStats>,
}

/// Sessions per stored state, as of the answering node's last count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// Stored as active (some may have lapsed since the last expiry sweep).
    pub active: i64,
    /// Revoked.
    pub revoked: i64,
    /// Expired.
    pub expired: i64,
    /// When the store was counted; absent until the node's first count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<DateTime<Utc>>,
}

/// A live node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Node id.
    pub id: String,
    /// The address the node listens on, as it sees it.
    pub addr: String,
    /// Live WebSocket connections on the node, as of its last heartbeat.
    pub connections: u64,
    /// When the node started.
    pub started_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn audit_entries_decode_with_their_actor_and_unknown_kinds_are_kept_apart() {
        let v = json!({
            "id": "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f",
            "at": "2026-11-23T08:15:42Z",
            "session_id": null,
            "user_id": null,
            "actor": { "kind": "system" },
            "action": "refresh",
            "outcome": "forged"
        });
        let e: AuditEntry = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(e.actor, Actor { kind: ActorKind::System, id: None });
        assert_eq!((e.session_id, e.attempts), (None, 1), "attempts defaults to one");
        let mut robot = v;
        robot["actor"] = json!({ "kind": "robot", "id": "r2" });
        let e: AuditEntry = serde_json::from_value(robot).unwrap();
        assert_eq!(e.actor, Actor { kind: ActorKind::Unknown, id: Some("r2".into()) });
    }

    #[test]
    fn a_node_that_has_not_counted_yet_has_no_count_time() {
        let v = json!({ "active": 3, "revoked": 1, "expired": 0 });
        let c: SessionCounts = serde_json::from_value(v.clone()).unwrap();
        assert_eq!((c.active, c.counted_at), (3, None));
        assert_eq!(serde_json::to_value(c).unwrap(), v);
    }
}

/// A page of the revocation feed (`GET /revocations`): sessions revoked since a cursor, in
/// commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevocationPage {
    /// The revocations of this page.
    pub revocations: Vec<Revocation>,
    /// Pass as `after` for the next read; the one given when nothing was new.
    pub cursor: String,
    /// More revocations follow already: read again at once.
    #[serde(default)]
    pub has_more: bool,
}

/// A revoked session in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    /// The revoked session.
    pub session_id: Uuid,
    /// Its user.
    pub user_id: String,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// After this time no access token of the session is valid: the entry can be forgotten.
    pub not_after: DateTime<Utc>,
}
