//! Operators' views of the fleet: `GET /cluster/stats` (service API) and `GET /metrics`
//! (Prometheus text format, for the scraper; protect it by network policy like `/healthz`).

use axum::extract::State;
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::ServiceCaller;
use super::extract::Json;
use crate::http::auth::Scope;
use crate::http::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/cluster/stats", get(stats)).route("/metrics", get(metrics))
}

/// Sessions per stored state, as of the last background count (every `STATS_REFRESH_MS`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionCounts {
    pub active: i64,
    pub revoked: i64,
    pub expired: i64,
    /// When the store was counted; absent until the node's first count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counted_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<crate::census::Counts> for SessionCounts {
    fn from(c: crate::census::Counts) -> Self {
        Self { active: c.active, revoked: c.revoked, expired: c.expired, counted_at: c.counted_at }
    }
}

/// A live node as its liveness key describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStats {
    pub id: String,
    /// The address the node listens on, as it sees it.
    pub addr: String,
    /// Live WebSocket connections on the node, as of its last heartbeat.
    pub connections: u64,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /cluster/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStats {
    /// `redis` or `memory` (a single node).
    pub bus: &'static str,
    /// The node that answered.
    pub node: String,
    pub sessions: SessionCounts,
    /// Sessions with a live connection, summed over live nodes (one connection per session).
    pub online_sessions: u64,
    pub nodes: Vec<NodeStats>,
}

/// Active sessions (stored state; the expiry sweep turns lapsed ones `expired`), online sessions
/// and connections per live node.
#[utoipa::path(get, path = "/cluster/stats", tag = "service", security(("service_key" = ["sessions:read"])),
    responses((status = 200, description = "Counts and live nodes", body = ClusterStats)))]
pub async fn stats(State(state): State<AppState>, caller: ServiceCaller) -> Result<Json<ClusterStats>, ApiError> {
    caller.require(Scope::Read)?;
    let sessions = SessionCounts::from(state.census.latest());
    let nodes: Vec<NodeStats> = state
        .fleet
        .nodes()
        .await
        .into_iter()
        .map(|n| NodeStats {
            started_at: chrono::DateTime::from_timestamp_millis(n.started_at_ms).unwrap_or_default(),
            id: n.id,
            addr: n.addr,
            connections: n.connections,
        })
        .collect();
    Ok(Json(ClusterStats {
        bus: state.fleet.bus().kind(),
        node: state.fleet.node_id().to_owned(),
        sessions,
        online_sessions: nodes.iter().map(|n| n.connections).sum(),
        nodes,
    }))
}

/// Prometheus metrics of this node (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "public", responses((status = 200, description = "OpenMetrics text",
    body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let c = state.census.latest();
    state.metrics.set_connections(state.registry.len() as i64);
    let text = state.metrics.encode(&[("active", c.active), ("revoked", c.revoked), ("expired", c.expired)]);
    let mut response = text.into_response();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}
