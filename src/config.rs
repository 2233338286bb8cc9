//! Typed settings. Precedence: defaults in code < optional TOML file (`--config` /
//! `SESSION_CONFIG`) < environment < command-line flags. Secrets never appear in `Debug` output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use chrono::Duration;
use clap::Parser;
use serde::Deserialize;

use crate::http::auth::ServiceKeySpec;
use crate::session::{Lifetimes, Policy};

/// A string that must not be logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Lifetimes overriding the defaults for one platform (TOML `[platforms.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformLifetimes {
    pub access_ttl_secs: Option<i64>,
    pub idle_timeout_secs: Option<i64>,
    pub absolute_lifetime_secs: Option<i64>,
}

/// Every setting as optional; one layer of configuration (file, or environment + flags).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database and generated keys [default: ./data].
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` or `sqlite:...` [default: sqlite under the data directory].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Postgres connections per node [default: 10].
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// `iss` of access tokens [default: session-service].
    #[arg(long, env = "JWT_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` of access tokens [default: game-platform].
    #[arg(long, env = "JWT_AUDIENCE")]
    pub audience: Option<String>,
    /// Ed25519 private key (PKCS#8 PEM) signing access tokens [default: generated under the
    /// data directory on first start].
    #[arg(long, env = "SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Earlier signing keys (PEM, public or private) still accepted and published in the JWKS.
    #[arg(long, env = "PREVIOUS_KEY_FILES", value_delimiter = ',')]
    pub previous_key_files: Option<Vec<PathBuf>>,
    /// 32-byte key (base64url in a file) deriving refresh-token successors [default: generated
    /// under the data directory]. Every node must share it.
    #[arg(long, env = "REFRESH_KEY_FILE")]
    pub refresh_key_file: Option<PathBuf>,
    /// Optional pepper mixed into stored refresh-token hashes.
    #[arg(long, env = "REFRESH_PEPPER", hide_env_values = true)]
    pub refresh_pepper: Option<Secret>,
    /// Service keys, `;`-separated `name:sha256hex:scope[+scope]` [default: one generated key
    /// with both scopes, written to the data directory].
    #[arg(long, env = "SERVICE_KEYS", value_delimiter = ';')]
    pub service_keys: Option<Vec<ServiceKeySpec>>,
    #[arg(long, env = "ACCESS_TTL_SECS")]
    pub access_ttl_secs: Option<i64>,
    #[arg(long, env = "IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<i64>,
    #[arg(long, env = "ABSOLUTE_LIFETIME_SECS")]
    pub absolute_lifetime_secs: Option<i64>,
    #[arg(long, env = "REFRESH_GRACE_SECS")]
    pub refresh_grace_secs: Option<i64>,
    #[arg(long, env = "MAX_SESSIONS_PER_USER")]
    pub max_sessions_per_user: Option<u32>,
    /// How often expired sessions are swept [default: 60].
    #[arg(long, env = "SWEEP_INTERVAL_SECS")]
    pub sweep_interval_secs: Option<u64>,
    /// Largest accepted request body [default: 65536].
    #[arg(long, env = "MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Address of the operator endpoints (`/metrics`, `/readyz`, `/healthz`, `/cluster/stats`);
    /// when set, `/metrics` and `/cluster/stats` leave the public address [default: none].
    #[arg(long, env = "OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// HTTP connections open at once per node, before any upgrade; at the cap the oldest idle one
    /// is closed for a new one [default: 512; lowered to fit the file limit].
    #[arg(long, env = "HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Time allowed to send a request's headers, from the connection's start or the end of the
    /// previous response (the keep-alive idle timeout) [default: 10000].
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_MS")]
    pub http_header_timeout_ms: Option<u64>,
    /// Time allowed to send a whole request body, and the longest pause inside one [default: 10000].
    #[arg(long, env = "HTTP_BODY_TIMEOUT_MS")]
    pub http_body_timeout_ms: Option<u64>,
    /// How often the session counts of `/metrics` and `/cluster/stats` are refreshed from the
    /// store [default: 15000].
    #[arg(long, env = "STATS_REFRESH_MS")]
    pub stats_refresh_ms: Option<u64>,
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// WebSocket: time allowed for the `auth` frame [default: 5000].
    #[arg(long, env = "WS_AUTH_TIMEOUT_MS")]
    pub ws_auth_timeout_ms: Option<u64>,
    /// WebSocket: ping interval announced to clients [default: 15000].
    #[arg(long, env = "WS_HEARTBEAT_INTERVAL_MS")]
    pub ws_heartbeat_interval_ms: Option<u64>,
    /// WebSocket: silence after which a connection is closed [default: 45000].
    #[arg(long, env = "WS_HEARTBEAT_TIMEOUT_MS")]
    pub ws_heartbeat_timeout_ms: Option<u64>,
    /// WebSocket: `token_expiring` lead time [default: 60000].
    #[arg(long, env = "WS_TOKEN_WARNING_MS")]
    pub ws_token_warning_ms: Option<u64>,
    /// WebSocket: grace after access-token expiry before closing [default: 30000].
    #[arg(long, env = "WS_TOKEN_GRACE_MS")]
    pub ws_token_grace_ms: Option<u64>,
    /// WebSocket: connections per node [default: 20000].
    #[arg(long, env = "WS_MAX_CONNECTIONS")]
    pub ws_max_connections: Option<usize>,
    /// WebSocket: upgraded sockets waiting to authenticate; at the cap the oldest is closed
    /// (4004) [default: 256; lowered to fit the file limit].
    #[arg(long, env = "WS_MAX_PENDING")]
    pub ws_max_pending: Option<usize>,
    /// WebSocket: largest client message [default: 4096].
    #[arg(long, env = "WS_MAX_MESSAGE_BYTES")]
    pub ws_max_message_bytes: Option<usize>,
    /// WebSocket: sustained messages per second per connection (burst twice that) [default: 20].
    #[arg(long, env = "WS_MESSAGES_PER_SEC")]
    pub ws_messages_per_sec: Option<u32>,
    /// WebSocket: how often `last_seen` is flushed to the store [default: 5000].
    #[arg(long, env = "PRESENCE_FLUSH_MS")]
    pub presence_flush_ms: Option<u64>,
    /// Shutdown: longest wait for WebSocket clients to close [default: 10000].
    #[arg(long, env = "DRAIN_TIMEOUT_MS")]
    pub drain_timeout_ms: Option<u64>,
    /// Shutdown: upper bound of the random reconnect delay sent to clients [default: 5000].
    #[arg(long, env = "DRAIN_JITTER_MS")]
    pub drain_jitter_ms: Option<u64>,
    /// Redis for the cross-node bus, presence and session cache: one `redis://` URL, or several
    /// comma-separated seed URLs of a Redis Fleet [default: none: a single node with an
    /// in-process bus].
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel, one per deployment [default: session].
    #[arg(long, env = "REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Longest wait for one Redis call, reconnecting included, before the node uses the store
    /// instead. After a failure, requests stop asking Redis until the heartbeat's probe is
    /// answered, so a request waits this long at most once per outage [default: 500].
    #[arg(long, env = "REDIS_TIMEOUT_MS")]
    pub redis_timeout_ms: Option<u64>,
    /// Maximum age of a session cache entry, counted from the store read that filled it; reads
    /// never extend it. Bounds how long a change whose node could not reach Redis goes unseen
    /// elsewhere [default: 20].
    #[arg(long, env = "CACHE_TTL_SECS")]
    pub cache_ttl_secs: Option<u64>,
    /// How often a node renews its liveness key [default: 1000].
    #[arg(long, env = "NODE_HEARTBEAT_MS")]
    pub node_heartbeat_ms: Option<u64>,
    /// TTL of a node's liveness key: a dead node's sessions read offline within this plus one
    /// heartbeat [default: 3000; at least twice the heartbeat].
    #[arg(long, env = "NODE_LIVENESS_TTL_MS")]
    pub node_liveness_ttl_ms: Option<u64>,
    /// How often each node re-checks its live connections against the store [default: 30000].
    #[arg(long, env = "RECONCILE_INTERVAL_MS")]
    pub reconcile_interval_ms: Option<u64>,
    /// Per-platform lifetimes; TOML only.
    #[arg(skip)]
    pub platforms: Option<HashMap<String, PlatformLifetimes>>,
}

