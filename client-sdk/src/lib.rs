//! Client SDK for the session service, for game clients and gateways.
//!
//! # Layout
//! - [`proto`]: the wire types of the REST API (requests, responses, problem details). Plain serde
//!   types with no async runtime behind them, so anything can share them.
//! - [`rest`]: [`SessionClient`] for the user API (`/session/...`, authenticated by the player's
//!   tokens) and [`ServiceClient`] for the service API (`/sessions/...`, authenticated by a
//!   service key).
//! - [`Error`]: what a call can fail with: an API error with its stable code, a transport
//!   failure, or a body that does not decode.
//!
//! ```no_run
//! # async fn demo(refresh_token: &str) -> Result<(), session_client::Error> {
//! let client = session_client::SessionClient::new("http://127.0.0.1:8080");
//! let tokens = client.refresh(refresh_token).await?;
//! let mine = client.me(&tokens.access_token).await?;
//! println!("{} live sessions", mine.sessions.len());
//! # Ok(())
//! # }
//! ```

mod error;
pub mod proto;
pub mod rest;

pub use error::Error;
pub use rest::{ServiceClient, SessionClient};
