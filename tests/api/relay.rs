//! The outbox relay against a real NATS JetStream (the shared server under names of the test's
//! own, or a private `nats-server` where a test stops it): every event type reaches the stream
//! with its subject, body and `Nats-Msg-Id` as soon as it is committed; two nodes relaying one
//! database publish each event once, in order per session; retention.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use session_service::config::{Config, Secret};
use session_service::events::retention::Retention;
use session_service::events::EventsConfig;
use session_service::session::store::Store;
use session_test_support::nats::{shared_url, unique_prefix};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// How long a test waits for the relay to deliver what it expects.
pub(crate) const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// One message as the stream holds it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub subject: String,
    pub msg_id: String,
    pub body: Value,
}

impl Received {
    /// The session the event is about (the envelope's `subject`).
    pub(crate) fn session(&self) -> &str {
        self.body["subject"].as_str().expect("every envelope has a subject")
    }
}

/// A stream and subject prefix of one test's own, on a NATS server.
pub(crate) struct Broker {
    pub url: String,
    pub prefix: String,
    pub stream: String,
    js: jetstream::Context,
}

impl Broker {
    /// On the shared server.
    pub(crate) async fn shared() -> Broker {
        Broker::on(&shared_url()).await
    }

    /// On the server at `url`.
    pub(crate) async fn on(url: &str) -> Broker {
        let prefix = unique_prefix();
        let stream = format!("{}_EVENTS", prefix.to_uppercase());
        let client = async_nats::connect(url).await.expect("connecting to NATS");
        Broker { url: url.to_owned(), prefix: format!("{prefix}."), stream, js: jetstream::new(client) }
    }

    /// Points a node's `[events]` at this broker, with a poll so long that only a wake on commit
    /// delivers within a test's deadline.
    pub(crate) fn configure(&self, config: &mut Config) {
        config.events.nats_url = Some(Secret(self.url.clone()));
        config.events.stream.clone_from(&self.stream);
        config.events.subject_prefix.clone_from(&self.prefix);
        config.events.relay_poll_ms = 60_000;
    }

    /// The relay's view of this broker.
    pub(crate) fn events_config(&self) -> EventsConfig {
        EventsConfig {
            nats_url: Some(self.url.clone()),
            stream: self.stream.clone(),
            subject_prefix: self.prefix.clone(),
            ..EventsConfig::default()
        }
    }

    /// Every message of the stream, in stream order; panics if the stream cannot be read.
    pub(crate) async fn messages(&self) -> Vec<Received> {
        self.try_messages().await.expect("reading the stream")
    }

    /// Every message of the stream, in stream order; `None` while the stream is missing or the
    /// server cannot be reached (the client is reconnecting).
    async fn try_messages(&self) -> Option<Vec<Received>> {
        let mut stream = self.js.get_stream(&self.stream).await.ok()?;
        let state = stream.info().await.ok()?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Some(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            let m = stream.get_raw_message(seq).await.ok()?;
            let msg_id = m.headers.get("Nats-Msg-Id").map(ToString::to_string).unwrap_or_default();
            let body = serde_json::from_slice(&m.payload).expect("a JSON body");
            out.push(Received { subject: m.subject.to_string(), msg_id, body });
        }
        Some(out)
    }

    /// Polls the stream until it holds at least `n` messages; panics at the deadline.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let got = self.try_messages().await.unwrap_or_default();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages after {DELIVERY_DEADLINE:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes the stream.
    pub(crate) async fn delete(&self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }
}

/// The envelopes in the outbox, oldest first.
pub(crate) async fn outbox_events(app: &TestApp) -> Vec<Value> {
    app.outbox().await.into_iter().map(|(_, payload)| payload).collect()
}

