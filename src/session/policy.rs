//! Lifetimes and limits: how long tokens and sessions live, per platform, and how many sessions a
//! user may hold.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

/// Lifetimes for one platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub access_ttl: Duration,
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access_ttl: Duration::minutes(10),
            idle_timeout: Duration::days(30),
            absolute_lifetime: Duration::days(180),
        }
    }
}

impl Lifetimes {
    /// Expiry after a use at `at`: idle timeout from now, never past the absolute expiry.
    pub fn expiry_after_use(&self, at: DateTime<Utc>, absolute: DateTime<Utc>) -> DateTime<Utc> {
        (at + self.idle_timeout).min(absolute)
    }
}

/// The whole policy: defaults, per-platform overrides, grace window, per-user cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default: Lifetimes,
    pub platforms: HashMap<String, Lifetimes>,
    /// How long the previous refresh token is answered with the same successor after a rotation.
    /// Fixed from the rotation, never sliding.
    pub refresh_grace: Duration,
    /// Active sessions a user may hold; creating one more revokes the least recently used.
    pub max_sessions_per_user: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default: Lifetimes::default(),
            platforms: HashMap::new(),
            refresh_grace: Duration::seconds(20),
            max_sessions_per_user: 20,
        }
    }
}

impl Policy {
    pub fn lifetimes(&self, platform: &str) -> &Lifetimes {
        self.platforms.get(platform).unwrap_or(&self.default)
    }

    /// The longest access-token lifetime of any platform: how long a token issued just before a
    /// revocation can still be presented.
    pub fn longest_access_ttl(&self) -> Duration {
        self.platforms.values().map(|l| l.access_ttl).fold(self.default.access_ttl, Duration::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_after_use_never_passes_the_absolute_expiry() {
        let l = Lifetimes::default();
        let now = Utc::now();
        let absolute = now + Duration::days(1);
        assert_eq!(l.expiry_after_use(now, absolute), absolute);
        let far = now + Duration::days(365);
        assert_eq!(l.expiry_after_use(now, far), now + l.idle_timeout);
    }

    #[test]
    fn platform_overrides_fall_back_to_the_default() {
        let mut p = Policy::default();
        let short = Lifetimes { access_ttl: Duration::minutes(1), ..Lifetimes::default() };
        p.platforms.insert("web".into(), short);
        assert_eq!(p.lifetimes("web").access_ttl, Duration::minutes(1));
        assert_eq!(p.lifetimes("ios").access_ttl, Duration::minutes(10));
    }
}
