//! Session service: the session authority and real-time presence server of a multiplayer game
//! platform.
//!
//! # Layout
//! The domain sits in the middle and owns its ports; adapters and transports point at it, never
//! the other way (docs/architecture.md; `tests/architecture.rs` checks it).
//!
//! The domain:
//! - [`session`]: sessions, lifetimes, the refresh state machine, the audit/event trail rules,
//!   and [`session::SessionService`], which applies them. It owns its ports:
//!   [`session::store::Store`], [`session::cache::SessionCache`],
//!   [`session::RevocationListener`] and [`session::outcomes::Outcomes`].
//! - [`tokens`]: access tokens (EdDSA JWT, JWKS) and refresh tokens (derivation, hashing).
//! - [`clock`]: injectable time.
//!
//! Adapters (implement the domain's ports):
//! - [`store`]: the Postgres and SQLite implementations of `Store`, and `connect`.
//! - [`bus`]: the cross-node bus (Redis or in-process): control messages, the presence
//!   directory, node liveness, and the implementations of `SessionCache`.
//! - [`fleet`]: this node as a member of the fleet of nodes: implements `RevocationListener`
//!   (routing revocations to whichever node holds the connection), presence claims, liveness
//!   beats and reconciliation against the store. ("Cluster" elsewhere means a Redis Cluster.)
//! - [`metrics`]: the node's Prometheus metrics; implements `Outcomes`.
//! - [`events`]: the broker side (NATS JetStream): the outbox relay, the outbox's retention and
//!   the `user.deleted` consumer.
//!
//! Transports (call the service):
//! - [`http`]: the REST API (service API, user API, public and operator endpoints), its error
//!   type, the session views, the `GET /ws` route and the OpenAPI document.
//! - [`ws`]: the real-time gateway: one task per connection (handshake, heartbeats, refresh,
//!   pushes, draining) and its close reasons.
//! - [`registry`]: the live connections this node holds (dashmap).
//! - [`server`]: the HTTP server under the router: accept loop, timeouts, connection caps sized
//!   to the file limit.
//!
//! Assembly:
//! - [`config`]: typed settings in sections (defaults < TOML file < environment < command line),
//!   and the README's settings table generated from them.
//! - [`app`]: builds a node from settings (the one place that knows every part) and runs it.
//! - [`state`]: the shared state every handler sees.
//! - [`census`]: session counts by state for the operator endpoints, refreshed in the background.

pub mod app;
pub mod bus;
pub mod census;
pub mod clock;
pub mod config;
pub mod events;
pub mod fleet;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
pub mod tokens;
pub mod ws;
