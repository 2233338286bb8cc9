//! The `user.deleted` consumer on the shared NATS, under names of each test's own: a deleted
//! user's devices are told on whichever node holds them, their sessions end and their personal
//! data leaves the database; a message delivered twice changes nothing more; a poison message
//! goes to the dead-letter subject once; a message read while the store is unreachable is
//! applied once it is back.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use session_service::events::consumer::{REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER};
use session_test_support::nats::{shared_url, unique_prefix};
use session_test_support::redis::{Mode, Proxy};
use uuid::Uuid;

use crate::cluster::{on_redis, redis_url};
use crate::helpers::*;
use crate::ws_client::*;

/// Bound on every wait for the broker or the consumer: generous, for a busy machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// The test's own stream, subjects and durable on the shared NATS, and a client of its own.
struct Broker {
    js: jetstream::Context,
    prefix: String,
}

impl Broker {
    async fn new() -> Broker {
        let client = async_nats::connect(shared_url()).await.expect("the shared NATS answers");
        Broker { js: jetstream::new(client), prefix: unique_prefix() }
    }

    fn subject(&self) -> String {
        format!("{}.user.deleted", self.prefix)
    }

    fn dead_letter_subject(&self) -> String {
        format!("{}.user.deleted.dead_letter", self.prefix)
    }

    fn stream(&self) -> String {
        format!("{}_USERS", self.prefix.to_uppercase())
    }

    fn durable(&self) -> String {
        format!("{}-sessions", self.prefix)
    }

    /// Settings pointing a node at this broker, with every name (the session events' too) the
    /// test's own.
    fn settings(&self) -> impl Fn(&mut Config) + Clone {
        let (subject, dead_letter, stream, durable) =
            (self.subject(), self.dead_letter_subject(), self.stream(), self.durable());
        let prefix = self.prefix.clone();
        move |o: &mut Config| {
            o.events.nats_url = Some(Secret(shared_url()));
            o.events.user_deleted_subject.clone_from(&subject);
            o.events.dead_letter_subject.clone_from(&dead_letter);
            o.events.user_deleted_stream.clone_from(&stream);
            o.events.user_deleted_durable.clone_from(&durable);
            o.events.stream = format!("{}_SESSIONS", prefix.to_uppercase());
            o.events.subject_prefix = format!("{prefix}.");
        }
    }

    /// The durable consumer's state, once the node has created it.
    async fn consumer_info(&self) -> Option<consumer::Info> {
        let stream = self.js.get_stream(self.stream()).await.ok()?;
        stream.consumer_info(self.durable()).await.ok()
    }

