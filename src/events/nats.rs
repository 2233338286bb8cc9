//! The NATS connection shared by the relay and the consumer, and the streams they need.

use async_nats::jetstream::{self, stream};

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
