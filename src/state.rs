//! The state every handler sees. Cheap to clone: everything is behind an `Arc`.

use std::sync::Arc;

use crate::census::Census;
use crate::events::feed::RevocationFeed;
use crate::fleet::Fleet;
use crate::http::auth::ServiceKeys;
use crate::metrics::Metrics;
use crate::registry::LiveConnections;
use crate::session::SessionService;
use crate::tokens::AccessTokens;
use crate::ws::Gateway;

#[derive(Clone)]
pub struct AppState {
    pub sessions: Arc<SessionService>,
    pub access: Arc<AccessTokens>,
    pub service_keys: Arc<ServiceKeys>,
    pub registry: Arc<LiveConnections>,
    pub gateway: Arc<Gateway>,
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
    /// The revocation feed (`GET /revocations`) and its long-poll waiters.
    pub feed: Arc<RevocationFeed>,
    /// Session counts for the operator endpoints, refreshed in the background.
    pub census: Arc<Census>,
}
