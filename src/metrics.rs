//! The node's Prometheus metrics: one [`Metrics`] per node, shared as `Arc<Metrics>` by the HTTP
//! layer, the session service, the gateway and the cluster, and rendered by `GET /metrics`.
//!
//! Every family is named `session_*`: the registry adds the prefix, counters get `_total` and
//! histograms the `_seconds` unit. Label values are enums ([`LabelValue`]), never user input,
//! and the HTTP route is the router's pattern (`/sessions/{id}`), never the raw path, so each
//! family keeps a small, fixed set of series. The domain reports through its own port
//! ([`Outcomes`]), implemented here.

use std::fmt::{self, Write as _};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::session::outcomes::{CacheOp, Outcomes, TokenCheck, TokenOutcome};

/// Upper bounds, in seconds, of every latency histogram. Most requests and bus hops take a
/// millisecond or two, so the resolution is at the fast end; anything slower than 2.5 s is an
/// incident whatever its exact value, and lands in `+Inf`.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The values of one label: an enum whose every value is known at start-up.
pub trait LabelValue: EncodeLabelValue + Copy + Eq + Hash + fmt::Debug + Send + Sync + 'static {
    fn as_str(self) -> &'static str;
}

/// Declares a label enum with its exposition text.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl LabelValue for $name {
            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_values!(
    /// A push to a client.
    PushKind { Revoked => "revoked", Replaced => "replaced", TokenExpiring => "token_expiring", Draining => "draining" }
);
label_values!(
    /// A control message between nodes.
    BusKind { Revoke => "revoke", Replace => "replace" }
);
label_values!(
    /// A bus operation that can fail.
    BusOp {
        Publish => "publish",
        Claim => "claim",
        Release => "release",
        Locate => "locate",
        Nodes => "nodes",
        Heartbeat => "heartbeat",
        Invalidate => "invalidate",
        CacheGet => "cache_get",
        CacheFill => "cache_fill",
    }
);
label_values!(
    /// A session-cache lookup's result.
    CacheResult { Hit => "hit", Miss => "miss" }
);
label_values!(
    /// What became of one `user.deleted` message.
    UserDeletedOutcome {
        Erased => "erased",
        Unchanged => "unchanged",
        DeadLettered => "dead_lettered",
        Retried => "retried",
    }
);

impl LabelValue for TokenOutcome {
    fn as_str(self) -> &'static str {
        TokenOutcome::as_str(self)
    }
}

impl EncodeLabelValue for TokenOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(TokenOutcome::as_str(*self))
    }
}

/// The outcomes a refresh can have (a validation's `ok` never is one).
const REFRESH_OUTCOMES: &[TokenOutcome] =
    &[TokenOutcome::Rotate, TokenOutcome::Replay, TokenOutcome::Reuse, TokenOutcome::Forged, TokenOutcome::Rejected];
/// The outcomes a validation can have (it never rotates or replays).
const VALIDATE_OUTCOMES: &[TokenOutcome] =
    &[TokenOutcome::Ok, TokenOutcome::Reuse, TokenOutcome::Forged, TokenOutcome::Rejected];

