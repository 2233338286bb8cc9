//! Multi-node tests: several server processes sharing private Redis instances, killed and
//! restarted for real. `infra` checks the harness itself (private Redis servers and clusters in
//! `common/redis.rs`, node processes in `common/node.rs`) so that a failure elsewhere in this
//! binary is about the service, not the scaffolding.

#[path = "../common/db.rs"]
mod db;
#[path = "../common/node.rs"]
mod node;
#[path = "../common/redis.rs"]
mod redis;

mod config_file;
mod file_limit;
mod fleet;
mod infra;
mod presence;
mod sigkill;