/// Builds the overlay of two layers field by field. The pattern and the struct literal name every
/// field without `..`, so adding a setting without listing it here does not compile.
macro_rules! overlay {
    ($base:ident, $top:ident, $($field:ident),* $(,)?) => {{
        let Overrides { $($field),* } = $top;
        Overrides { $($field: $field.or($base.$field)),* }
    }};
}

impl Overrides {
    /// `top` wins wherever it sets a value.
    pub fn overlay(self, top: Overrides) -> Self {
        overlay!(
            self,
            top,
            listen,
            data_dir,
            database_url,
            database_max_connections,
            issuer,
            audience,
            signing_key_file,
            previous_key_files,
            refresh_key_file,
            refresh_pepper,
            service_keys,
            access_ttl_secs,
            idle_timeout_secs,
            absolute_lifetime_secs,
            refresh_grace_secs,
            max_sessions_per_user,
            sweep_interval_secs,
            max_body_bytes,
            ops_listen,
            http_max_connections,
            http_header_timeout_ms,
            http_body_timeout_ms,
            stats_refresh_ms,
            log_format,
            ws_auth_timeout_ms,
            ws_heartbeat_interval_ms,
            ws_heartbeat_timeout_ms,
            ws_token_warning_ms,
            ws_token_grace_ms,
            ws_max_connections,
            ws_max_pending,
            ws_max_message_bytes,
            ws_messages_per_sec,
            presence_flush_ms,
            drain_timeout_ms,
            drain_jitter_ms,
            redis_url,
            redis_prefix,
            redis_timeout_ms,
            cache_ttl_secs,
            node_heartbeat_ms,
            node_liveness_ttl_ms,
            reconcile_interval_ms,
            platforms,
        )
    }
}

