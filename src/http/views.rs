//! The REST views of sessions: a session record with its presence across the fleet (online
//! anywhere, last seen live on this node or as last flushed to the store).

use crate::http::dto::SessionView;
use crate::session::SessionRecord;
use crate::state::AppState;

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
