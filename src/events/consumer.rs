//! The `user.deleted` consumer: a durable JetStream pull consumer, shared by every node (each
//! message is handled by one of them), that ends a deleted user's sessions and erases their
//! personal data through [`SessionService::erase_user`].
//!
//! The contract, message by message:
//! - The body is a CloudEvents JSON envelope (it has `specversion`) whose `data.user_id` names
//!   the user, or a plain `{"user_id": "..."}`.
//! - It is acked only after the erasure has committed. Redelivery is harmless: erasing an
//!   erased user changes nothing and emits nothing.
//! - A body that cannot be understood (not JSON, no string user id, a user id the service's
//!   validation refuses) is republished unchanged to the dead-letter subject, with headers
//!   saying why ([`REASON_HEADER`], [`DETAIL_HEADER`]) and where it came from, then acked: it
//!   is never redelivered.
//! - A failed erasure (the store unreachable) is nakked with a delay growing from 1 s to 60 s,
//!   so it comes back once the store does. At its [`MAX_DELIVER`]th delivery a failure
//!   dead-letters it (reason `retries_exhausted`) rather than let the broker drop it silently.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::nats::{connect, ensure_stream, NatsError};
use super::EventsConfig;
use crate::metrics::{Metrics, UserDeletedOutcome};
use crate::session::validate;
use crate::session::{Actor, RequestContext, SessionError, SessionService};

/// How long the broker waits for an ack before delivering the message again (to any node). An
/// erasure is one short transaction; the store gives up on a connection after 5 s.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Deliveries of one message before it is dead-lettered: with the retry delays capped at a
/// minute, about an hour and a half of store outage.
pub const MAX_DELIVER: i64 = 100;
/// Header of a dead letter: why it was refused, one of [`DeadLetterReason`]'s codes.
pub const REASON_HEADER: &str = "Session-Dead-Letter-Reason";
/// Header of a dead letter: the refusal in words (the parser's or the validation's message).
pub const DETAIL_HEADER: &str = "Session-Dead-Letter-Detail";
/// Header of a dead letter: the subject the message was read from.
pub const SUBJECT_HEADER: &str = "Session-Dead-Letter-Subject";
/// Header of a dead letter: its stream sequence in the `user.deleted` stream.
pub const SEQUENCE_HEADER: &str = "Session-Dead-Letter-Sequence";

/// Delay before the first redelivery of a failed message; doubled at each further one.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest delay between two deliveries of a failed message.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Messages one pull asks for: few, so that none waits past [`ACK_WAIT`] behind the others.
const BATCH: usize = 4;
/// How long one pull request waits at the broker for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// Idle heartbeat of a pull: a lost connection is noticed within two of them.
const PULL_HEARTBEAT: Duration = Duration::from_secs(5);
/// Longest wait before trying again to bind the consumer after a failure.
const REBIND_MAX: Duration = Duration::from_secs(30);
/// Longest detail header kept, in bytes.
const MAX_DETAIL: usize = 256;

/// Why a message was dead-lettered; the code is the [`REASON_HEADER`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The body is not JSON.
    NotJson,
    /// The JSON names no user: no string `user_id` (plain) or `data.user_id` (CloudEvents).
    NoUserId,
    /// The user id is one the service refuses (empty, too long, spaces or control characters).
    InvalidUserId,
    /// Every allowed delivery failed (the store stayed unreachable).
    RetriesExhausted,
}

impl DeadLetterReason {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::NoUserId => "no_user_id",
            Self::InvalidUserId => "invalid_user_id",
            Self::RetriesExhausted => "retries_exhausted",
        }
    }
}

/// A message this service will not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: DeadLetterReason,
    pub detail: String,
}

impl Refusal {
    fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// The user a `user.deleted` body names: `data.user_id` of a CloudEvents envelope (a body with
/// `specversion`), else the top-level `user_id`, validated as the service validates user ids.
pub fn user_id_of(body: &[u8]) -> Result<String, Refusal> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Refusal::new(DeadLetterReason::NotJson, e.to_string()))?;
    let (user_id, field) = if value.get("specversion").is_some() {
        (value.get("data").and_then(|data| data.get("user_id")), "data.user_id")
    } else {
        (value.get("user_id"), "user_id")
    };
    let Some(Value::String(user_id)) = user_id else {
        return Err(Refusal::new(DeadLetterReason::NoUserId, format!("no string {field}")));
    };
    validate::user_id(user_id).map_err(|e| Refusal::new(DeadLetterReason::InvalidUserId, e.to_string()))?;
    Ok(user_id.clone())
}