/// Upper bounds, in seconds, of the relay's commit-to-acknowledgement lag: milliseconds when all
/// is well, up to minutes while the broker is down (the events wait in the outbox).
const RELAY_LAG_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Registers `metric` under `name` and returns the handle to record through (handles share state).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// [`registered`], for a metric measured in seconds: the name gets a `_seconds` suffix.
fn registered_seconds<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register_with_unit(name, help, Unit::Seconds, metric.clone());
    metric
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// A counter family with one typed label. The values the family can take get their handle at
/// start-up, which buys two things: recording one is a single atomic add (no lock, hash or
/// allocation), and its series reads 0 from the first scrape instead of appearing on first use,
/// which `rate()` and alerts would miss. A value outside that set (which the callers' types
/// should make impossible) still counts, through the family.
#[derive(Debug)]
struct LabelledCounter<L: LabelValue> {
    family: Family<[(&'static str, L); 1], Counter>,
    label: &'static str,
    known: Vec<(L, Counter)>,
}

impl<L: LabelValue> LabelledCounter<L> {
    fn new(registry: &mut Registry, name: &str, help: &str, label: &'static str, values: &[L]) -> Self {
        let family = Family::<[(&'static str, L); 1], Counter>::default();
        registry.register(name, help, family.clone());
        let known = values.iter().map(|&value| (value, family.get_or_create(&[(label, value)]).clone())).collect();
        Self { family, label, known }
    }

    fn inc(&self, value: L) {
        self.inc_by(value, 1);
    }

    fn inc_by(&self, value: L, n: u64) {
        if n == 0 {
            return;
        }
        match self.known.iter().find(|(known, _)| *known == value) {
            Some((_, counter)) => counter.inc_by(n),
            None => self.family.get_or_create(&[(self.label, value)]).inc_by(n),
        };
    }
}

/// A family labelled by HTTP listener.
type ListenerFamily<M> = Family<[(&'static str, &'static str); 1], M>;

/// Handles on one listener's series (they share state with the registered families): recording
/// through them is an atomic operation, with no family lookup per connection.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    /// Open HTTP connections (not yet upgraded).
    pub connections: Gauge,
    /// Idle connections evicted at the connection cap.
    pub evicted: Counter,
    /// Connections closed at once because every open one was busy.
    pub refused: Counter,
    /// Failed accepts.
    pub accept_errors: Counter,
}

/// The node's metrics. Recording is lock-free or takes a brief read lock; nothing here blocks for
/// long or awaits, so any task may record.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    refresh: LabelledCounter<TokenOutcome>,
    validate: LabelledCounter<TokenOutcome>,
    pushes_sent: LabelledCounter<PushKind>,
    pushes_failed: LabelledCounter<PushKind>,
    bus_published: LabelledCounter<BusKind>,
    bus_received: LabelledCounter<BusKind>,
    bus_errors: LabelledCounter<BusOp>,
    bus_delivery: Histogram,
    cache: LabelledCounter<CacheResult>,
    ws_auth: Histogram,
    reconciliation_closed: Counter,
    reconciliation_runs: Counter,
    connections: Gauge,
    bus_connected: Gauge,
    bus_breaker_open: Gauge,
    bus_breaker_trips: Counter,
    bus_short_circuited: Counter,
    sessions: Family<[(&'static str, &'static str); 1], Gauge>,
    http_connections: ListenerFamily<Gauge>,
    http_evicted: ListenerFamily<Counter>,
    http_refused: ListenerFamily<Counter>,
    http_accept_errors: ListenerFamily<Counter>,
    ws_pending_evicted: Counter,
    audit_untracked: Counter,
    events_relayed: Counter,
    events_relay_duplicates: Counter,
    events_unacknowledged: Counter,
    relay_lag: Histogram,
    outbox_pruned: Counter,
    user_deleted: LabelledCounter<UserDeletedOutcome>,
    /// Every state `encode` has been given, so a state missing from a later scrape reads 0
    /// rather than keeping its last count. The mutex also keeps two scrapes' updates apart; it is
    /// held only while setting a handful of gauges.
    states_seen: Mutex<Vec<&'static str>>,
}

impl Metrics {
    /// Every family registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("session");
        let r = &mut registry;
        let http = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let help = "Time to answer an HTTP request, by method, route pattern and status";
        Self {
            http: registered_seconds(r, "http_request_duration", help, http),
            refresh: LabelledCounter::new(r, "refresh", "Refresh attempts", "outcome", REFRESH_OUTCOMES),
            validate: LabelledCounter::new(r, "validate", "Refresh-token validations", "outcome", VALIDATE_OUTCOMES),
            pushes_sent: LabelledCounter::new(r, "pushes_sent", "Pushes sent to clients", "kind", PushKind::ALL),
            pushes_failed: LabelledCounter::new(r, "pushes_failed", "Pushes that failed", "kind", PushKind::ALL),
            bus_published: LabelledCounter::new(r, "bus_published", "Messages sent to nodes", "kind", BusKind::ALL),
            bus_received: LabelledCounter::new(r, "bus_received", "Messages from nodes", "kind", BusKind::ALL),
            bus_errors: LabelledCounter::new(r, "bus_errors", "Failed bus operations", "op", BusOp::ALL),
            bus_delivery: registered_seconds(r, "bus_delivery", "Cross-node message latency", latency_histogram()),
            cache: LabelledCounter::new(r, "cache_lookups", "Session cache lookups", "result", CacheResult::ALL),
            ws_auth: registered_seconds(r, "ws_auth_duration", "WebSocket authentication time", latency_histogram()),
            reconciliation_closed: registered(r, "reconciliation_closed", "Connections closed", Counter::default()),
            reconciliation_runs: registered(r, "reconciliation_runs", "Reconciliation passes", Counter::default()),
            connections: registered(r, "live_connections", "WebSocket connections on this node", Gauge::default()),
            bus_connected: registered(r, "bus_connected", "1 when the bus is reachable", Gauge::default()),
            bus_breaker_open: registered(r, "bus_breaker_open", "1 while requests skip Redis", Gauge::default()),
            bus_breaker_trips: registered(r, "bus_breaker_trips", "Times the Redis breaker opened", Counter::default()),
            bus_short_circuited: registered(
                r,
                "bus_short_circuited",
                "Request-path Redis calls answered without asking Redis (breaker open)",
                Counter::default(),
            ),
            sessions: registered(r, "sessions", "Sessions in the store by state", Family::default()),
            http_connections: registered(r, "http_connections", "Open HTTP connections", Family::default()),
            http_evicted: registered(
                r,
                "http_connections_evicted",
                "Idle HTTP connections closed to admit a new one at the connection cap",
                Family::default(),
            ),
            http_refused: registered(
                r,
                "http_connections_refused",
                "Connections closed at once: the cap was reached and every connection was busy",
                Family::default(),
            ),
            http_accept_errors: registered(r, "http_accept_errors", "Failed accepts", Family::default()),
            ws_pending_evicted: registered(
                r,
                "ws_pending_evicted",
                "Unauthenticated WebSockets closed to make room for newer ones",
                Counter::default(),
            ),
            audit_untracked: registered(
                r,
                "audit_refusals_untracked",
                "Refusals of real sessions not audited: too many sessions were attacked at once",
                Counter::default(),
            ),
            events_relayed: registered(
                r,
                "events_relayed",
                "Outbox events the broker acknowledged (and were marked sent)",
                Counter::default(),
            ),
            events_relay_duplicates: registered(
                r,
                "events_relay_duplicates",
                "Relayed events the broker dropped as already stored (published again after a failed mark)",
                Counter::default(),
            ),
            events_unacknowledged: registered(
                r,
                "events_unacknowledged",
                "Relay publishes the broker did not acknowledge (the events stay in the outbox)",
                Counter::default(),
            ),
            relay_lag: registered_seconds(
                r,
                "relay_lag",
                "Time from an event's commit to the broker's acknowledgement",
                Histogram::new(RELAY_LAG_BUCKETS),
            ),
            outbox_pruned: registered(
                r,
                "outbox_pruned",
                "Outbox rows deleted past their retention",
                Counter::default(),
            ),
            user_deleted: LabelledCounter::new(
                r,
                "user_deleted_messages",
                "user.deleted messages handled, by outcome",
                "outcome",
                UserDeletedOutcome::ALL,
            ),
            states_seen: Mutex::new(Vec::new()),
            registry,
        }
    }

    /// Records one answered HTTP request; `route` is the matched pattern, never the raw path.
    /// Builds two small strings per call (family keys are owned); a request allocates far more.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels { method: method.to_owned(), route: route.to_owned(), status };
        self.http.get_or_create(&labels).observe(seconds);
    }