/// Polls until the node's outbox has no undelivered row; panics at the deadline.
pub(crate) async fn wait_all_sent(store: &dyn Store) {
    let deadline = Instant::now() + DELIVERY_DEADLINE;
    loop {
        let pending = store.pending_events(1000).await.expect("pending events");
        if pending.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{} events still undelivered after {DELIVERY_DEADLINE:?}", pending.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stream holds exactly the outbox: one message per event (no duplicate id), each on its
/// type's subject under the prefix, with the stored envelope as body and its id as `Nats-Msg-Id`,
/// and each session's events in the outbox's order.
pub(crate) fn assert_stream_is_the_outbox(broker: &Broker, stream: &[Received], outbox: &[Value]) {
    let ids: HashSet<&str> = stream.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), stream.len(), "a duplicate in the stream");
    assert_eq!(stream.len(), outbox.len(), "stream {stream:#?}");
    let by_id: HashMap<&str, &Value> = outbox.iter().map(|e| (e["id"].as_str().expect("an id"), e)).collect();
    for m in stream {
        let stored = by_id.get(m.msg_id.as_str()).unwrap_or_else(|| panic!("{} is not in the outbox", m.msg_id));
        assert_eq!(&&m.body, stored, "body of {}", m.msg_id);
        assert_eq!(m.subject, format!("{}{}", broker.prefix, stored["type"].as_str().expect("a type")));
    }
    assert_eq!(per_session(stream.iter().map(|m| (m.session(), m.msg_id.as_str()))), outbox_order(outbox));
}

/// Each session's event ids in the outbox's order (creation time, then id).
fn outbox_order(outbox: &[Value]) -> HashMap<&str, Vec<&str>> {
    let mut sorted: Vec<&Value> = outbox.iter().collect();
    sorted.sort_by_key(|e| {
        (e["time"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()), e["id"].as_str())
    });
    per_session(
        sorted.into_iter().map(|e| (e["subject"].as_str().expect("a subject"), e["id"].as_str().expect("an id"))),
    )
}

fn per_session<'a>(events: impl Iterator<Item = (&'a str, &'a str)>) -> HashMap<&'a str, Vec<&'a str>> {
    let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
    for (session, id) in events {
        map.entry(session).or_default().push(id);
    }
    map
}

async fn every_event_type_reaches_the_stream_on_commit_without_waiting_for_the_poll(backend: Backend) {
    let broker = Broker::shared().await;
    let app = spawn_app_with(backend, |c| broker.configure(c)).await;
    let created = app.create_session("user-1").await;
    let first = broker.wait_for(1).await;
    assert_eq!(first[0].subject, format!("{}session.created", broker.prefix));
    let path = format!("/sessions/{}", created.id);
    let update = app.writer(Method::PUT, &path).json(&json!({ "device_name": "TV" })).send().await.unwrap();
    assert_eq!(update.status(), StatusCode::OK);
    let extend = app.writer(Method::POST, &format!("{path}/extend")).send().await.unwrap();
    assert_eq!(extend.status(), StatusCode::OK);
    app.refresh_ok(&created.refresh).await;
    // A reuse past the grace period: `session.revoked` and `session.suspicious` in one commit.
    app.advance(chrono::Duration::seconds(20));
    app.refresh(&created.refresh).await;
    let other = app.create_session("user-2").await;
    app.advance(chrono::Duration::days(31));
    assert_eq!(app.state().sessions.sweep_expired().await.unwrap(), 1);
    let outbox = outbox_events(&app).await;
    let types: HashSet<&str> = outbox.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let every = ["created", "updated", "extended", "refreshed", "revoked", "suspicious", "expired"];
    assert_eq!(
        types,
        every.iter().map(|t| format!("session.{t}")).collect::<HashSet<_>>().iter().map(String::as_str).collect()
    );
    let stream = broker.wait_for(outbox.len()).await;
    assert_stream_is_the_outbox(&broker, &stream, &outbox);
    assert!(stream.iter().any(|m| m.session() == other.id.to_string()));
    broker.delete().await;
}

