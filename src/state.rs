//! The state every handler sees. Cheap to clone: everything is behind an `Arc`.

use std::sync::Arc;

use crate::http::dto::SessionView;
use crate::session::SessionRecord;

use crate::census::Census;
use crate::fleet::Fleet;
use crate::http::auth::ServiceKeys;
use crate::metrics::Metrics;
use crate::registry::LiveConnections;
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
    pub registry: Arc<LiveConnections>,
    pub gateway: Arc<Gateway>,
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
    /// Session counts for the operator endpoints, refreshed in the background.
    pub census: Arc<Census>,
}

impl AppState {
    /// The API views of sessions of one user, with their presence across the cluster.
    pub async fn views(&self, sessions: Vec<SessionRecord>) -> Vec<SessionView> {
        let Some(user) = sessions.first().map(|s| s.user_id.clone()) else { return Vec::new() };
        let online = self.fleet.online_sessions(&user).await;
        sessions
            .into_iter()
            .map(|s| {
                let is_online = online.contains(&s.id);
                self.render(s, is_online)
            })
            .collect()
    }

    /// The API view of one session, with its presence across the cluster.
    pub async fn view(&self, session: SessionRecord) -> SessionView {
        let online = self.fleet.online_sessions(&session.user_id).await.contains(&session.id);
        self.render(session, online)
    }

    /// The view of a session created a moment ago: it cannot have a connection yet.
    pub fn new_view(&self, session: SessionRecord) -> SessionView {
        self.render(session, false)
    }

    fn render(&self, session: SessionRecord, online: bool) -> SessionView {
        // Last activity: live from this node's registry, else as last flushed to the store.
        let live_seen =
            self.registry.get(&session.id).and_then(|c| chrono::DateTime::from_timestamp_millis(c.last_seen_ms()));
        SessionView::new(session, self.sessions.now(), live_seen, online)
    }
}
