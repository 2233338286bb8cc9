//! `[http]` and `[ops]`: the public HTTP listener (its limits, timeouts and the service keys it
//! accepts) and the operator endpoints. Timeouts and the connection cap default to
//! [`HttpConfig::default`]'s.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{millis, ms};
use crate::http::auth::ServiceKeySpec;
use crate::server::HttpConfig;

/// `[http]`: the public listener.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to serve on.
    #[arg(id = "http.listen", long = "listen", env = "LISTEN")]
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    #[arg(id = "http.max_body_bytes", long = "max-body-bytes", env = "MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Open HTTP connections per node before any upgrade; at the cap the oldest idle one is
    /// closed for a new one (lowered to fit the file limit).
    #[arg(id = "http.max_connections", long = "http-max-connections", env = "HTTP_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Time to send a request's headers, from the accept or the end of the previous response
    /// (the keep-alive idle timeout), in ms.
    #[arg(id = "http.header_timeout_ms", long = "http-header-timeout-ms", env = "HTTP_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: u64,
    /// Time to send a whole request body, and the longest pause in one (then 408), in ms.
    #[arg(id = "http.body_timeout_ms", long = "http-body-timeout-ms", env = "HTTP_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: u64,
    /// Service keys, `name:sha256hex:sessions:read+sessions:write` (`;`-separated in the
    /// environment). Unset: one key with both scopes, generated into `<data_dir>/service-key`.
    #[arg(id = "http.service_keys", long = "service-keys", env = "SERVICE_KEYS", value_delimiter = ';')]
    pub service_keys: Vec<ServiceKeySpec>,
}

/// Largest accepted request body unless configured: far above any valid request.
const MAX_BODY_BYTES: usize = 64 * 1024;

impl Default for HttpSettings {
    fn default() -> Self {
        let d = HttpConfig::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: MAX_BODY_BYTES,
            max_connections: d.max_connections,
            header_timeout_ms: millis(d.header_timeout),
            body_timeout_ms: millis(d.body_timeout),
            service_keys: Vec::new(),
        }
    }
}

impl HttpSettings {
    /// The public listener's config; shutdown waits for its requests as long as for WebSockets.
    pub(super) fn resolve(&self, drain_timeout: Duration) -> HttpConfig {
        HttpConfig {
            header_timeout: ms(self.header_timeout_ms),
            body_timeout: ms(self.body_timeout_ms),
            max_connections: self.max_connections.max(1),
            drain_timeout,
            ..HttpConfig::default()
        }
    }
}

/// `[ops]`: the operator endpoints.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// Address of `/metrics`, `/cluster/stats`, `/healthz` and `/readyz`; when set, the first two
    /// leave the public address. Unset: all on the public address.
    #[arg(id = "ops.listen", long = "ops-listen", env = "OPS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// How often the session counts of `/metrics` and `/cluster/stats` are refreshed from the
    /// store, in ms.
    #[arg(id = "ops.stats_refresh_ms", long = "stats-refresh-ms", env = "STATS_REFRESH_MS")]
    pub stats_refresh_ms: u64,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self { listen: None, stats_refresh_ms: 15_000 }
    }
}

impl OpsSettings {
    /// The census period: at least 100 ms, so a typo cannot turn it into a store hammer.
    pub(super) fn stats_refresh(&self) -> Duration {
        Duration::from_millis(self.stats_refresh_ms.max(100))
    }
}
