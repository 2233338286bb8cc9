//! Session service: the session authority and real-time presence server of a multiplayer game
//! platform.
//!
//! # Layout
//! - [`config`]: typed settings (defaults < TOML file < environment < command line).
//! - [`app`]: builds a node from settings and runs it until shutdown.
//! - [`server`]: the HTTP server under the router: accept loop, timeouts, connection caps sized
//!   to the file limit.
//! - [`census`]: session counts by state for the operator endpoints, refreshed in the background.
//! - [`state`]: the shared state every handler sees.
//! - [`clock`]: injectable time.
//! - [`session`]: the domain: sessions, lifetimes, the refresh state machine, audit and events,
//!   and [`session::SessionService`], which applies them through the store.
//! - [`tokens`]: access tokens (EdDSA JWT, JWKS) and refresh tokens (derivation, hashing).
//! - [`store`]: the `Store` trait and its Postgres and SQLite backends.
//! - [`http`]: the REST API (service API, user API, public endpoints) and its OpenAPI document.
//! - [`ws`]: the real-time gateway (`GET /ws`): handshake, heartbeats, refresh, pushes, draining.
//! - [`registry`]: the live connections this node holds (dashmap) and presence.
//! - [`bus`]: the cross-node bus (Redis or in-process): control messages, the presence
//!   directory, node liveness and the session cache.
//! - [`fleet`]: this node as a member of the fleet of nodes: routing revocations, presence
//!   claims, liveness beats and reconciliation against the store. ("Cluster" elsewhere means a
//!   Redis Cluster only.)
//! - [`metrics`]: the node's Prometheus metrics.

pub mod app;
pub mod bus;
pub mod census;
pub mod clock;
pub mod config;
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
