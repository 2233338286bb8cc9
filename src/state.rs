//! The state every handler sees. Cheap to clone: everything is behind an `Arc`.

use std::sync::Arc;

use crate::http::auth::ServiceKeys;
use crate::registry::Registry;
use crate::session::SessionService;
use crate::store::Store;
use crate::tokens::AccessTokens;
use crate::ws::Gateway;

#[derive(Clone)]
pub struct AppState {
    pub sessions: Arc<SessionService>,
    pub store: Arc<dyn Store>,
    pub access: Arc<AccessTokens>,
    pub service_keys: Arc<ServiceKeys>,
    pub registry: Arc<Registry>,
    pub gateway: Arc<Gateway>,
}

impl AppState {
    /// The API view of a session, with its presence on this node.
    pub fn view(&self, session: crate::session::SessionRecord) -> crate::http::dto::SessionView {
        let live_seen =
            self.registry.get(&session.id).and_then(|c| chrono::DateTime::from_timestamp_millis(c.last_seen_ms()));
        crate::http::dto::SessionView::new(session, self.sessions.now(), live_seen)
    }
}
