//! The state every handler sees. Cheap to clone: everything is behind an `Arc`.

use std::sync::Arc;

use crate::http::auth::ServiceKeys;
use crate::session::SessionService;
use crate::store::Store;
use crate::tokens::AccessTokens;

#[derive(Clone)]
pub struct AppState {
    pub sessions: Arc<SessionService>,
    pub store: Arc<dyn Store>,
    pub access: Arc<AccessTokens>,
    pub service_keys: Arc<ServiceKeys>,
}
