//! The stories of the bus contract. Waiting is on events (an inbox channel) or, for liveness,
//! polling with a deadline: a TTL lapsing is the event and it has no notification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use session_service::bus::{Control, Inbox, Liveness, NodeInfo};
use session_service::session::cache::Cached;
use session_service::session::{Device, SessionRecord, SessionStatus};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{Node, Nodes, TTL};

/// An inbox that forwards to a channel the story reads.
struct Recorder(mpsc::UnboundedSender<Control>);

impl Inbox for Recorder {
    fn deliver(&self, msg: Control) {
        let _ = self.0.send(msg);
    }
    fn resubscribed(&self) {}
}

async fn subscribed(node: &Arc<dyn Node>) -> mpsc::UnboundedReceiver<Control> {
    let (tx, rx) = mpsc::unbounded_channel();
    node.subscribe(Arc::new(Recorder(tx))).await.expect("subscribe");
    rx
}

pub(crate) fn info(node: &Arc<dyn Node>) -> NodeInfo {
    NodeInfo { id: node.node_id().to_owned(), addr: "127.0.0.1:1".into(), connections: 3, started_at_ms: 1 }
}

fn revoke(session: Uuid) -> Control {
    Control::Revoke { sessions: vec![session], reason: "logout".into(), sent_ms: 1 }
}

pub(crate) fn record(user: &str) -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        id: Uuid::new_v4(),
        user_id: user.to_owned(),
        status: SessionStatus::Active,
        device: Device {
            id: "d1".into(),
            platform: "pc".into(),
            name: Some("rig".into()),
            model: None,
            app_version: None,
            fingerprint: None,
        },
        first_ip: Some("10.0.0.1".into()),
        last_ip: None,
        user_agent: None,
        metadata: serde_json::json!({"region": "eu"}),
        created_at: now,
        last_used_at: now,
        expires_at: now + chrono::Duration::hours(1),
        absolute_expires_at: now + chrono::Duration::days(1),
        revoked_at: None,
        revoke_reason: None,
        last_seen_at: None,
        refresh_generation: 3,
        refresh_hash: vec![1, 2, 3],
        prev_refresh_hash: Some(vec![4, 5]),
        rotated_at: Some(now),
    }
}

/// Polls `check` until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn a_message_reaches_the_addressed_node_only(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    let mut inbox_a = subscribed(&a).await;
    let mut inbox_b = subscribed(&b).await;
    let session = Uuid::new_v4();
    a.send(b.node_id(), &revoke(session)).await.expect("send");
    let got = tokio::time::timeout(Duration::from_secs(5), inbox_b.recv()).await.expect("delivered in time");
    assert_eq!(got, Some(revoke(session)));
    // Anything for A would have been published before B's message arrived: one more round trip
    // to A's own channel proves A's queue held nothing else.
    let marker = Control::Replace { session, since_ms: 7, sent_ms: 1 };
    b.send(a.node_id(), &marker).await.expect("send");
    let got = tokio::time::timeout(Duration::from_secs(5), inbox_a.recv()).await.expect("delivered in time");
    assert_eq!(got, Some(marker), "A must receive only what was sent to A");
}

pub(crate) async fn a_claim_returns_the_previous_node_and_a_release_removes_only_its_own_entry(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    a.heartbeat(&info(&a)).await.unwrap();
    b.heartbeat(&info(&b)).await.unwrap();
    let session = Uuid::new_v4();
    assert_eq!(a.claim("u1", session).await.unwrap(), None);
    assert_eq!(a.claim("u1", session).await.unwrap(), None, "a node re-claiming is not a move");
    assert_eq!(b.claim("u1", session).await.unwrap(), Some(a.node_id().to_owned()));
    a.release("u1", session).await.unwrap();
    let located = b.locate("u1").await.unwrap();
    assert_eq!(located.get(&session).map(String::as_str), Some(b.node_id()), "A's release must not remove B's claim");
    b.release("u1", session).await.unwrap();
    assert!(a.locate("u1").await.unwrap().is_empty());
}

pub(crate) async fn a_node_that_stops_beating_drops_out_of_presence_and_the_node_list(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    a.heartbeat(&info(&a)).await.unwrap();
    b.heartbeat(&info(&b)).await.unwrap();
    let (on_a, on_b) = (Uuid::new_v4(), Uuid::new_v4());
    a.claim("u2", on_a).await.unwrap();
    b.claim("u2", on_b).await.unwrap();
    assert_eq!(b.locate("u2").await.unwrap().len(), 2);
    // A stops beating (as if killed); B keeps going.
    let started = Instant::now();
    eventually(TTL * 4, "A's session reads offline", || async {
        b.heartbeat(&info(&b)).await.unwrap();
        !b.locate("u2").await.unwrap().contains_key(&on_a)
    })
    .await;
    assert!(!b.route("u2").await.unwrap().contains_key(&on_a), "revocations are not routed to a dead node");
    assert!(started.elapsed() >= TTL / 2, "A lapsed before its TTL: {:?}", started.elapsed());
    let located = b.locate("u2").await.unwrap();
    assert_eq!(located.get(&on_b).map(String::as_str), Some(b.node_id()), "B's own session stays online");
    let ids: Vec<String> = b.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![b.node_id().to_owned()]);
}