/// Creates a session of `user` through `app`, refreshes it three times and revokes it.
async fn five_changes(app: &TestApp, user: usize) {
    let created = app.create_session(&format!("user-{user}")).await;
    let mut refresh = created.refresh;
    for _ in 0..3 {
        refresh = app.refresh_ok(&refresh).await.refresh;
    }
    let revoke = app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.expect("request");
    assert_eq!(revoke.status(), StatusCode::OK);
}

/// Postgres only: SQLite is one node's store (its claims exclude each other within a process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_relaying_one_postgres_database_publish_each_event_once_in_order_per_session() {
    let broker = Broker::shared().await;
    let a = spawn_app_with(Backend::Postgres, |c| broker.configure(c)).await;
    let b = a.sibling(|c| broker.configure(c)).await;
    let work = (0..24).map(|i| five_changes(if i % 2 == 0 { &a } else { &b }, i));
    futures::future::join_all(work).await;
    let outbox = outbox_events(&a).await;
    assert_eq!(outbox.len(), 24 * 5);
    broker.wait_for(outbox.len()).await;
    let store = session_service::store::connect(a.database_url()).await.expect("the store");
    wait_all_sent(store.as_ref()).await;
    assert_stream_is_the_outbox(&broker, &broker.messages().await, &outbox);
    // Once each: the broker would drop a second publish by its id, so the nodes' own counts tell
    // whether anything was published twice.
    let counts = (relayed(&a) + relayed(&b), duplicates(&a) + duplicates(&b));
    assert_eq!(counts, (outbox.len() as u64, 0));
    broker.delete().await;
}

/// `session_events_relayed_total` of a node.
pub(crate) fn relayed(app: &TestApp) -> u64 {
    metric(app, "session_events_relayed_total")
}

/// `session_events_relay_duplicates_total` of a node.
pub(crate) fn duplicates(app: &TestApp) -> u64 {
    metric(app, "session_events_relay_duplicates_total")
}

fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.state().metrics.encode(&[]);
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).expect("a number") as u64
}

async fn without_a_broker_old_rows_are_pruned_whatever_their_state(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_session("user-1").await;
    app.advance(chrono::Duration::hours(23));
    app.create_session("user-2").await;
    let store = session_service::store::connect(app.database_url()).await.expect("the store");
    let config = EventsConfig::default();
    let retention = Retention::new(store.clone(), app.clock.clone(), app.state().metrics.clone(), &config);
    assert_eq!(retention.sweep(&CancellationToken::new()).await.unwrap(), 0, "nothing is 24 h old yet");
    app.advance(chrono::Duration::hours(2));
    assert_eq!(retention.sweep(&CancellationToken::new()).await.unwrap(), 1);
    let left = outbox_events(&app).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["data"]["user_id"], "user-2");
}

async fn with_a_broker_only_delivered_rows_are_pruned(backend: Backend) {
    // No node relays here: the test delivers one row itself, so the other stays undelivered.
    let app = spawn_app(backend).await;
    app.create_session("user-1").await;
    app.create_session("user-2").await;
    let store = session_service::store::connect(app.database_url()).await.expect("the store");
    let pending = store.pending_events(10).await.unwrap();
    store.mark_events_sent(&[pending[0].id], app.now()).await.unwrap();
    let config = EventsConfig { nats_url: Some("nats://127.0.0.1:1".into()), ..EventsConfig::default() };
    let retention = Retention::new(store.clone(), app.clock.clone(), app.state().metrics.clone(), &config);
    app.advance(chrono::Duration::days(30));
    assert_eq!(retention.sweep(&CancellationToken::new()).await.unwrap(), 1);
    let left = store.pending_events(10).await.unwrap();
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), vec![pending[1].id], "the undelivered row stays");
    assert_eq!(outbox_events(&app).await.len(), 1);
}

both!(
    every_event_type_reaches_the_stream_on_commit_without_waiting_for_the_poll,
    without_a_broker_old_rows_are_pruned_whatever_their_state,
    with_a_broker_only_delivered_rows_are_pruned,
);
