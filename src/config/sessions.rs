//! `[sessions]` and `[platforms.<name>]`: session lifetimes, the refresh grace window, the
//! per-user cap and the expiry sweep. Defaults are [`Policy::default`]'s.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::session::{Lifetimes, Policy};

/// `[sessions]`: how long sessions and their tokens live.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Access-token lifetime, in seconds.
    #[arg(id = "sessions.access_ttl_secs", long = "access-ttl-secs", env = "ACCESS_TTL_SECS")]
    pub access_ttl_secs: i64,
    /// A session dies after this long unused, in seconds.
    #[arg(id = "sessions.idle_timeout_secs", long = "idle-timeout-secs", env = "IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: i64,
    /// Hard cap on a session's life from its creation, in seconds.
    #[arg(id = "sessions.absolute_lifetime_secs", long = "absolute-lifetime-secs", env = "ABSOLUTE_LIFETIME_SECS")]
    pub absolute_lifetime_secs: i64,
    /// The previous refresh token replays the same successor within this window after a
    /// rotation, in seconds.
    #[arg(id = "sessions.refresh_grace_secs", long = "refresh-grace-secs", env = "REFRESH_GRACE_SECS")]
    pub refresh_grace_secs: i64,
    /// Active sessions per user; creating one more revokes the least recently used.
    #[arg(id = "sessions.max_sessions_per_user", long = "max-sessions-per-user", env = "MAX_SESSIONS_PER_USER")]
    pub max_sessions_per_user: u32,
    /// How often expired sessions are marked (and their connections get `revoked`), in seconds.
    #[arg(id = "sessions.sweep_interval_secs", long = "sweep-interval-secs", env = "SWEEP_INTERVAL_SECS")]
    pub sweep_interval_secs: u64,
}

/// How often expired sessions are swept unless configured.
const SWEEP_INTERVAL_SECS: u64 = 60;

impl Default for SessionSettings {
    fn default() -> Self {
        let d = Policy::default();
        Self {
            access_ttl_secs: d.default.access_ttl.num_seconds(),
            idle_timeout_secs: d.default.idle_timeout.num_seconds(),
            absolute_lifetime_secs: d.default.absolute_lifetime.num_seconds(),
            refresh_grace_secs: d.refresh_grace.num_seconds(),
            max_sessions_per_user: d.max_sessions_per_user,
            sweep_interval_secs: SWEEP_INTERVAL_SECS,
        }
    }
}

/// Lifetimes overriding `[sessions]` for one platform (TOML `[platforms.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformLifetimes {
    pub access_ttl_secs: Option<i64>,
    pub idle_timeout_secs: Option<i64>,
    pub absolute_lifetime_secs: Option<i64>,
}

/// A positive number of seconds, or the error naming the setting.
fn secs(value: i64, name: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(value > 0, "{name} must be a positive number of seconds");
    Ok(Duration::seconds(value))
}

impl SessionSettings {
    /// The session policy, with `platforms` over these lifetimes; refuses non-positive ones.
    pub(super) fn policy(&self, platforms: &HashMap<String, PlatformLifetimes>) -> anyhow::Result<Policy> {
        let default = Lifetimes {
            access_ttl: secs(self.access_ttl_secs, "sessions.access_ttl_secs")?,
            idle_timeout: secs(self.idle_timeout_secs, "sessions.idle_timeout_secs")?,
            absolute_lifetime: secs(self.absolute_lifetime_secs, "sessions.absolute_lifetime_secs")?,
        };
        let platforms = platforms
            .iter()
            .map(|(name, p)| {
                let or = |v: Option<i64>, base: Duration, key: &str| {
                    v.map_or(Ok(base), |s| secs(s, &format!("platforms.{name}.{key}")))
                };
                let lifetimes = Lifetimes {
                    access_ttl: or(p.access_ttl_secs, default.access_ttl, "access_ttl_secs")?,
                    idle_timeout: or(p.idle_timeout_secs, default.idle_timeout, "idle_timeout_secs")?,
                    absolute_lifetime: or(
                        p.absolute_lifetime_secs,
                        default.absolute_lifetime,
                        "absolute_lifetime_secs",
                    )?,
                };
                Ok((name.clone(), lifetimes))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Policy {
            default,
            platforms,
            refresh_grace: secs(self.refresh_grace_secs, "sessions.refresh_grace_secs")?,
            max_sessions_per_user: self.max_sessions_per_user.max(1),
        })
    }

    /// How often the expiry sweep runs (at least once a second).
    pub(super) fn sweep_interval(&self) -> StdDuration {
        StdDuration::from_secs(self.sweep_interval_secs.max(1))
    }
}
