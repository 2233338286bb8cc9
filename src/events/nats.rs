//! The NATS connection shared by the relay and the consumer, the streams they need, and the
//! relay's JetStream sink.

use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::relay::Relay;
use super::sink::{Ack, EventSink, SinkError};
use super::EventsConfig;
use crate::session::OutboxEvent;

/// Why NATS could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error("cannot create or read stream {name}")]
    Stream {
        name: String,
        #[source]
        source: async_nats::jetstream::context::CreateStreamError,
    },
}

/// Connects to `url` (reconnecting by itself afterwards) and returns its JetStream context.
pub async fn connect(url: &str) -> Result<jetstream::Context, NatsError> {
    let client = async_nats::ConnectOptions::new()
        .name("session-service")
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(NatsError::Connect)?;
    Ok(jetstream::new(client))
}

/// The stream `name` holding `subjects`, created with file storage if missing. An existing stream
/// is used as it is (its subjects and limits are the operator's).
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: Vec<String>,
) -> Result<stream::Stream, NatsError> {
    let config = stream::Config { name: name.to_owned(), subjects, ..Default::default() };
    js.get_or_create_stream(config).await.map_err(|source| NatsError::Stream { name: name.to_owned(), source })
}

/// How long JetStream remembers a `Nats-Msg-Id`, dropping a second publish of it: set on the
/// session events stream when the relay creates it. A relay that published but died before
/// marking its rows is replaced (its locks die with its connection) by any relay's next look,
/// within `events.relay_poll_ms`, far inside this window.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Longest one batch waits for its acknowledgements, whatever the client's own request timeout.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The session events stream `config.stream` with the subjects of every event type under the
/// prefix (`<prefix>session.>`), created if missing (file storage, [`DUPLICATE_WINDOW`]). An
/// existing stream is used as it is.
pub async fn ensure_events_stream(js: &jetstream::Context, config: &EventsConfig) -> Result<stream::Stream, NatsError> {
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subject("session.>")],
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    js.get_or_create_stream(wanted).await.map_err(|source| NatsError::Stream { name: config.stream.clone(), source })
}

/// Publishes session events to JetStream: subject `<prefix><event type>`, header `Nats-Msg-Id`
/// = the event id, body = the envelope JSON.
#[derive(Clone)]
pub struct NatsSink {
    js: jetstream::Context,
    config: EventsConfig,
}

impl NatsSink {
    pub fn new(js: jetstream::Context, config: &EventsConfig) -> Self {
        Self { js, config: config.clone() }
    }

    /// Hands one event to the client; the future resolves with the broker's answer.
    async fn send(&self, event: &OutboxEvent) -> Result<PublishAckFuture, SinkError> {
        let body = serde_json::to_vec(&event.payload).map_err(|e| SinkError::Publish(Box::new(e)))?;
        let message = PublishMessage::build().payload(body.into()).message_id(event.id.to_string());
        self.js.send_publish(self.config.subject(&event.subject), message).await.map_err(sink_error)
    }
}

#[async_trait]
impl EventSink for NatsSink {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, events: &[&OutboxEvent]) -> Vec<Result<Ack, SinkError>> {
        let mut sent = Vec::with_capacity(events.len());
        for event in events {
            sent.push(self.send(event).await);
        }
        let acks = futures::future::join_all(sent.into_iter().map(|sent| async move {
            let ack = sent?.await.map_err(sink_error)?;
            Ok(if ack.duplicate { Ack::Duplicate } else { Ack::Stored })
        }));
        match tokio::time::timeout(BATCH_TIMEOUT, acks).await {
            Ok(outcomes) => outcomes,
            Err(_) => events.iter().map(|_| Err(SinkError::Timeout)).collect(),
        }
    }
}

fn sink_error(e: PublishError) -> SinkError {
    match e.kind() {
        PublishErrorKind::TimedOut => SinkError::Timeout,
        _ => SinkError::Publish(Box::new(e)),
    }
}

/// First wait after a failed attempt to create the events stream, doubled up to a minute.
const SETUP_BACKOFF: Duration = Duration::from_millis(500);
const MAX_SETUP_BACKOFF: Duration = Duration::from_secs(60);

/// The relay of a node with `NATS_URL`: creates the events stream if missing (retrying, with
/// backoff, for as long as NATS cannot be reached: the node serves meanwhile and its events
/// wait in the outbox), then relays until `cancel`.
pub async fn relay_to_jetstream(js: jetstream::Context, config: EventsConfig, relay: Relay, cancel: CancellationToken) {
    let mut backoff = SETUP_BACKOFF;
    loop {
        let attempt = tokio::select! {
            () = cancel.cancelled() => return,
            attempt = ensure_events_stream(&js, &config) => attempt,
        };
        match attempt {
            Ok(_) => break,
            Err(e) => {
                let error = &e as &dyn std::error::Error;
                tracing::warn!(error, retry_in = ?backoff, "cannot set up the events stream; events wait in the outbox");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_SETUP_BACKOFF);
    }
    tracing::info!(stream = %config.stream, prefix = %config.subject_prefix, "relaying the outbox to NATS JetStream");
    relay.run(cancel).await;
}
