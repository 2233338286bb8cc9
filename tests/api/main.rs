//! HTTP and WebSocket integration tests of the whole service: one binary, one module per area.
//! Every test runs once per store (`sqlite::<name>` and `postgres::<name>`), or on SQLite only
//! where the store plays no part (`sqlite_only::<name>`), each on a node of its own with a fresh
//! database and a manual clock (see `helpers`; `ws_client` is the WebSocket client). `wire` and
//! `ws_unit` start no node: they hold the server's REST bodies to the SDK's types, and drive one
//! connection's state machine over channels.

#[macro_use]
mod helpers;

mod audit_flood;
mod authorization;
mod bodies;
mod calls;
mod cap;
mod checks;
mod cluster;
mod cluster_faults;
mod contract;
mod contract_check;
mod contract_gen;
mod create;
mod data_dir;
mod errors;
mod events;
mod extend;
mod grace;
mod keys;
mod lifetimes;
mod listing;
mod metrics;
mod probes;
mod public;
mod race;
mod refresh;
mod relay;
mod relay_faults;
mod revocations;
mod revoke;
mod sdk;
mod sessions;
mod slow_clients;
mod store_values;
mod user;
mod user_deleted;
mod validate;
mod wire;
mod ws;
mod ws_client;
mod ws_drain;
mod ws_lifecycle;
mod ws_limits;
mod ws_push;
mod ws_refresh;
mod ws_unit;