#[derive(Debug, Parser)]
#[command(name = "session-service", version, about = "Session authority and real-time presence")]
pub struct Cli {
    /// Optional TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "SESSION_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// Where a key comes from: an operator-supplied file that must exist, or the embedded default
/// that is generated on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Generated(PathBuf),
}

/// Resolved settings.
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
    pub sweep_interval: std::time::Duration,
    pub max_body_bytes: usize,
    /// The HTTP listener's timeouts and connection cap (before the file budget is applied).
    pub http: crate::server::HttpConfig,
    /// Where the operator endpoints listen, if apart from the public address.
    pub ops_listen: Option<SocketAddr>,
    /// Whether the operator set any connection limit (HTTP, pending or authenticated
    /// WebSockets): lowering one of those to fit the file limit is worth a warning, lowering a
    /// default is not.
    pub limits_configured: bool,
    /// How often the session counts of the operator endpoints are refreshed.
    pub stats_refresh: std::time::Duration,
    pub log_format: LogFormat,
    pub gateway: crate::ws::GatewayConfig,
    /// `None`: a single node on the in-process bus.
    pub redis: Option<crate::bus::redis::RedisOptions>,
    pub fleet: crate::fleet::FleetConfig,
    pub cluster_liveness_ttl: std::time::Duration,
}