    /// Waits until a node has created the stream and the durable consumer.
    async fn ready(&self) {
        let started = Instant::now();
        while self.consumer_info().await.is_none() {
            assert!(started.elapsed() < DEADLINE, "no node created the durable consumer {}", self.durable());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes `body` on the consumed subject, waits for the stream to store it and returns
    /// its stream sequence.
    async fn publish(&self, body: impl Into<Vec<u8>>) -> u64 {
        let ack = self.js.publish(self.subject(), body.into().into()).await.expect("publish");
        ack.await.expect("the stream stores the message").sequence
    }

    /// Waits until the consumer has been delivered every message up to stream sequence `last`
    /// and settled each; returns its state then.
    async fn settled(&self, last: u64) -> consumer::Info {
        let started = Instant::now();
        loop {
            let info = self.consumer_info().await.expect("the consumer exists");
            if info.delivered.stream_sequence >= last && info.num_ack_pending == 0 && info.num_pending == 0 {
                return info;
            }
            assert!(started.elapsed() < DEADLINE, "not settled: {info:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the nodes (so that none creates the stream again), then deletes the test's
    /// streams (the session events' one may not exist).
    async fn clean_up(self, nodes: Vec<TestApp>) {
        for mut node in nodes {
            node.shut_down().await.expect("the node stops");
        }
        self.js.delete_stream(self.stream()).await.expect("deleting the user.deleted stream");
        let _ = self.js.delete_stream(format!("{}_SESSIONS", self.prefix.to_uppercase())).await;
    }
}

/// A CloudEvents `user.deleted` as a user service would publish it.
fn cloud_event(user: &str) -> Vec<u8> {
    let event = json!({
        "specversion": "1.0",
        "id": Uuid::new_v4(),
        "source": "user-service",
        "type": "user.deleted",
        "time": "2026-01-01T00:00:00Z",
        "datacontenttype": "application/json",
        "data": { "user_id": user },
    });
    event.to_string().into_bytes()
}

/// A session body for `user` whose personal data is all `tag`-marked, so a dump of the
/// database shows whether it is still there.
fn marked_session(user: &str, device: &str, ip: &str, tag: &str) -> Value {
    json!({
        "user_id": user,
        "device": { "id": device, "platform": "ios", "name": format!("{tag} phone"), "model": "iPhone15,2",
                    "app_version": "2.3.1", "fingerprint": format!("{tag}-fingerprint") },
        "ip": ip,
        "user_agent": format!("{tag}-agent/1.0"),
        "metadata": { "note": format!("{tag}-metadata") },
    })
}

/// The personal data `marked_session` puts in with `ip` and `tag`.
fn marks(ip: &str, tag: &str) -> [String; 5] {
    let tagged = |what: &str| format!("{tag}{what}");
    [ip.to_owned(), tagged(" phone"), tagged("-fingerprint"), tagged("-agent/1.0"), tagged("-metadata")]
}

/// The sessions, audit and outbox tables as the database holds them.
async fn dump(app: &TestApp) -> String {
    let mut text = String::new();
    for table in ["sessions", "audit_log", "outbox"] {
        text.push_str(&app.stored_rows(table).await);
    }
    text
}

/// `(session id, reason)` of every `session.revoked` in the outbox.
async fn revoked_events(app: &TestApp) -> Vec<(String, String)> {
    let outbox = app.outbox().await;
    let revoked = outbox.iter().filter(|(subject, _)| subject == "session.revoked");
    revoked
        .map(|(_, p)| {
            (p["data"]["session_id"].as_str().unwrap().to_owned(), p["data"]["reason"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The node's count of `user.deleted` messages with `outcome`.
fn handled(app: &TestApp, outcome: &str) -> u64 {
    let text = app.state().metrics.encode(&[]);
    let line = format!("session_user_deleted_messages_total{{outcome=\"{outcome}\"}} ");
    let value = text.lines().find_map(|l| l.strip_prefix(&line)).unwrap_or_else(|| panic!("no {line} in\n{text}"));
    value.parse().expect("a count")
}

async fn stored_status(app: &TestApp, id: Uuid) -> (String, Option<String>) {
    let view = app.get_session(id).await;
    (view["status"].as_str().unwrap().to_owned(), view["revoke_reason"].as_str().map(str::to_owned))
}

async fn a_deleted_user_s_devices_on_two_nodes_are_told_and_their_data_leaves_the_database(backend: Backend) {
    let broker = Broker::new().await;
    let bus = on_redis(&redis_url(), &format!("test-{}", Uuid::new_v4().simple()));
    let events = broker.settings();
    let settings = move |o: &mut Config| {
        bus(o);
        events(o);
    };
    let a = spawn_app_with(backend, settings.clone()).await;
    let b = a.sibling(settings).await;
    let first = a.create_session_with(marked_session("doomed", "device-1", "203.0.113.7", "doomed")).await;
    let second = b.create_session_with(marked_session("doomed", "device-2", "203.0.113.8", "doomed")).await;
    let kept = a.create_session_with(marked_session("survivor", "device-3", "198.51.100.3", "survivor")).await;
    b.refresh_ok(&second.refresh).await;
    let mut on_a = a.ws_live(Encoding::Json, &first).await;
    let mut on_b = b.ws_live(Encoding::Msgpack, &second).await;
    let before = dump(&a).await;
    assert!(marks("203.0.113.7", "doomed").iter().all(|m| before.contains(m.as_str())), "the dump shows the data");

    // The refresh was made from the test's address, which the rows now hold too.
    assert!(before.contains("127.0.0.1"));

    broker.ready().await;
    let sequence = broker.publish(cloud_event("doomed")).await;

    on_a.expect_revoked("user_deleted").await;
    on_b.expect_revoked("user_deleted").await;
    broker.settled(sequence).await;
    for id in [first.id, second.id] {
        assert_eq!(stored_status(&a, id).await, ("revoked".to_owned(), Some("user_deleted".to_owned())));
    }
    let after = dump(&a).await;
    let gone = marks("203.0.113.7", "doomed").into_iter().chain(["203.0.113.8".to_owned(), "127.0.0.1".to_owned()]);
    for mark in gone {
        assert!(!after.contains(mark.as_str()), "{mark} is still in the database:\n{after}");
    }
    assert!(marks("198.51.100.3", "survivor").iter().all(|m| after.contains(m.as_str())), "another user's data stays");
    assert_eq!(stored_status(&a, kept.id).await, ("active".to_owned(), None));
    let mut revoked = revoked_events(&a).await;
    revoked.sort();
    let mut expected = [first.id, second.id].map(|id| (id.to_string(), "user_deleted".to_owned())).to_vec();
    expected.sort();
    assert_eq!(revoked, expected, "one session.revoked per session");
    assert_eq!(handled(&a, "erased") + handled(&b, "erased"), 1);
    broker.clean_up(vec![a, b]).await;
}

async fn the_same_message_twice_plain_then_as_a_cloud_event_revokes_once(backend: Backend) {
    let broker = Broker::new().await;
    let app = spawn_app_with(backend, broker.settings()).await;
    let created = app.create_session("leaving").await;
    let mut device = app.ws_live(Encoding::Json, &created).await;
    broker.ready().await;

    let first = broker.publish(json!({ "user_id": "leaving" }).to_string()).await;
    device.expect_revoked("user_deleted").await;
    broker.settled(first).await;
    let audit = app.audit_trail(created.id).await;
    let second = broker.publish(cloud_event("leaving")).await;
    let info = broker.settled(second).await;

    assert_eq!(info.num_redelivered, 0);
    assert_eq!((handled(&app, "erased"), handled(&app, "unchanged")), (1, 1));
    assert_eq!(revoked_events(&app).await, [(created.id.to_string(), "user_deleted".to_owned())]);
    assert_eq!(app.audit_trail(created.id).await, audit, "nothing more about the session");
    let user_audit = app.reader(Method::GET, "/sessions/user/leaving/audit").send().await.unwrap();
    let user_audit: Value = user_audit.json().await.unwrap();
    let erasures = user_audit["entries"].as_array().map_or(0, |e| e.iter().filter(|r| r["action"] == "erase").count());
    assert_eq!(erasures, 1, "{user_audit}");
    broker.clean_up(vec![app]).await;
}

async fn a_poison_message_is_dead_lettered_with_its_reason_once(backend: Backend) {
    let broker = Broker::new().await;
    let app = spawn_app_with(backend, broker.settings()).await;
    let mut dead_letters = broker.js.client().subscribe(broker.dead_letter_subject()).await.expect("subscribe");
    broker.ready().await;
    let poison: [(&[u8], &str); 3] = [
        (b"{not json", "not_json"),
        (br#"{"specversion":"1.0","type":"user.deleted","data":{}}"#, "no_user_id"),
        (br#"{"user_id":"has a space"}"#, "invalid_user_id"),
    ];
    let mut sequences = Vec::new();
    for (body, _) in poison {
        sequences.push(broker.publish(body).await);
    }

    for (&sequence, (body, reason)) in sequences.iter().zip(poison) {
        let letter = tokio::time::timeout(DEADLINE, dead_letters.next()).await.expect("a dead letter").expect("open");
        assert_eq!(&letter.payload[..], body, "the original body, untouched");
        let headers = letter.headers.expect("headers");
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header(REASON_HEADER).as_deref(), Some(reason));
        assert_eq!(header(SUBJECT_HEADER), Some(broker.subject()));
        assert_eq!(header(SEQUENCE_HEADER), Some(format!("{sequence}")));
    }
    let info = broker.settled(sequences[2]).await;
    assert_eq!((info.num_redelivered, info.delivered.consumer_sequence), (0, 3), "each delivered once: {info:?}");
    assert_eq!(handled(&app, "dead_lettered"), 3);
    let mut stream = broker.js.get_stream(broker.stream()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 6, "the dead letters are kept beside the messages");
    broker.clean_up(vec![app]).await;
}

/// Postgres only: a proxy in front of it plays the outage (SQLite is a file in the node's
/// process, which cannot be made unreachable while the node runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_read_while_the_store_is_unreachable_is_applied_once_it_is_back() {
    let broker = Broker::new().await;
    let postgres: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let admin = session_test_support::db::postgres_admin_url();
    assert!(admin.contains("127.0.0.1:5432") || admin.contains("localhost:5432"), "expected a local Postgres: {admin}");
    let proxy = Proxy::start(postgres).await;
    let events = broker.settings();
    let through = proxy.addr().to_string();
    let app = spawn_app_with(Backend::Postgres, move |o: &mut Config| {
        events(o);
        let direct = o.database.url.as_ref().expect("a database").0.clone();
        let proxied = direct.replacen("127.0.0.1:5432", &through, 1).replacen("localhost:5432", &through, 1);
        o.database.url = Some(Secret(proxied));
    })
    .await;
    let created = app.create_session("unlucky").await;
    broker.ready().await;

    proxy.set(Mode::Refuse);
    let sequence = broker.publish(cloud_event("unlucky")).await;
    let started = Instant::now();
    while handled(&app, "retried") == 0 {
        assert!(started.elapsed() < DEADLINE, "the failed erasure was not nakked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(revoked_events(&app).await.is_empty(), "nothing was applied");
    proxy.set(Mode::Open);

    let info = broker.settled(sequence).await;
    assert!(info.num_redelivered <= 1 && handled(&app, "erased") == 1, "{info:?}");
    assert_eq!(stored_status(&app, created.id).await, ("revoked".to_owned(), Some("user_deleted".to_owned())));
    assert_eq!(revoked_events(&app).await, [(created.id.to_string(), "user_deleted".to_owned())]);
    broker.clean_up(vec![app]).await;
}

both!(
    a_deleted_user_s_devices_on_two_nodes_are_told_and_their_data_leaves_the_database,
    the_same_message_twice_plain_then_as_a_cloud_event_revokes_once,
);

sqlite_only!(a_poison_message_is_dead_lettered_with_its_reason_once);