/// Why the consumer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("cannot create or read the durable consumer {name}")]
    Durable {
        name: String,
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// The consumer would read its own dead letters back, forever.
    #[error("the dead-letter subject {dead_letter} is within the consumed subject {subject}")]
    DeadLetterLoop { subject: String, dead_letter: String },
}

/// What to do with one message once it has been looked at.
enum Verdict {
    Ack(UserDeletedOutcome),
    DeadLetter(Refusal),
    Retry(Duration),
}

/// How a consuming pass ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Cancelled,
    Failed,
}

/// The consumer of one node.
pub struct UserDeletedConsumer {
    js: jetstream::Context,
    config: EventsConfig,
    sessions: Arc<SessionService>,
    metrics: Arc<Metrics>,
}

/// Connects to `url` and consumes `user.deleted` until `cancel` fires (a message being handled
/// is finished first). Failures to reach the broker are logged and retried with a backoff.
pub async fn run(
    url: String,
    config: EventsConfig,
    sessions: Arc<SessionService>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let js = tokio::select! {
        () = cancel.cancelled() => return,
        js = connect(&url) => js,
    };
    match js {
        Ok(js) => UserDeletedConsumer { js, config, sessions, metrics }.run(cancel).await,
        Err(e) => tracing::error!(error = &e as &dyn std::error::Error, "user.deleted consumer not started"),
    }
}

impl UserDeletedConsumer {
    /// A consumer over an existing JetStream connection.
    pub fn new(
        js: jetstream::Context,
        config: EventsConfig,
        sessions: Arc<SessionService>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { js, config, sessions, metrics }
    }

    /// Binds the durable consumer and handles its messages until `cancel` fires; binds again,
    /// after a growing pause, whenever binding or pulling fails.
    pub async fn run(self, cancel: CancellationToken) {
        let mut pause = RETRY_FIRST;
        loop {
            let bound = tokio::select! {
                () = cancel.cancelled() => return,
                bound = self.bind() => bound,
            };
            match bound {
                Ok(consumer) => {
                    pause = RETRY_FIRST;
                    if self.consume(&consumer, &cancel).await == Ended::Cancelled {
                        return;
                    }
                }
                Err(e @ ConsumerError::DeadLetterLoop { .. }) => {
                    tracing::error!(error = &e as &dyn std::error::Error, "user.deleted consumer not started");
                    return;
                }
                Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "binding the user.deleted consumer"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(REBIND_MAX),
            }
        }
    }

