//! Building a node from settings and running it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::memory::{MemoryBus, MemoryHub};
use crate::bus::redis::{RedisBus, RedisOptions};
use crate::bus::Bus;
use crate::clock::Clock;
use crate::config::{KeySource, Settings};
use crate::events::feed::{Announcing, RevocationFeed};
use crate::events::relay::{Relay, RelayOptions};
use crate::events::retention::Retention;
use crate::events::wake::OutboxSignal;
use crate::fleet::{Fleet, FleetConfig};
use crate::http::auth::{hash_service_key, Scope, ServiceKeySpec, ServiceKeys};
use crate::metrics::Metrics;
use crate::registry::LiveConnections;
use crate::server::{FileBudget, HttpConfig, Limits};
use crate::session::cache::SessionCache;
use crate::session::store::Store;
use crate::session::{Policy, Ports, SessionService};
use crate::state::AppState;
use crate::tokens::keys::{write_private, VerificationKey};
use crate::tokens::{AccessTokens, RefreshSecrets, SigningKeyPair};
use crate::ws::{Gateway, GatewayConfig};

/// The shared backends of a node: the store, and the bus with its session cache.
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn SessionCache>,
}

impl Backends {
    /// `store` with an in-process bus of its own: a single node.
    pub fn single_node(store: Arc<dyn Store>, liveness_ttl: std::time::Duration) -> Self {
        Self::on_hub(store, &MemoryHub::new(liveness_ttl))
    }

    /// `store` with a node's handle on `hub`, shared with the other nodes of this process.
    pub fn on_hub(store: Arc<dyn Store>, hub: &Arc<MemoryHub>) -> Self {
        let bus = Arc::new(MemoryBus::new(hub.clone()));
        Self { store, bus: bus.clone(), cache: bus }
    }

    /// `store` with the Redis bus.
    pub async fn with_redis(store: Arc<dyn Store>, options: RedisOptions) -> anyhow::Result<Self> {
        let bus = Arc::new(RedisBus::connect(options).await.context("connecting to Redis")?);
        Ok(Self { store, bus: bus.clone(), cache: bus })
    }
}

/// A node's parts, wired together.
pub struct Parts {
    pub metrics: Arc<Metrics>,
    pub fleet: Arc<Fleet>,
    pub sessions: Arc<SessionService>,
    pub gateway: Arc<Gateway>,
    pub feed: Arc<RevocationFeed>,
}

/// What a node runs on besides its backends.
pub struct Wiring {
    pub clock: Arc<dyn Clock>,
    pub access: Arc<AccessTokens>,
    pub refresh: RefreshSecrets,
    pub policy: Policy,
    pub gateway: GatewayConfig,
    pub fleet: FleetConfig,
    /// Longest a `GET /revocations` long-poll waits.
    pub feed_max_wait: std::time::Duration,
}

/// Wires the domain, the cluster membership and the gateway over `backends`. Also used by tests
/// that drive the gateway without HTTP.
pub fn assemble(backends: Backends, wiring: Wiring) -> Parts {
    let Wiring { clock, access, refresh, policy, gateway, fleet, feed_max_wait } = wiring;
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(LiveConnections::new());
    let fleet =
        Fleet::new(backends.bus.clone(), registry, backends.store.clone(), metrics.clone(), clock.clone(), fleet);
    let feed = Arc::new(RevocationFeed::new(
        backends.store.clone(),
        clock.clone(),
        policy.longest_access_ttl(),
        feed_max_wait,
    ));
    let ports = Ports {
        store: backends.store,
        cache: backends.cache,
        clock: clock.clone(),
        access,
        listener: Arc::new(Announcing::new(fleet.clone(), feed.clone())),
        outcomes: metrics.clone(),
    };
    let sessions = Arc::new(SessionService::new(ports, refresh, policy));
    let gateway = Arc::new(Gateway::new(sessions.clone(), fleet.clone(), metrics.clone(), gateway, clock));
    Parts { metrics, fleet, sessions, gateway, feed }
}