impl Settings {
    /// Reads the command line, the environment and the optional TOML file.
    pub fn load() -> anyhow::Result<Self> {
        let cli = Cli::parse();
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => Overrides::default(),
        };
        Self::resolve(file.overlay(cli.overrides))
    }

    /// Applies defaults to whatever `o` leaves unset, and checks the result.
    pub fn resolve(o: Overrides) -> anyhow::Result<Self> {
        let gateway = gateway_config(&o);
        let http = http_config(&o, &gateway);
        let (cluster, cluster_liveness_ttl, redis) = cluster_config(&o)?;
        let data_dir = o.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let default_db = format!("sqlite://{}", data_dir.join("sessions.db").display());
        let secs = |v: Option<i64>, default: Duration, name: &str| -> anyhow::Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) if s > 0 => Ok(Duration::seconds(s)),
                Some(_) => anyhow::bail!("{name} must be a positive number of seconds"),
            }
        };
        let base = Lifetimes::default();
        let default = Lifetimes {
            access_ttl: secs(o.access_ttl_secs, base.access_ttl, "access_ttl_secs")?,
            idle_timeout: secs(o.idle_timeout_secs, base.idle_timeout, "idle_timeout_secs")?,
            absolute_lifetime: secs(o.absolute_lifetime_secs, base.absolute_lifetime, "absolute_lifetime_secs")?,
        };
        let mut platforms = HashMap::new();
        for (name, p) in o.platforms.unwrap_or_default() {
            let l = Lifetimes {
                access_ttl: secs(p.access_ttl_secs, default.access_ttl, "access_ttl_secs")?,
                idle_timeout: secs(p.idle_timeout_secs, default.idle_timeout, "idle_timeout_secs")?,
                absolute_lifetime: secs(p.absolute_lifetime_secs, default.absolute_lifetime, "absolute_lifetime_secs")?,
            };
            platforms.insert(name, l);
        }
        let policy = Policy {
            default,
            platforms,
            refresh_grace: secs(o.refresh_grace_secs, Policy::default().refresh_grace, "refresh_grace_secs")?,
            max_sessions_per_user: o.max_sessions_per_user.unwrap_or(20).max(1),
        };
        let key = |explicit: Option<PathBuf>, default: &str| match explicit {
            Some(p) => KeySource::File(p),
            None => KeySource::Generated(data_dir.join(default)),
        };
        Ok(Self {
            gateway,
            listen: o.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: o.database_url.unwrap_or(Secret(default_db)),
            database_max_connections: o
                .database_max_connections
                .unwrap_or(crate::store::postgres::DEFAULT_MAX_CONNECTIONS),
            issuer: o.issuer.unwrap_or_else(|| "session-service".into()),
            audience: o.audience.unwrap_or_else(|| "game-platform".into()),
            signing_key: key(o.signing_key_file, "signing-key.pem"),
            previous_key_files: o.previous_key_files.unwrap_or_default(),
            refresh_key: key(o.refresh_key_file, "refresh-key"),
            refresh_pepper: o.refresh_pepper,
            service_keys: o.service_keys.unwrap_or_default(),
            policy,
            sweep_interval: std::time::Duration::from_secs(o.sweep_interval_secs.unwrap_or(60).max(1)),
            max_body_bytes: o.max_body_bytes.unwrap_or(64 * 1024),
            http,
            ops_listen: o.ops_listen,
            limits_configured: o.http_max_connections.is_some()
                || o.ws_max_pending.is_some()
                || o.ws_max_connections.is_some(),
            stats_refresh: std::time::Duration::from_millis(o.stats_refresh_ms.unwrap_or(15_000).max(100)),
            log_format: o.log_format.unwrap_or(LogFormat::Text),
            data_dir,
            redis,
            fleet: cluster,
            cluster_liveness_ttl,
        })
    }
}

fn http_config(o: &Overrides, gateway: &crate::ws::GatewayConfig) -> crate::server::HttpConfig {
    let d = crate::server::HttpConfig::default();
    let ms = |v: Option<u64>, default: std::time::Duration| {
        v.map_or(default, |v| std::time::Duration::from_millis(v.max(1)))
    };
    crate::server::HttpConfig {
        header_timeout: ms(o.http_header_timeout_ms, d.header_timeout),
        body_timeout: ms(o.http_body_timeout_ms, d.body_timeout),
        max_connections: o.http_max_connections.unwrap_or(d.max_connections).max(1),
        drain_timeout: gateway.drain_timeout,
        ..d
    }
}

fn gateway_config(o: &Overrides) -> crate::ws::GatewayConfig {
    let d = crate::ws::GatewayConfig::default();
    let ms = |v: Option<u64>, default: std::time::Duration| {
        v.map_or(default, |v| std::time::Duration::from_millis(v.max(1)))
    };
    let rate = o.ws_messages_per_sec.map_or(d.inbound.messages_per_sec, |r| f64::from(r.max(1)));
    crate::ws::GatewayConfig {
        auth_timeout: ms(o.ws_auth_timeout_ms, d.auth_timeout),
        heartbeat_interval: ms(o.ws_heartbeat_interval_ms, d.heartbeat_interval),
        heartbeat_timeout: ms(o.ws_heartbeat_timeout_ms, d.heartbeat_timeout),
        token_warning: ms(o.ws_token_warning_ms, d.token_warning),
        token_grace: ms(o.ws_token_grace_ms, d.token_grace),
        max_connections: o.ws_max_connections.unwrap_or(d.max_connections),
        max_pending: o.ws_max_pending.unwrap_or(d.max_pending).max(1),
        inbound: crate::ws::codec::InboundLimits {
            max_message_bytes: o.ws_max_message_bytes.unwrap_or(d.inbound.max_message_bytes),
            messages_per_sec: rate,
            burst: rate * 2.0,
            ..d.inbound
        },
        presence_flush_interval: ms(o.presence_flush_ms, d.presence_flush_interval),
        drain_timeout: ms(o.drain_timeout_ms, d.drain_timeout),
        drain_jitter: o.drain_jitter_ms.map_or(d.drain_jitter, std::time::Duration::from_millis),
        ..d
    }
}