    /// The stream (created if missing, holding the consumed and the dead-letter subjects) and
    /// the durable consumer on it (created if missing; an existing one is used as it is).
    pub async fn bind(&self) -> Result<PullConsumer, ConsumerError> {
        let c = &self.config;
        if covers(&c.user_deleted_subject, &c.dead_letter_subject) {
            let (subject, dead_letter) = (c.user_deleted_subject.clone(), c.dead_letter_subject.clone());
            return Err(ConsumerError::DeadLetterLoop { subject, dead_letter });
        }
        let subjects = vec![c.user_deleted_subject.clone(), c.dead_letter_subject.clone()];
        let stream = ensure_stream(&self.js, &c.user_deleted_stream, subjects).await?;
        let config = pull::Config {
            durable_name: Some(c.user_deleted_durable.clone()),
            description: Some("session-service: ends deleted users' sessions".to_owned()),
            filter_subject: c.user_deleted_subject.clone(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_deliver: MAX_DELIVER,
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&c.user_deleted_durable, config)
            .await
            .map_err(|source| ConsumerError::Durable { name: c.user_deleted_durable.clone(), source })
    }

    /// Pulls and handles messages one at a time until cancelled or the pull fails.
    async fn consume(&self, consumer: &PullConsumer, cancel: &CancellationToken) -> Ended {
        let max_deliver = consumer.cached_info().config.max_deliver;
        let pulled =
            consumer.stream().max_messages_per_batch(BATCH).expires(PULL_EXPIRES).heartbeat(PULL_HEARTBEAT).messages();
        let mut messages = match pulled.await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = &e as &dyn std::error::Error, "pulling user.deleted");
                return Ended::Failed;
            }
        };
        tracing::info!(durable = %self.config.user_deleted_durable, "consuming user.deleted");
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return Ended::Cancelled,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => self.handle(&message, max_deliver).await,
                Some(Err(e)) => {
                    tracing::warn!(error = &e as &dyn std::error::Error, "pulling user.deleted");
                    return Ended::Failed;
                }
                None => return Ended::Failed,
            }
        }
    }

    /// Applies one message, counts what became of it, then settles it with the broker.
    async fn handle(&self, message: &jetstream::Message, max_deliver: i64) {
        let delivered = message.info().map_or(1, |info| info.delivered);
        let (outcome, settle) = match self.judge(&message.payload, delivered, max_deliver).await {
            Verdict::Ack(outcome) => (outcome, AckKind::Ack),
            Verdict::Retry(after) => (UserDeletedOutcome::Retried, AckKind::Nak(Some(after))),
            Verdict::DeadLetter(refusal) => match self.dead_letter(message, &refusal).await {
                Ok(()) => {
                    let (reason, detail) = (refusal.reason.as_str(), &refusal.detail);
                    tracing::warn!(reason, %detail, "user.deleted dead-lettered");
                    (UserDeletedOutcome::DeadLettered, AckKind::Ack)
                }
                Err(e) => {
                    tracing::warn!(error = &*e as &dyn std::error::Error, "dead-lettering user.deleted failed");
                    (UserDeletedOutcome::Retried, AckKind::Nak(Some(retry_delay(delivered))))
                }
            },
        };
        self.metrics.user_deleted(outcome);
        ack(message, settle).await;
    }

    /// What to do with a body delivered for the `delivered`th time.
    async fn judge(&self, body: &[u8], delivered: i64, max_deliver: i64) -> Verdict {
        let user_id = match user_id_of(body) {
            Ok(user_id) => user_id,
            Err(refusal) => return Verdict::DeadLetter(refusal),
        };
        let ctx = RequestContext { actor: Actor::System, ip: None, user_agent: None };
        match self.sessions.erase_user(&user_id, &ctx).await {
            Ok(erased) if erased.is_empty() => Verdict::Ack(UserDeletedOutcome::Unchanged),
            Ok(_) => Verdict::Ack(UserDeletedOutcome::Erased),
            Err(SessionError::Invalid(e)) => {
                Verdict::DeadLetter(Refusal::new(DeadLetterReason::InvalidUserId, e.to_string()))
            }
            Err(e) if max_deliver > 0 && delivered >= max_deliver => {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    delivered,
                    "user.deleted failed at its last delivery"
                );
                Verdict::DeadLetter(Refusal::new(DeadLetterReason::RetriesExhausted, e.to_string()))
            }
            Err(e) => {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    delivered,
                    "user.deleted failed; redelivered later"
                );
                Verdict::Retry(retry_delay(delivered))
            }
        }
    }

    /// Republishes `message` to the dead-letter subject with why, and waits for the stream to
    /// store it (a stream of the operator's that lacks the subject gets it as a plain publish).
    async fn dead_letter(&self, message: &jetstream::Message, refusal: &Refusal) -> Result<(), async_nats::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(REASON_HEADER, refusal.reason.as_str());
        headers.insert(DETAIL_HEADER, header_text(&refusal.detail).as_str());
        headers.insert(SUBJECT_HEADER, message.subject.as_str());
        if let Ok(info) = message.info() {
            let sequence = info.stream_sequence.to_string();
            // The broker drops a second dead letter of the same message (an ack that was lost).
            headers.insert("Nats-Msg-Id", format!("dead-letter:{}:{sequence}", info.stream).as_str());
            headers.insert(SEQUENCE_HEADER, sequence.as_str());
        }
        let subject = self.config.dead_letter_subject.clone();
        let published = self.js.publish_with_headers(subject.clone(), headers.clone(), message.payload.clone()).await?;
        match published.await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                tracing::warn!(%subject, "no stream holds the dead-letter subject; published without one");
                let client = self.js.client();
                client.publish_with_headers(subject, headers, message.payload.clone()).await?;
                client.flush().await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Settles a message; a failure only means the broker redelivers it after [`ACK_WAIT`], which
