//! The service API's bodies: pages of sessions and of the audit trail, the cluster's counts, and
//! the create and refresh requests the SDK sends.

use session_service::http::operator::{ClusterStats, NodeStats, SessionCounts};
use session_service::session::{Actor, AuditRecord};

use super::*;

/// The SDK's view of each server actor (an actor kind added on the server fails to compile here).
fn sdk_actor(actor: &Actor) -> sdk::Actor {
    let (kind, id) = match actor {
        Actor::Service(name) => (sdk::ActorKind::Service, Some(name.clone())),
        Actor::User(user) => (sdk::ActorKind::User, Some(user.clone())),
        Actor::System => (sdk::ActorKind::System, None),
    };
    sdk::Actor { kind, id }
}

#[test]
fn an_audit_page_reads_as_the_sdk_s_with_every_kind_of_actor() {
    let full = AuditRecord {
        id: id(10),
        at: at(3),
        session_id: Some(id(1)),
        user_id: Some("user-42".into()),
        actor: Actor::Service("auth-service".into()),
        action: "refresh".into(),
        outcome: "rejected".into(),
        reason: Some("session_revoked".into()),
        ip: Some("198.51.100.23".into()),
        attempts: 4,
    };
    let user = AuditRecord { id: id(11), actor: Actor::User("user-42".into()), ..full.clone() };
    let bare = AuditRecord::new(at(4), Actor::System, "expire", "ok");
    let page = server::AuditPage { entries: vec![full, user.clone(), bare.clone()], next_before: Some(id(9)) };
    let sdk_entry = |record: &AuditRecord| sdk::AuditEntry {
        id: record.id,
        at: record.at,
        session_id: record.session_id,
        user_id: record.user_id.clone(),
        actor: sdk_actor(&record.actor),
        action: record.action.clone(),
        outcome: record.outcome.clone(),
        reason: record.reason.clone(),
        ip: record.ip.clone(),
        attempts: record.attempts,
    };
    let read = read_as::<sdk::AuditPage>(&page);
    let full = &read.entries[0];
    assert_eq!(
        (full.actor.kind, full.attempts, full.reason.as_deref()),
        (sdk::ActorKind::Service, 4, Some("session_revoked"))
    );
    assert_eq!(
        read,
        sdk::AuditPage { entries: page.entries.iter().map(sdk_entry).collect(), next_before: Some(id(9)) }
    );
    assert_eq!(read.entries[2].actor, sdk::Actor { kind: sdk::ActorKind::System, id: None });
}

#[test]
fn cluster_stats_read_as_the_sdk_s() {
    let node = |n: u8| NodeStats {
        id: format!("node-{n}"),
        addr: format!("10.0.0.{n}:8080"),
        connections: 100 + u64::from(n),
        started_at: at(u32::from(n)),
    };
    let stats = ClusterStats {
        bus: "redis",
        node: "node-1".into(),
        sessions: SessionCounts { active: 12, revoked: 3, expired: 5, counted_at: Some(at(9)) },
        online_sessions: 7,
        nodes: vec![node(1), node(2)],
    };
    let sdk_node = |n: u8| sdk::NodeStats {
        id: format!("node-{n}"),
        addr: format!("10.0.0.{n}:8080"),
        connections: 100 + u64::from(n),
        started_at: at(u32::from(n)),
    };
    let expected = sdk::ClusterStats {
        bus: "redis".into(),
        node: "node-1".into(),
        sessions: sdk::SessionCounts { active: 12, revoked: 3, expired: 5, counted_at: Some(at(9)) },
        online_sessions: 7,
        nodes: vec![sdk_node(1), sdk_node(2)],
    };
    assert_eq!(read_as::<sdk::ClusterStats>(&stats), expected);
}

#[test]
fn the_sdk_s_requests_read_as_the_server_s_strict_ones() {
    let mut device = sdk::Device::new("install-8f2c", "android");
    (device.name, device.model) = (Some("Sam's phone".into()), Some("Pixel 8".into()));
    (device.app_version, device.fingerprint) = (Some("3.4.1".into()), Some("fp-77".into()));
    let mut new = sdk::NewSession::new("user-42", device);
    (new.ip, new.user_agent, new.metadata) = (Some("203.0.113.7".into()), Some("Game/3.4.1".into()), Some(metadata()));
    let sent = serde_json::to_value(&new).expect("serializes");
    let read: server::CreateSessionRequest =
        serde_json::from_value(sent.clone()).unwrap_or_else(|e| panic!("{e}: {sent}"));
    let expected = server::CreateSessionRequest {
        user_id: "user-42".into(),
        device: server::NewDevice {
            id: "install-8f2c".into(),
            platform: "android".into(),
            name: Some("Sam's phone".into()),
            model: Some("Pixel 8".into()),
            app_version: Some("3.4.1".into()),
            fingerprint: Some("fp-77".into()),
        },
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Game/3.4.1".into()),
        metadata: Value::Object(metadata()),
    };
    // The server's request types have no `PartialEq`; their `Debug` shows every field.
    assert_eq!(format!("{read:?}"), format!("{expected:?}"));
    let refresh = sdk::RefreshRequest { refresh_token: "rt1.x.0.y".into() };
    let read: server::RefreshRequest = serde_json::from_value(serde_json::to_value(&refresh).unwrap()).unwrap();
    assert_eq!(read.refresh_token, "rt1.x.0.y");
}

#[test]
fn a_revocation_page_reads_as_the_sdk_s() {
    let view = |n: u128| server::RevocationView {
        session_id: id(n),
        user_id: format!("user-{n}"),
        revoked_at: at(1),
        not_after: at(2),
    };
    let page = server::RevocationPage { revocations: vec![view(1), view(2)], cursor: "MTIuMA".into(), has_more: true };
    let sdk_view = |n: u128| sdk::Revocation {
        session_id: id(n),
        user_id: format!("user-{n}"),
        revoked_at: at(1),
        not_after: at(2),
    };
    assert_eq!(
        read_as::<sdk::RevocationPage>(&page),
        sdk::RevocationPage { revocations: vec![sdk_view(1), sdk_view(2)], cursor: "MTIuMA".into(), has_more: true }
    );
}