type ClusterSettings = (crate::fleet::FleetConfig, std::time::Duration, Option<crate::bus::redis::RedisOptions>);

fn cluster_config(o: &Overrides) -> anyhow::Result<ClusterSettings> {
    use std::time::Duration as StdDuration;
    let d = crate::fleet::FleetConfig::default();
    let r = crate::bus::redis::RedisOptions::default();
    let ms = |v: Option<u64>, default: StdDuration| v.map_or(default, |v| StdDuration::from_millis(v.max(1)));
    let heartbeat = ms(o.node_heartbeat_ms, d.heartbeat_interval);
    let ttl = ms(o.node_liveness_ttl_ms, r.liveness_ttl);
    anyhow::ensure!(ttl >= heartbeat * 2, "node_liveness_ttl_ms must be at least twice node_heartbeat_ms");
    let cluster = crate::fleet::FleetConfig {
        heartbeat_interval: heartbeat,
        reconcile_interval: ms(o.reconcile_interval_ms, d.reconcile_interval),
        ..d
    };
    let redis = o.redis_url.as_ref().map(|url| crate::bus::redis::RedisOptions {
        url: url.clone(),
        prefix: o.redis_prefix.clone().unwrap_or(r.prefix.clone()),
        liveness_ttl: ttl,
        cache_ttl: o.cache_ttl_secs.map_or(r.cache_ttl, |s| StdDuration::from_secs(s.max(1))),
        timeout: ms(o.redis_timeout_ms, r.timeout),
    });
    Ok((cluster, ttl, redis))
}

fn read_file(path: &Path) -> anyhow::Result<Overrides> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_an_embedded_node_on_localhost() {
        let s = Settings::resolve(Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.0, "sqlite://data/sessions.db");
        assert_eq!(s.signing_key, KeySource::Generated(PathBuf::from("data/signing-key.pem")));
        assert_eq!(s.policy, Policy::default());
    }

    #[test]
    fn a_later_layer_wins_and_unset_fields_fall_through() {
        let file: Overrides = toml::from_str(
            "access_ttl_secs = 60\nmax_sessions_per_user = 5\n[platforms.web]\nidle_timeout_secs = 3600\n",
        )
        .unwrap();
        let env = Overrides { access_ttl_secs: Some(120), ..Overrides::default() };
        let s = Settings::resolve(file.overlay(env)).unwrap();
        assert_eq!(s.policy.default.access_ttl, Duration::seconds(120));
        assert_eq!(s.policy.max_sessions_per_user, 5);
        assert_eq!(s.policy.lifetimes("web").idle_timeout, Duration::hours(1));
        assert_eq!(s.policy.lifetimes("web").access_ttl, Duration::seconds(120));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Overrides>("acess_ttl_secs = 1").is_err());
        let o = Overrides { refresh_grace_secs: Some(0), ..Overrides::default() };
        assert!(Settings::resolve(o).is_err());
    }

    #[test]
    fn a_redis_password_does_not_show_in_debug_output() {
        let url = "redis://:s3cr3t-pw@redis.internal:6379,redis://:s3cr3t-pw@redis-2.internal:6379";
        let o = Overrides { redis_url: Some(Secret(url.into())), ..Overrides::default() };
        let s = Settings::resolve(o).unwrap();
        assert!(s.redis.is_some());
        assert!(!format!("{s:?}").contains("s3cr3t-pw"), "{s:?}");
    }

    #[test]
    fn a_cache_entry_lives_well_under_a_minute_by_default() {
        let o = Overrides { redis_url: Some(Secret("redis://127.0.0.1:6379".into())), ..Overrides::default() };
        let redis = Settings::resolve(o).unwrap().redis.unwrap();
        assert!(redis.cache_ttl <= std::time::Duration::from_secs(30), "{:?}", redis.cache_ttl);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let o = Overrides { refresh_pepper: Some(Secret("hunter2".into())), ..Overrides::default() };
        let s = Settings::resolve(o).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