/// is harmless.
async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        tracing::warn!(error = &*e as &dyn std::error::Error, "settling a user.deleted message failed");
    }
}

/// Delay before the next delivery of a message that failed at its `delivered`th: 1 s, doubled
/// each time, at most [`RETRY_MAX`].
fn retry_delay(delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    RETRY_FIRST.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// `text` as a header value: control characters (line breaks among them) become spaces, and it
/// is cut to [`MAX_DETAIL`] bytes on a character boundary.
fn header_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL));
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > MAX_DETAIL {
            break;
        }
        out.push(c);
    }
    out
}

/// Whether the NATS subject pattern `pattern` (`*` one token, a final `>` the rest) matches
/// `subject`.
fn covers(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (token, Some(s)) if token == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &str) -> DeadLetterReason {
        user_id_of(body.as_bytes()).expect_err("refused").reason
    }

    #[test]
    fn the_user_is_read_from_a_cloudevents_envelope_or_a_plain_body() {
        let envelope =
            r#"{"specversion":"1.0","id":"1","type":"user.deleted","source":"users","data":{"user_id":"u-1"}}"#;
        assert_eq!(user_id_of(envelope.as_bytes()), Ok("u-1".to_owned()));
        assert_eq!(user_id_of(br#"{"user_id":"u-2","extra":true}"#), Ok("u-2".to_owned()));
    }

    #[test]
    fn a_body_that_names_no_valid_user_is_refused_with_its_reason() {
        assert_eq!(reason("not json"), DeadLetterReason::NotJson);
        assert_eq!(reason(""), DeadLetterReason::NotJson);
        assert_eq!(reason(r#"{"id":"u-1"}"#), DeadLetterReason::NoUserId);
        assert_eq!(reason(r#"{"user_id":42}"#), DeadLetterReason::NoUserId);
        assert_eq!(reason(r#"["u-1"]"#), DeadLetterReason::NoUserId);
        // An envelope's user is in `data`, never at the top.
        assert_eq!(reason(r#"{"specversion":"1.0","user_id":"u-1","data":{}}"#), DeadLetterReason::NoUserId);
        assert_eq!(reason(r#"{"user_id":""}"#), DeadLetterReason::InvalidUserId);
        assert_eq!(reason(r#"{"user_id":"has space"}"#), DeadLetterReason::InvalidUserId);
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(reason(&long), DeadLetterReason::InvalidUserId);
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_a_minute() {
        let delays: Vec<u64> = [1, 2, 3, 6, 7, 100, i64::MAX].map(|n| retry_delay(n).as_secs()).to_vec();
        assert_eq!(delays, [1, 2, 4, 32, 60, 60, 60]);
        assert_eq!(retry_delay(0), RETRY_FIRST);
    }

    #[test]
    fn a_header_value_has_no_line_break_and_a_bounded_length() {
        assert_eq!(header_text("line 1\r\nline 2"), "line 1  line 2");
        let cut = header_text(&"é".repeat(200));
        assert!(cut.len() <= MAX_DETAIL && cut.chars().all(|c| c == 'é'), "{cut}");
    }

    #[test]
    fn a_subject_pattern_covers_what_nats_would_deliver_to_it() {
        assert!(covers("user.deleted", "user.deleted"));
        assert!(!covers("user.deleted", "user.deleted.dead_letter"));
        assert!(covers("user.>", "user.deleted.dead_letter"));
        assert!(covers("user.deleted.*", "user.deleted.dead_letter"));
        assert!(!covers("user.*", "user.deleted.dead_letter"));
        assert!(!covers("user.deleted.dead_letter", "user.deleted"));
    }
}