    /// Counts a push handed to a client's connection.
    pub fn push_sent(&self, kind: PushKind) {
        self.pushes_sent.inc(kind);
    }

    /// Counts a push that could not be handed over (the connection's queue was full, or the
    /// socket failed).
    pub fn push_failed(&self, kind: PushKind) {
        self.pushes_failed.inc(kind);
    }

    /// Counts pushes of one kind: `sent` handed over, `failed` not.
    pub fn pushes(&self, kind: PushKind, sent: u64, failed: u64) {
        self.pushes_sent.inc_by(kind, sent);
        self.pushes_failed.inc_by(kind, failed);
    }

    /// Counts a push by whether it was handed over.
    pub fn pushed(&self, kind: PushKind, sent: bool) {
        if sent {
            self.push_sent(kind);
        } else {
            self.push_failed(kind);
        }
    }

    /// Counts a message published to other nodes, by message kind.
    pub fn bus_published(&self, kind: BusKind) {
        self.bus_published.inc(kind);
    }

    /// Counts a message received from another node, by message kind.
    pub fn bus_received(&self, kind: BusKind) {
        self.bus_received.inc(kind);
    }

    /// Counts a failed bus operation.
    pub fn bus_error(&self, op: BusOp) {
        self.bus_errors.inc(op);
    }

    /// Records how long a cross-node message took from publish to receipt.
    pub fn bus_delivery(&self, seconds: f64) {
        self.bus_delivery.observe(seconds);
    }

    /// Records how long a WebSocket connection took to authenticate.
    pub fn ws_auth(&self, seconds: f64) {
        self.ws_auth.observe(seconds);
    }

