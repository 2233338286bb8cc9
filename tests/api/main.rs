//! HTTP integration tests of the whole service: one binary, one module per area. Every test runs
//! once per store (`sqlite::<name>` and `postgres::<name>`), each on a node of its own with a
//! fresh database and a manual clock (see `helpers`).

#[path = "../common/db.rs"]
mod db;

#[macro_use]
mod helpers;

mod authorization;
mod bodies;
mod calls;
mod cap;
mod checks;
mod create;
mod errors;
mod events;
mod extend;
mod grace;
mod keys;
mod lifetimes;
mod listing;
mod probes;
mod public;
mod race;
mod refresh;
mod revoke;
mod sessions;
mod user;
mod validate;
