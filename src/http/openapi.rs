//! The OpenAPI document, generated from the handlers' annotations. Committed as
//! `docs/openapi.json`; a test fails when the two differ.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{cluster, dto, public, sessions, user};

#[derive(OpenApi)]
#[openapi(
    info(title = "Session service", description = "Session authority for a multiplayer game platform. \
        Errors are RFC 9457 problem details with a stable `code` (docs/errors.md)."),
    paths(
        sessions::create, sessions::read, sessions::update, sessions::delete, sessions::extend,
        sessions::revoke, sessions::list, sessions::audit, sessions::user_audit,
        user::refresh, user::validate, user::me, user::logout, user::logout_all,
        public::jwks, public::healthz, public::readyz, public::openapi, cluster::stats, cluster::metrics,
    ),
    components(schemas(crate::error::Problem, dto::ListStatus)),
    modifiers(&Security),
    tags(
        (name = "service", description = "Service API: Bearer service key with scopes"),
        (name = "user", description = "User API: the player's own tokens"),
        (name = "public", description = "No authentication"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.description = Some("A service key (scopes sessions:read, sessions:write)".into());
        components.add_security_scheme("service_key", SecurityScheme::Http(key));
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        jwt.description = Some("The player's access token".into());
        components.add_security_scheme("access_token", SecurityScheme::Http(jwt));
    }
}
