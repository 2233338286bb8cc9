//! [`Settings`]: a [`Config`] resolved into the parts' own configs, and checked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Config, KeySource, LogFormat, Secret};
use crate::bus::redis::RedisOptions;
use crate::events::EventsConfig;
use crate::fleet::FleetConfig;
use crate::http::auth::ServiceKeySpec;
use crate::server::HttpConfig;
use crate::session::Policy;
use crate::ws::GatewayConfig;

/// Resolved settings: what [`crate::app::build`] starts a node from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub issuer: String,
    pub audience: String,
    pub signing_key: KeySource,
    pub previous_key_files: Vec<PathBuf>,
    pub refresh_key: KeySource,
    pub refresh_pepper: Option<Secret>,
    /// Empty: use (or generate) the embedded default key in the data directory.
    pub service_keys: Vec<ServiceKeySpec>,
    pub policy: Policy,
    pub sweep_interval: Duration,
    pub max_body_bytes: usize,
    /// The HTTP listener's timeouts and connection cap (before the file budget is applied).
    pub http: HttpConfig,
    /// Where the operator endpoints listen, if apart from the public address.
    pub ops_listen: Option<SocketAddr>,
    /// Whether the operator set any connection limit (HTTP, pending or authenticated
    /// WebSockets) to other than its default: lowering one of those to fit the file limit is
    /// worth a warning, lowering a default is not.
    pub limits_configured: bool,
    /// How often the session counts of the operator endpoints are refreshed.
    pub stats_refresh: Duration,
    pub log_format: LogFormat,
    pub gateway: GatewayConfig,
    /// `None`: a single node on the in-process bus.
    pub redis: Option<RedisOptions>,
    pub fleet: FleetConfig,
    pub cluster_liveness_ttl: Duration,
    /// The broker (if any), the relay, the outbox's retention and the revocation feed.
    pub events: EventsConfig,
}

impl Settings {
    /// Reads the command line, the environment and the optional TOML file, and resolves them.
    pub fn load() -> anyhow::Result<Self> {
        Self::resolve(Config::load()?)
    }

    /// Turns `c` into the parts' configs; refuses values no part could run with.
    pub fn resolve(c: Config) -> anyhow::Result<Self> {
        let gateway = c.gateway.resolve(&c.drain);
        let http = c.http.resolve(gateway.drain_timeout);
        let (fleet, cluster_liveness_ttl, redis) = c.fleet.resolve(&c.redis)?;
        let defaults = Config::default();
        let policy = c.sessions.policy(&c.platforms)?;
        let access_ttl = policy.longest_access_ttl().to_std().unwrap_or_default();
        let events = c.events.resolve(access_ttl)?;
        Ok(Self {
            listen: c.http.listen,
            database_url: c.database.url(&c.data_dir),
            database_max_connections: c.database.max_connections,
            signing_key: KeySource::of(c.tokens.signing_key_file.as_ref(), &c.data_dir, "signing-key.pem"),
            refresh_key: KeySource::of(c.tokens.refresh_key_file.as_ref(), &c.data_dir, "refresh-key"),
            issuer: c.tokens.issuer,
            audience: c.tokens.audience,
            previous_key_files: c.tokens.previous_key_files,
            refresh_pepper: c.tokens.refresh_pepper,
            service_keys: c.http.service_keys,
            policy,
            sweep_interval: c.sessions.sweep_interval(),
            max_body_bytes: c.http.max_body_bytes,
            http,
            ops_listen: c.ops.listen,
            limits_configured: c.http.max_connections != defaults.http.max_connections
                || c.gateway.max_pending != defaults.gateway.max_pending
                || c.gateway.max_connections != defaults.gateway.max_connections,
            stats_refresh: c.ops.stats_refresh(),
            log_format: c.log.format,
            data_dir: c.data_dir,
            gateway,
            redis,
            fleet,
            cluster_liveness_ttl,
            events,
        })
    }
}