/// HTTP connections the operator listener holds at once (scrapers and probes, a handful).
const OPS_MAX_CONNECTIONS: usize = 64;

/// A node, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    /// The operator endpoints' own listener, when `OPS_LISTEN` is set.
    ops_listener: Option<TcpListener>,
    state: AppState,
    settings: Settings,
    /// The outbox's background work: its relay (with `NATS_URL`) and its retention.
    outbox: OutboxWork,
}

/// What the node runs for the outbox besides serving.
struct OutboxWork {
    /// The JetStream connection and the relay, when a broker is configured.
    relay: Option<(async_nats::jetstream::Context, Relay)>,
    retention: Retention,
}

/// Connects the store, loads (or on first start generates) the keys, and binds the listener.
pub async fn build(mut settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
    fit_file_limit(&mut settings).context("reading the file limit")?;
    let raw_store = crate::store::connect_with(&settings.database_url.0, settings.database_max_connections)
        .await
        .context("connecting to the store")?;
    // With a broker, every commit that wrote outbox rows wakes the relay.
    let committed = Arc::new(tokio::sync::Notify::new());
    let store: Arc<dyn Store> = match settings.events.nats_url {
        Some(_) => Arc::new(OutboxSignal::new(raw_store.clone(), committed.clone())),
        None => raw_store.clone(),
    };
    let signing = load_signing_key(&settings.signing_key)?;
    let previous = settings
        .previous_key_files
        .iter()
        .map(|p| {
            let pem = std::fs::read_to_string(p).with_context(|| format!("reading previous key {}", p.display()))?;
            VerificationKey::from_pem(&pem).with_context(|| format!("parsing previous key {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let access = Arc::new(AccessTokens::new(&settings.issuer, &settings.audience, &signing, &previous));
    let refresh_key = load_refresh_key(&settings.refresh_key)?;
    let pepper = settings.refresh_pepper.as_ref().map(|p| p.0.clone().into_bytes());
    let service_keys = match settings.service_keys.as_slice() {
        [] => vec![default_service_key(&settings.data_dir)?],
        keys => keys.to_vec(),
    };
    let backends = match &settings.redis {
        Some(options) => Backends::with_redis(store.clone(), options.clone()).await?,
        None => Backends::single_node(store.clone(), settings.cluster_liveness_ttl),
    };
    let listener = TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let ops_listener = match settings.ops_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding OPS_LISTEN {addr}"))?),
        None => None,
    };
    let advertised_addr = listener.local_addr().context("reading the bound address")?.to_string();
    let outbox_clock = clock.clone();
    let wiring = Wiring {
        clock,
        access: access.clone(),
        refresh: RefreshSecrets::new(refresh_key, pepper),
        policy: settings.policy.clone(),
        gateway: settings.gateway.clone(),
        fleet: FleetConfig { advertised_addr, ..settings.fleet.clone() },
        feed_max_wait: settings.events.feed_max_wait,
    };
    let parts = assemble(backends, wiring);
    let outbox = outbox_work(&settings, raw_store, committed, &outbox_clock, &parts.metrics).await?;
    parts.fleet.join().await.context("joining the cluster (subscribing to this node's channel)")?;
    let service_keys = Arc::new(ServiceKeys::new(&service_keys));
    let state = AppState {
        sessions: parts.sessions,
        access,
        service_keys,
        registry: parts.fleet.registry().clone(),
        gateway: parts.gateway,
        fleet: parts.fleet,
        metrics: parts.metrics,
        feed: parts.feed,
        census: crate::census::Census::new(),
    };
    Ok(App { listener, ops_listener, state, settings, outbox })
}

/// The relay (connected to NATS, which it may wait for: the client reconnects by itself) when
/// `NATS_URL` is set, and the outbox's retention sweep in any case.
async fn outbox_work(
    settings: &Settings,
    store: Arc<dyn Store>,
    committed: Arc<tokio::sync::Notify>,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<OutboxWork> {
    let events = &settings.events;
    let retention = Retention::new(store.clone(), clock.clone(), metrics.clone(), events);
    let Some(url) = &events.nats_url else { return Ok(OutboxWork { relay: None, retention }) };
    let js = crate::events::nats::connect(url).await.context("connecting to NATS")?;
    let sink = Arc::new(crate::events::nats::NatsSink::new(js.clone(), events));
    let options = RelayOptions { batch: events.relay_batch, poll: events.relay_poll, wake: committed };
    let relay = Relay::new(store, sink, clock.clone(), metrics.clone(), options);
    Ok(OutboxWork { relay: Some((js, relay)), retention })
}

/// Lowers the connection limits where they would not fit under the process's file limit
/// (raised to its hard limit first), and says what was planned.
fn fit_file_limit(settings: &mut Settings) -> anyhow::Result<()> {
    let ops = if settings.ops_listen.is_some() { OPS_MAX_CONNECTIONS as u64 } else { 0 };
    let budget = FileBudget::of_process(u64::from(settings.database_max_connections) + ops)?;
    let wanted = Limits {
        http: settings.http.max_connections,
        ws_pending: settings.gateway.max_pending,
        websockets: settings.gateway.max_connections,
    };
    let plan = budget.plan(wanted);
    let message = "connection limits lowered to fit the file limit (raise `ulimit -n` to keep them)";
    let (limit, reserved) = (budget.limit, budget.reserved);
    let (http, ws_pending, websockets) = (plan.http, plan.ws_pending, plan.websockets);
    if plan != wanted && settings.limits_configured {
        tracing::warn!(file_limit = limit, reserved, http, ws_pending, websockets, "{message}");
    } else if plan != wanted {
        // Only defaults were lowered (WS_MAX_CONNECTIONS' 20,000 never fits a 20,000-file limit).
        tracing::info!(file_limit = limit, reserved, http, ws_pending, websockets, "{message}");
    } else {
        tracing::debug!(file_limit = budget.limit, ?plan, "connection limits fit the file limit");
    }
    settings.http.max_connections = plan.http;
    settings.gateway.max_pending = plan.ws_pending;
    settings.gateway.max_connections = plan.websockets;
    Ok(())
}

impl App {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Where the operator endpoints listen, when they have a listener of their own.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The settings the node runs with (connection limits as fitted to the file limit).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Serves until `shutdown` completes, then drains: WebSocket clients are told to reconnect
    /// elsewhere and closed (bounded by the drain timeout), in-flight requests finish, background
    /// work stops and presence is flushed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(sweep_loop(self.state.clone(), self.settings.sweep_interval, cancel.clone()));
        tasks.spawn(refusals_loop(self.state.sessions.clone(), cancel.clone()));
        let gateway = self.state.gateway.clone();
        tasks.spawn(gateway.clone().run_sweeper(cancel.clone()));
        tasks.spawn(self.state.fleet.clone().run(cancel.clone()));
        if let Some(url) = &self.settings.events.nats_url {
            let (events, sessions, metrics) =
                (self.settings.events.clone(), self.state.sessions.clone(), self.state.metrics.clone());
            tasks.spawn(crate::events::consumer::run(url.clone(), events, sessions, metrics, cancel.clone()));
        }
        tasks.spawn(self.state.feed.clone().run(cancel.clone()));
        let census = self.state.census.clone();
        tasks.spawn(census.run(self.state.sessions.clone(), self.settings.stats_refresh, cancel.clone()));
        let addr = self.local_addr();
        let ops_addr = self.ops_addr();
        if let Some((js, relay)) = self.outbox.relay {
            let config = self.settings.events.clone();
            tasks.spawn(crate::events::nats::relay_to_jetstream(js, config, relay, cancel.clone()));
        }
        tasks.spawn(self.outbox.retention.run(cancel.clone()));
        tracing::info!(
            %addr,
            ops = ?ops_addr,
            store = self.state.sessions.backend(),
            bus = self.state.fleet.bus().kind(),
            node = self.state.fleet.node_id(),
            "listening"
        );
        let options = crate::http::Options {
            max_body_bytes: self.settings.max_body_bytes,
            body_timeout: self.settings.http.body_timeout,
            ops_apart: self.ops_listener.is_some(),
        };
        let metrics = self.state.metrics.clone();
        // Stops the listeners once the WebSocket clients have been told to go (REST keeps
        // answering meanwhile); open HTTP connections then finish their requests.
        let stopping = CancellationToken::new();
        let stop = stopping.clone();
        let feed = self.state.feed.clone();
        tasks.spawn(async move {
            shutdown.await;
            // Long-polls answer now, so that in-flight requests finish promptly.
            feed.close();
            gateway.drain().await;
            stop.cancel();
        });
        let ops = self.ops_listener.map(|listener| {
            let router = crate::http::ops_router(self.state.clone(), &options);
            let config = HttpConfig { name: "ops", max_connections: OPS_MAX_CONNECTIONS, ..self.settings.http.clone() };
            tokio::spawn(crate::server::serve(listener, router, config, metrics.clone(), stopping.clone()))
        });
        let router = crate::http::router(self.state, &options);
        crate::server::serve(self.listener, router, self.settings.http.clone(), metrics, stopping).await;
        if let Some(ops) = ops {
            ops.await.context("serving the operator endpoints")?;
        }
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
        Ok(())
    }
}

/// Marks expired sessions every `interval` (with their audit records and `session.expired`).
async fn sweep_loop(state: AppState, interval: std::time::Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => match state.sessions.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expired sessions swept"),
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed; retrying next interval"),
            },
        }
    }
}