    /// Counts one reconciliation pass and the connections it closed.
    pub fn reconciled(&self, closed: u64) {
        self.reconciliation_runs.inc();
        self.reconciliation_closed.inc_by(closed);
    }

    /// Sets the number of WebSocket connections this node holds.
    pub fn set_connections(&self, n: i64) {
        self.connections.set(n);
    }

    /// Sets whether the bus is reachable.
    pub fn set_bus_connected(&self, up: bool) {
        self.bus_connected.set(i64::from(up));
    }

    /// The connection series of one HTTP listener (`public` or `ops`), labelled `listener`, so
    /// the operator listener's connections never overwrite the public one's gauge.
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let label = [("listener", listener)];
        ListenerMetrics {
            connections: self.http_connections.get_or_create(&label).clone(),
            evicted: self.http_evicted.get_or_create(&label).clone(),
            refused: self.http_refused.get_or_create(&label).clone(),
            accept_errors: self.http_accept_errors.get_or_create(&label).clone(),
        }
    }

    /// Counts an unauthenticated WebSocket evicted by a newer one.
    pub fn ws_pending_evicted(&self) {
        self.ws_pending_evicted.inc();
    }

    /// Copies the bus breaker's state and its counts since start (the bus keeps them; they are
    /// brought here at every heartbeat).
    pub fn set_bus_breaker(&self, open: bool, trips: u64, short_circuited: u64) {
        self.bus_breaker_open.set(i64::from(open));
        // Only this method moves these counters, so the difference is what happened since.
        self.bus_breaker_trips.inc_by(trips.saturating_sub(self.bus_breaker_trips.get()));
        self.bus_short_circuited.inc_by(short_circuited.saturating_sub(self.bus_short_circuited.get()));
    }

    /// Counts an event the broker acknowledged, `lag` seconds after it was committed;
    /// `duplicate` when the broker already had it.
    pub fn event_relayed(&self, lag: f64, duplicate: bool) {
        self.events_relayed.inc();
        self.events_relay_duplicates.inc_by(u64::from(duplicate));
        self.relay_lag.observe(lag);
    }

    /// Counts relay publishes that were not acknowledged.
    pub fn events_unacknowledged(&self, n: u64) {
        self.events_unacknowledged.inc_by(n);
    }

    /// Counts outbox rows deleted by the retention sweep.
    pub fn outbox_pruned(&self, n: u64) {
        self.outbox_pruned.inc_by(n);
    }

    /// Counts one `user.deleted` message by what became of it.
    pub fn user_deleted(&self, outcome: UserDeletedOutcome) {
        self.user_deleted.inc(outcome);
    }

    /// Sets `session_sessions{state}` from counts the caller read from the store, and renders every
    /// metric in the OpenMetrics text format. A state seen in an earlier scrape but missing from
    /// `sessions_by_state` reads 0.
    pub fn encode(&self, sessions_by_state: &[(&'static str, i64)]) -> String {
        {
            // Poisoning cannot leave the list inconsistent (pushes only), so a panic elsewhere
            // must not stop scrapes.
            let mut seen = self.states_seen.lock().unwrap_or_else(PoisonError::into_inner);
            for &state in seen.iter().filter(|&&state| sessions_by_state.iter().all(|&(s, _)| s != state)) {
                self.sessions.get_or_create(&[("state", state)]).set(0);
            }
            for &(state, n) in sessions_by_state {
                self.sessions.get_or_create(&[("state", state)]).set(n);
                if !seen.contains(&state) {
                    seen.push(state);
                }
            }
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("rendering metrics into a String cannot fail");
        text
    }
}

/// The domain's outcomes, counted.
impl Outcomes for Metrics {
    fn token_checked(&self, check: TokenCheck, outcome: TokenOutcome) {
        match check {
            TokenCheck::Refresh => self.refresh.inc(outcome),
            TokenCheck::Validate => self.validate.inc(outcome),
        }
    }

    fn cache_read(&self, hit: bool) {
        self.cache.inc(if hit { CacheResult::Hit } else { CacheResult::Miss });
    }

    fn cache_failed(&self, op: CacheOp) {
        self.bus_error(match op {
            CacheOp::Get => BusOp::CacheGet,
            CacheOp::Fill => BusOp::CacheFill,
            CacheOp::Invalidate => BusOp::Invalidate,
        });
    }

    fn refusal_untracked(&self) {
        self.audit_untracked.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails, showing the whole exposition, unless `text` has exactly the line `expected`.
    #[track_caller]
    fn assert_line(text: &str, expected: &str) {
        assert!(text.lines().any(|line| line == expected), "no line `{expected}` in:\n{text}");
    }

    #[test]
    fn metrics_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Metrics>();
    }

    #[test]
    fn refresh_outcomes_are_counted_separately() {
        let m = Metrics::new();
        m.token_checked(TokenCheck::Refresh, TokenOutcome::Rotate);
        m.token_checked(TokenCheck::Refresh, TokenOutcome::Rotate);
        m.token_checked(TokenCheck::Refresh, TokenOutcome::Reuse);
        let text = m.encode(&[]);
        assert_line(&text, r#"session_refresh_total{outcome="rotate"} 2"#);
        assert_line(&text, r#"session_refresh_total{outcome="reuse"} 1"#);
        assert_line(&text, r#"session_refresh_total{outcome="replay"} 0"#);
    }

    #[test]
    fn a_family_shows_only_the_series_its_callers_can_move() {
        let text = Metrics::new().encode(&[]);
        assert_line(&text, r#"session_validate_total{outcome="ok"} 0"#);
        assert!(!text.contains(r#"session_validate_total{outcome="rotate"}"#), "a validation never rotates:\n{text}");
        assert!(!text.contains(r#"session_refresh_total{outcome="ok"}"#), "a refresh is never just ok:\n{text}");
        for kind in PushKind::ALL {
            assert_line(&text, &format!(r#"session_pushes_sent_total{{kind="{}"}} 0"#, kind.as_str()));
            assert_line(&text, &format!(r#"session_pushes_failed_total{{kind="{}"}} 0"#, kind.as_str()));
        }
    }

    #[test]
    fn pushes_bus_traffic_and_cache_lookups_are_counted_by_label() {
        let m = Metrics::new();
        m.push_sent(PushKind::Revoked);
        m.push_failed(PushKind::Draining);
        m.pushes(PushKind::TokenExpiring, 3, 1);
        m.pushed(PushKind::Replaced, false);
        m.bus_published(BusKind::Revoke);
        m.bus_received(BusKind::Replace);
        m.bus_error(BusOp::Heartbeat);
        m.cache_failed(CacheOp::Fill);
        m.cache_read(true);
        m.cache_read(true);
        m.cache_read(false);
        let text = m.encode(&[]);
        assert_line(&text, r#"session_pushes_sent_total{kind="revoked"} 1"#);
        assert_line(&text, r#"session_pushes_failed_total{kind="draining"} 1"#);
        assert_line(&text, r#"session_pushes_failed_total{kind="revoked"} 0"#);
        assert_line(&text, r#"session_pushes_sent_total{kind="token_expiring"} 3"#);
        assert_line(&text, r#"session_pushes_failed_total{kind="token_expiring"} 1"#);
        assert_line(&text, r#"session_pushes_failed_total{kind="replaced"} 1"#);
        assert_line(&text, r#"session_bus_published_total{kind="revoke"} 1"#);
        assert_line(&text, r#"session_bus_received_total{kind="replace"} 1"#);
        assert_line(&text, r#"session_bus_errors_total{op="heartbeat"} 1"#);
        assert_line(&text, r#"session_bus_errors_total{op="cache_fill"} 1"#);
        assert_line(&text, r#"session_cache_lookups_total{result="hit"} 2"#);
        assert_line(&text, r#"session_cache_lookups_total{result="miss"} 1"#);
    }

    #[test]
    fn each_http_listener_reports_its_own_connections() {
        let m = Metrics::new();
        m.listener("public").connections.set(7);
        m.listener("ops").connections.set(1);
        m.listener("public").evicted.inc();
        let text = m.encode(&[]);
        assert_line(&text, r#"session_http_connections{listener="public"} 7"#);
        assert_line(&text, r#"session_http_connections{listener="ops"} 1"#);
        assert_line(&text, r#"session_http_connections_evicted_total{listener="public"} 1"#);
    }

    #[test]
    fn http_requests_are_counted_per_route_in_latency_buckets() {
        let m = Metrics::new();
        m.observe_http("GET", "/sessions/{id}", 200, 0.003);
        m.observe_http("GET", "/sessions/{id}", 200, 0.2);
        m.observe_http("POST", "/sessions", 201, 0.001);
        let text = m.encode(&[]);
        let get = r#"method="GET",route="/sessions/{id}",status="200""#;
        assert_line(&text, &format!("session_http_request_duration_seconds_count{{{get}}} 2"));
        assert_line(&text, &format!(r#"session_http_request_duration_seconds_bucket{{le="0.0025",{get}}} 0"#));
        assert_line(&text, &format!(r#"session_http_request_duration_seconds_bucket{{le="0.005",{get}}} 1"#));
        assert_line(&text, &format!(r#"session_http_request_duration_seconds_bucket{{le="0.25",{get}}} 2"#));
        let post = r#"method="POST",route="/sessions",status="201""#;
        assert_line(&text, &format!("session_http_request_duration_seconds_count{{{post}}} 1"));
    }

    #[test]
    fn bus_delivery_and_websocket_auth_histograms_count_observations() {
        let m = Metrics::new();
        m.bus_delivery(0.004);
        m.bus_delivery(3.0);
        m.ws_auth(0.01);
        let text = m.encode(&[]);
        assert_line(&text, "session_bus_delivery_seconds_count 2");
        assert_line(&text, r#"session_bus_delivery_seconds_bucket{le="2.5"} 1"#);
        assert_line(&text, r#"session_bus_delivery_seconds_bucket{le="+Inf"} 2"#);
        assert_line(&text, "session_ws_auth_duration_seconds_count 1");
        assert_line(&text, "session_ws_auth_duration_seconds_sum 0.01");
    }

    #[test]
    fn reconciliation_counts_runs_and_closed_connections() {
        let m = Metrics::new();
        m.reconciled(3);
        m.reconciled(0);
        let text = m.encode(&[]);
        assert_line(&text, "session_reconciliation_runs_total 2");
        assert_line(&text, "session_reconciliation_closed_total 3");
    }

    #[test]
    fn user_deleted_messages_are_counted_by_outcome_from_zero() {
        let m = Metrics::new();
        m.user_deleted(UserDeletedOutcome::Erased);
        m.user_deleted(UserDeletedOutcome::DeadLettered);
        m.user_deleted(UserDeletedOutcome::DeadLettered);
        let text = m.encode(&[]);
        assert_line(&text, r#"session_user_deleted_messages_total{outcome="erased"} 1"#);
        assert_line(&text, r#"session_user_deleted_messages_total{outcome="dead_lettered"} 2"#);
        assert_line(&text, r#"session_user_deleted_messages_total{outcome="unchanged"} 0"#);
        assert_line(&text, r#"session_user_deleted_messages_total{outcome="retried"} 0"#);
    }

    #[test]
    fn gauges_show_the_last_value_set() {
        let m = Metrics::new();
        m.set_connections(42);
        m.set_connections(40);
        m.set_bus_connected(true);
        let text = m.encode(&[]);
        assert_line(&text, "session_live_connections 40");
        assert_line(&text, "session_bus_connected 1");
        m.set_bus_connected(false);
        assert_line(&m.encode(&[]), "session_bus_connected 0");
    }

    #[test]
    fn the_bus_breaker_series_follow_the_counts_they_are_given() {
        let m = Metrics::new();
        m.set_bus_breaker(true, 1, 40);
        m.set_bus_breaker(false, 2, 65);
        let text = m.encode(&[]);
        assert_line(&text, "session_bus_breaker_open 0");
        assert_line(&text, "session_bus_breaker_trips_total 2");
        assert_line(&text, "session_bus_short_circuited_total 65");
    }

    #[test]
    fn the_sessions_gauge_reflects_each_scrape_and_zeroes_a_state_no_longer_reported() {
        let m = Metrics::new();
        let text = m.encode(&[("active", 5), ("revoked", 2)]);
        assert_line(&text, r#"session_sessions{state="active"} 5"#);
        assert_line(&text, r#"session_sessions{state="revoked"} 2"#);
        let text = m.encode(&[("active", 3)]);
        assert_line(&text, r#"session_sessions{state="active"} 3"#);
        assert_line(&text, r#"session_sessions{state="revoked"} 0"#);
    }

    #[test]
    fn every_family_is_named_session_and_the_exposition_is_terminated() {
        let m = Metrics::new();
        m.observe_http("GET", "/jwks", 200, 0.001);
        let text = m.encode(&[("active", 1)]);
        for line in text.lines().filter(|line| !line.starts_with("# EOF")) {
            let name = line.trim_start_matches("# HELP ").trim_start_matches("# TYPE ").trim_start_matches("# UNIT ");
            assert!(name.starts_with("session_"), "unprefixed line `{line}`");
        }
        assert_eq!(text.lines().last(), Some("# EOF"));
    }
}
