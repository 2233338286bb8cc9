//! Client SDK for the session service, for game clients and gateways. It owns the service's wire
//! contract: the server builds on the same [`proto`] types and [`proto::ws::codec`].
//!
//! # Layout
//! - [`proto`]: the wire types of the REST API (requests, responses, problem details). Plain serde
//!   types with no async runtime behind them, so anything can share them.
//! - [`proto::ws`]: the WebSocket frames, and [`proto::ws::codec`], the one reader and writer of
//!   both subprotocols (`session.v1.msgpack`, `session.v1.json`).
//! - `rest` (feature `http`, on by default): `SessionClient` for the user API (`/session/...`,
//!   authenticated by the player's tokens) and `ServiceClient` for the service API
//!   (`/sessions/...`, authenticated by a service key), over reqwest.
//! - `verifier` (feature `verifier`): `Verifier`, local verification of access tokens (JWKS
//!   fetched and cached, EdDSA, `iss`, `aud`, `exp`) refusing revoked sessions, heard of through
//!   the revocation feed (`GET /revocations`) or NATS.
//! - `Error` (feature `http`): what a call can fail with: an API error with its stable code, a
//!   transport failure, or a body that does not decode.
//!
//! # Features
//! - `http` (default): the REST clients and their error type; brings in reqwest. Turn it off
//!   (`default-features = false`) to take only the wire types and the codec, as the server does.
//! - `verifier` (off by default): the `Verifier`; brings in jsonwebtoken, tokio and async-nats.
//!
//! ```no_run
//! # #[cfg(feature = "http")]
//! # async fn demo(refresh_token: &str) -> Result<(), session_client::Error> {
//! let client = session_client::SessionClient::new("http://127.0.0.1:8080");
//! let tokens = client.refresh(refresh_token).await?;
//! let mine = client.me(&tokens.access_token).await?;
//! println!("{} live sessions", mine.sessions.len());
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "http")]
mod error;
pub mod proto;
#[cfg(feature = "http")]
pub mod rest;
#[cfg(feature = "verifier")]
pub mod verifier;

#[cfg(feature = "http")]
pub use error::Error;
#[cfg(feature = "http")]
pub use rest::{ServiceClient, SessionClient};