pub(crate) async fn a_revocation_route_names_the_node_of_each_live_connection(nodes: Nodes) {
    let (a, b, c) = (nodes.node().await, nodes.node().await, nodes.node().await);
    // C starts after A's last beat: A must ask about it rather than drop its claim as a ghost.
    a.heartbeat(&info(&a)).await.unwrap();
    b.heartbeat(&info(&b)).await.unwrap();
    let (on_b, on_c) = (Uuid::new_v4(), Uuid::new_v4());
    b.claim("u9", on_b).await.unwrap();
    c.heartbeat(&info(&c)).await.unwrap();
    c.claim("u9", on_c).await.unwrap();
    let routed = a.route("u9").await.unwrap();
    assert_eq!(routed, a.locate("u9").await.unwrap(), "both lanes give the same answer");
    assert_eq!(routed.get(&on_b).map(String::as_str), Some(b.node_id()));
    assert_eq!(routed.get(&on_c).map(String::as_str), Some(c.node_id()));
    assert_eq!(routed.len(), 2);
    assert!(a.route("nobody").await.unwrap().is_empty());
}

pub(crate) async fn the_first_beat_recreates_and_later_beats_renew(nodes: Nodes) {
    let a = nodes.node().await;
    assert_eq!(a.heartbeat(&info(&a)).await.unwrap(), Liveness::Recreated);
    assert_eq!(a.heartbeat(&info(&a)).await.unwrap(), Liveness::Renewed);
    let listed = a.nodes().await.unwrap();
    assert_eq!(listed, vec![info(&a)], "the node list carries what the node published");
}

pub(crate) async fn claim_all_announces_every_connection_again(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    a.heartbeat(&info(&a)).await.unwrap();
    b.heartbeat(&info(&b)).await.unwrap();
    let entries: Vec<(Arc<str>, Uuid)> =
        (0..300).map(|i| (Arc::from(format!("bulk-{}", i % 7)), Uuid::new_v4())).collect();
    a.claim_all(&entries).await.unwrap();
    for (user, session) in entries.iter().step_by(37) {
        let located = b.locate(user).await.unwrap();
        assert_eq!(located.get(session).map(String::as_str), Some(a.node_id()));
    }
    let total: usize = futures::future::join_all((0..7).map(|i| {
        let b = b.clone();
        async move { b.locate(&format!("bulk-{i}")).await.unwrap().len() }
    }))
    .await
    .into_iter()
    .sum();
    assert_eq!(total, 300);
}

pub(crate) async fn the_cache_serves_a_filled_record_until_it_is_invalidated(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    let rec = record("u3");
    let Cached::Miss(ticket) = a.get(rec.id).await.unwrap() else { panic!("an unknown session is a miss") };
    a.fill(ticket, &rec).await.unwrap();
    match b.get(rec.id).await.unwrap() {
        Cached::Hit(got) => assert_eq!(*got, rec, "another node reads the same record back"),
        Cached::Miss(_) => panic!("a filled record must be served"),
    }
    b.invalidate(&[rec.id]).await.unwrap();
    assert!(matches!(a.get(rec.id).await.unwrap(), Cached::Miss(_)), "an invalidated record must not be served");
}

pub(crate) async fn a_fill_racing_an_invalidation_is_refused(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    let rec = record("u4");
    // A misses and reads the store; meanwhile B commits a change and invalidates.
    let Cached::Miss(ticket) = a.get(rec.id).await.unwrap() else { panic!("miss expected") };
    b.invalidate(&[rec.id]).await.unwrap();
    a.fill(ticket, &rec).await.unwrap();
    let Cached::Miss(fresh) = a.get(rec.id).await.unwrap() else { panic!("the stale fill must have been refused") };
    assert_ne!(fresh.version, ticket.version, "the counter moved");
    let mut newer = rec.clone();
    newer.status = SessionStatus::Revoked;
    a.fill(fresh, &newer).await.unwrap();
    match b.get(rec.id).await.unwrap() {
        Cached::Hit(got) => assert_eq!(got.status, SessionStatus::Revoked),
        Cached::Miss(_) => panic!("a fill with the current counter must succeed"),
    }
}

pub(crate) async fn leaving_removes_the_node_at_once(nodes: Nodes) {
    let (a, b) = (nodes.node().await, nodes.node().await);
    a.heartbeat(&info(&a)).await.unwrap();
    b.heartbeat(&info(&b)).await.unwrap();
    assert_eq!(b.nodes().await.unwrap().len(), 2);
    a.leave().await.unwrap();
    let ids: Vec<String> = b.nodes().await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![b.node_id().to_owned()]);
}
