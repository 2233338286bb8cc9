//! `[gateway]` and `[drain]`: the WebSocket gateway's timings and limits, and how a node lets
//! its clients go at shutdown. Defaults are [`GatewayConfig::default`]'s.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{millis, ms};
use crate::ws::codec::InboundLimits;
use crate::ws::GatewayConfig;

/// `[gateway]`: the WebSocket gateway (`GET /ws`).
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Time allowed for the `auth` frame after the upgrade (else close 4006), in ms.
    #[arg(id = "gateway.auth_timeout_ms", long = "ws-auth-timeout-ms", env = "WS_AUTH_TIMEOUT_MS")]
    pub auth_timeout_ms: u64,
    /// Ping interval announced in `welcome`, in ms.
    #[arg(id = "gateway.heartbeat_interval_ms", long = "ws-heartbeat-interval-ms", env = "WS_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: u64,
    /// Silence after which a connection is closed (4001), in ms; announced in `welcome`.
    #[arg(id = "gateway.heartbeat_timeout_ms", long = "ws-heartbeat-timeout-ms", env = "WS_HEARTBEAT_TIMEOUT_MS")]
    pub heartbeat_timeout_ms: u64,
    /// Lead time of `token_expiring` before the access token expires, in ms.
    #[arg(id = "gateway.token_warning_ms", long = "ws-token-warning-ms", env = "WS_TOKEN_WARNING_MS")]
    pub token_warning_ms: u64,
    /// After the access token expires, time left to refresh it (else 4007), in ms.
    #[arg(id = "gateway.token_grace_ms", long = "ws-token-grace-ms", env = "WS_TOKEN_GRACE_MS")]
    pub token_grace_ms: u64,
    /// Authenticated connections per node (beyond: 4004; lowered to fit the file limit).
    #[arg(id = "gateway.max_connections", long = "ws-max-connections", env = "WS_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Upgraded sockets waiting to authenticate per node; at the cap the oldest is closed (4004).
    /// Lowered to fit the file limit.
    #[arg(id = "gateway.max_pending", long = "ws-max-pending", env = "WS_MAX_PENDING")]
    pub max_pending: usize,
    /// Largest client message, in bytes (beyond: 4005).
    #[arg(id = "gateway.max_message_bytes", long = "ws-max-message-bytes", env = "WS_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: usize,
    /// Sustained client messages per second per connection, bursts twice that (beyond: 4002).
    #[arg(id = "gateway.messages_per_sec", long = "ws-messages-per-sec", env = "WS_MESSAGES_PER_SEC")]
    pub messages_per_sec: u32,
    /// How often `last_seen` is written to the store, in one batch, in ms.
    #[arg(id = "gateway.presence_flush_ms", long = "presence-flush-ms", env = "PRESENCE_FLUSH_MS")]
    pub presence_flush_ms: u64,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        let d = GatewayConfig::default();
        Self {
            auth_timeout_ms: millis(d.auth_timeout),
            heartbeat_interval_ms: millis(d.heartbeat_interval),
            heartbeat_timeout_ms: millis(d.heartbeat_timeout),
            token_warning_ms: millis(d.token_warning),
            token_grace_ms: millis(d.token_grace),
            max_connections: d.max_connections,
            max_pending: d.max_pending,
            max_message_bytes: d.inbound.max_message_bytes,
            // A whole number of messages per second in the part's default.
            messages_per_sec: d.inbound.messages_per_sec as u32,
            presence_flush_ms: millis(d.presence_flush_interval),
        }
    }
}

/// `[drain]`: shutdown, for WebSocket clients and open HTTP requests alike.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSettings {
    /// Longest wait for WebSocket clients to close at shutdown (and then for open HTTP requests),
    /// in ms.
    #[arg(id = "drain.timeout_ms", long = "drain-timeout-ms", env = "DRAIN_TIMEOUT_MS")]
    pub timeout_ms: u64,
    /// Upper bound of the random reconnect delay sent in `draining`, in ms.
    #[arg(id = "drain.jitter_ms", long = "drain-jitter-ms", env = "DRAIN_JITTER_MS")]
    pub jitter_ms: u64,
}

impl Default for DrainSettings {
    fn default() -> Self {
        let d = GatewayConfig::default();
        Self { timeout_ms: millis(d.drain_timeout), jitter_ms: millis(d.drain_jitter) }
    }
}

impl GatewaySettings {
    /// The gateway's config: these settings over the part's own defaults.
    pub(super) fn resolve(&self, drain: &DrainSettings) -> GatewayConfig {
        let d = GatewayConfig::default();
        let rate = f64::from(self.messages_per_sec.max(1));
        GatewayConfig {
            auth_timeout: ms(self.auth_timeout_ms),
            heartbeat_interval: ms(self.heartbeat_interval_ms),
            heartbeat_timeout: ms(self.heartbeat_timeout_ms),
            token_warning: ms(self.token_warning_ms),
            token_grace: ms(self.token_grace_ms),
            max_connections: self.max_connections,
            max_pending: self.max_pending.max(1),
            inbound: InboundLimits {
                max_message_bytes: self.max_message_bytes,
                messages_per_sec: rate,
                burst: rate * 2.0,
                ..d.inbound
            },
            presence_flush_interval: ms(self.presence_flush_ms),
            drain_timeout: ms(drain.timeout_ms),
            // Zero is allowed: every client reconnects at once.
            drain_jitter: Duration::from_millis(drain.jitter_ms),
            ..d
        }
    }
}