/// How often the aggregate audit rows of ended refusal windows are written.
const REFUSALS_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes the aggregate rows of refusal windows as they end, and all of them at shutdown (the
/// requests that fed them have all been answered by then).
async fn refusals_loop(sessions: Arc<SessionService>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(REFUSALS_FLUSH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let everything = tokio::select! {
            () = cancel.cancelled() => true,
            _ = ticker.tick() => false,
        };
        if let Err(e) = sessions.flush_refusals(everything).await {
            tracing::warn!(error = %e, "writing aggregated refusals failed");
        }
        if everything {
            return;
        }
    }
}

fn load_signing_key(source: &KeySource) -> anyhow::Result<SigningKeyPair> {
    match source {
        KeySource::File(path) => {
            let pem =
                std::fs::read_to_string(path).with_context(|| format!("reading signing key {}", path.display()))?;
            SigningKeyPair::from_pem(&pem).with_context(|| format!("parsing signing key {}", path.display()))
        }
        KeySource::Generated(path) => {
            let (key, generated) = SigningKeyPair::load_or_generate(path).context("loading the signing key")?;
            if generated {
                tracing::info!(path = %path.display(), kid = key.kid(), "generated a new signing key");
            }
            Ok(key)
        }
    }
}

fn load_refresh_key(source: &KeySource) -> anyhow::Result<[u8; 32]> {
    let path = match source {
        KeySource::File(path) | KeySource::Generated(path) => path,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{}: expected 32 bytes in base64url", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && matches!(source, KeySource::Generated(_)) => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(path, URL_SAFE_NO_PAD.encode(key).as_bytes())
                .with_context(|| format!("writing refresh key {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading refresh key {}", path.display())),
    }
}

/// With no service key configured, the embedded node uses one kept in `data/service-key`
/// (generated, printed once, on first start) with both scopes.
fn default_service_key(data_dir: &Path) -> anyhow::Result<ServiceKeySpec> {
    let path = data_dir.join("service-key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) => k.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let key = format!("sk_{}", URL_SAFE_NO_PAD.encode(bytes));
            write_private(&path, key.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "Generated a service key (scopes sessions:read, sessions:write), saved in {}:\n{key}",
                path.display()
            );
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let spec = format!("default:{}:{}+{}", hash_service_key(&key), Scope::Read.as_str(), Scope::Write.as_str());
    spec.parse().map_err(anyhow::Error::msg)
}
