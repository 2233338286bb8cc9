//! Multi-node tests: several server processes sharing private Redis instances, killed and
//! restarted for real. `infra` checks the harness itself (private Redis servers and clusters in
//! `session_test_support::redis`, node processes in `session_test_support::node`) so that a
//! failure elsewhere in this binary is about the service, not the scaffolding.

mod config_file;
mod file_limit;
mod fleet;
mod infra;
mod presence;
mod sigkill;
