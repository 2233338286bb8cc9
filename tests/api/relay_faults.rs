//! The relay's faults, with real brokers: a private `nats-server` stopped while the node keeps
//! changing sessions (events wait in the outbox and all arrive, in order per session, once it is
//! back), and a relay that published but died before marking its rows (the next relay publishes
//! them again; the broker drops the copies by `Nats-Msg-Id`).

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use session_service::events::nats::{connect, ensure_events_stream, NatsSink};
use session_service::events::relay::{Relay, RelayOptions};
use session_service::metrics::Metrics;
use session_test_support::nats::NatsServer;
use tokio::sync::Notify;

use crate::helpers::*;
use crate::relay::{assert_stream_is_the_outbox, outbox_events, wait_all_sent, Broker};

async fn events_wait_in_the_outbox_while_nats_is_down_and_all_arrive_in_order_when_it_is_back(backend: Backend) {
    let mut server = NatsServer::start().await;
    let broker = Broker::on(&server.url()).await;
    let app = spawn_app_with(backend, |c| broker.configure(c)).await;
    let store = session_service::store::connect(app.database_url()).await.expect("the store");
    let mut sessions = Vec::new();
    for user in 0..8 {
        sessions.push(app.create_session(&format!("user-{user}")).await);
    }
    broker.wait_for(sessions.len()).await;
    wait_all_sent(store.as_ref()).await;

    server.stop().await;
    for (i, s) in sessions.iter_mut().enumerate() {
        for _ in 0..3 {
            s.refresh = app.refresh_ok(&s.refresh).await.refresh;
        }
        if i % 2 == 0 {
            let revoke = app.writer(Method::POST, &format!("/sessions/{}/revoke", s.id)).send().await.unwrap();
            assert_eq!(revoke.status(), StatusCode::OK);
        }
    }
    let waiting = store.pending_events(1000).await.unwrap();
    assert_eq!(waiting.len(), 8 * 3 + 4, "every change made while NATS was down waits in the outbox");

    server.restart().await;
    let outbox = outbox_events(&app).await;
    let stream = broker.wait_for(outbox.len()).await;
    wait_all_sent(store.as_ref()).await;
    assert_stream_is_the_outbox(&broker, &stream, &outbox);
    broker.delete().await;
}

async fn a_relay_killed_between_publish_and_mark_leaves_no_duplicate_once_another_relays(backend: Backend) {
    // The node has no broker, so only this test's relays publish.
    let app = spawn_app(backend).await;
    for user in 0..5 {
        let created = app.create_session(&format!("user-{user}")).await;
        app.refresh_ok(&created.refresh).await;
    }
    let store = session_service::store::connect(app.database_url()).await.expect("the store");
    let broker = Broker::shared().await;
    let config = broker.events_config();
    let js = connect(&broker.url).await.expect("connecting to NATS");
    ensure_events_stream(&js, &config).await.expect("the stream");
    let relay = |metrics: &Arc<Metrics>| {
        let options = RelayOptions { batch: 256, poll: Duration::from_secs(60), wake: Arc::new(Notify::new()) };
        let sink = Arc::new(NatsSink::new(js.clone(), &config));
        Relay::new(store.clone(), sink, app.clock.clone(), metrics.clone(), options)
    };
    let metrics = Arc::new(Metrics::new());

    // The first relay claims and publishes, then dies before marking: its claim goes unmarked.
    let claim = store.claim_events(256).await.expect("a claim");
    assert_eq!(claim.events.len(), 10);
    let delivery = relay(&metrics).publish(&claim.events).await;
    assert_eq!(delivery.acked.len(), 10);
    drop(claim);
    assert_eq!(store.pending_events(100).await.unwrap().len(), 10, "nothing was marked");
    assert_eq!(broker.messages().await.len(), 10);

    // The next relay publishes all ten again; the broker keeps one copy of each.
    let report = relay(&metrics).pass().await.expect("a pass");
    assert_eq!((report.claimed, report.published, report.duplicates, report.failed), (10, 10, 10, 0));
    assert!(store.pending_events(100).await.unwrap().is_empty());
    let outbox = outbox_events(&app).await;
    assert_stream_is_the_outbox(&broker, &broker.messages().await, &outbox);
    broker.delete().await;
}

both!(
    events_wait_in_the_outbox_while_nats_is_down_and_all_arrive_in_order_when_it_is_back,
    a_relay_killed_between_publish_and_mark_leaves_no_duplicate_once_another_relays,
);
