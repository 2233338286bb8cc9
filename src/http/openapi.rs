//! The OpenAPI document, generated from the handlers' annotations. Committed as
//! `docs/openapi.json`; a test fails when the two differ, and the contract test
//! (`tests/api/contract.rs`) holds the server to it. Handlers declare their success responses and
//! their own errors; [`Errors`] adds the errors that follow from an operation's shape (a body, a
//! path id, a service key...) so that no operation forgets one.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Header, ObjectBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use super::{dto, operator, public, revocations, sessions, user};

#[derive(OpenApi)]
#[openapi(
    info(title = "Session service", description = "Session authority for a multiplayer game platform. \
        Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code` \
        (docs/errors.md)."),
    paths(
        sessions::create, sessions::read, sessions::update, sessions::delete, sessions::extend,
        sessions::revoke, sessions::list, sessions::audit, sessions::user_audit, revocations::revocations,
        user::refresh, user::validate, user::me, user::logout, user::logout_all,
        public::jwks, public::healthz, public::readyz, public::openapi, operator::stats, operator::metrics,
    ),
    components(schemas(crate::http::error::Problem, dto::ListStatus)),
    modifiers(&Security, &MetadataSchema, &OptionalBodies, &Errors),
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

/// `Metadata`: the rules of `session::validate::metadata` that a schema can say (the 4096-byte
/// bound cannot be, so only its description says it).
struct MetadataSchema;

/// No NUL character (the one string rule of metadata).
const NO_NUL: &str = "^[^\\u0000]*$";

impl Modify for MetadataSchema {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let key = ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL));
        let metadata = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A JSON object of at most 4096 bytes serialized; no key or string holds NUL (\\u0000)"))
            .property_names(Some(key))
            .additional_properties(Some(Ref::from_schema_name("MetadataValue")));
        let scalar = ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Null, Type::Boolean, Type::Number]));
        let value = AnyOfBuilder::new()
            .item(scalar)
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)))
            .item(ArrayBuilder::new().items(Ref::from_schema_name("MetadataValue")))
            .item(Ref::from_schema_name("Metadata"));
        components.schemas.insert("Metadata".into(), RefOr::T(metadata.into()));
        components.schemas.insert("MetadataValue".into(), RefOr::T(value.into()));
    }
}

/// An optional body is an absent one, not a JSON `null`: utoipa writes `Option<T>` bodies as
/// `oneOf [null, T]`, which would admit a `null` body the server refuses. This keeps `T` and
/// says that the body may be left out.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for item in api.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            let bodies = ops.into_iter().flatten().filter_map(|op| op.request_body.as_mut());
            for body in bodies.filter(|b| b.required.is_none()) {
                body.description = Some("Optional: an empty body without `Content-Type` takes the defaults".into());
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema {
                        let not_null = one.items.iter().find(|i| !matches!(i, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null)));
                        content.schema = not_null.cloned();
                    }
                }
            }
        }
    }
}

/// Adds to every operation the error responses its shape implies, and serves every error as
/// `application/problem+json` with the `Problem` schema.
struct Errors;

/// Operations that answer without the store (no `503 store_unavailable`).
const STORELESS: [&str; 3] = ["/.well-known/jwks.json", "/healthz", "/openapi.json"];

impl Modify for Errors {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut api.paths.paths {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                add_errors(path, op);
            }
        }
    }
}

/// What an operation takes, as far as its errors go.
struct Shape {
    body: bool,
    refresh_body: bool,
    path_id: bool,
    path_user: bool,
    query: bool,
    service_key: bool,
    access_token: bool,
}

impl Shape {
    fn of(op: &Operation) -> Self {
        let params = op.parameters.as_deref().unwrap_or_default();
        let has = |place: ParameterIn, name: Option<&str>| {
            params.iter().any(|p| p.parameter_in == place && name.is_none_or(|n| p.name == n))
        };
        let security = serde_json::to_string(&op.security).unwrap_or_default();
        let body = serde_json::to_string(&op.request_body).unwrap_or_default();
        Self {
            body: op.request_body.is_some(),
            refresh_body: body.contains("RefreshRequest"),
            path_id: has(ParameterIn::Path, Some("id")),
            path_user: has(ParameterIn::Path, Some("user_id")),
            query: has(ParameterIn::Query, None),
            service_key: security.contains("\"service_key\""),
            access_token: security.contains("\"access_token\""),
        }
    }

    /// The codes of a 400, if the operation can answer one.
    fn bad_request(&self) -> Option<String> {
        let mut codes = Vec::new();
        if self.body || self.query {
            codes.push("`bad_request`: the body or query string does not parse, or has unknown fields");
        }
        if (self.body && !self.refresh_body) || self.query || self.path_user {
            codes.push("`invalid_field`: a field breaks a rule (named in `detail`)");
        }
        if self.path_id {
            codes.push("`invalid_id`: the path id is not a UUID");
        }
        (!codes.is_empty()).then(|| codes.join("; "))
    }

    fn unauthorized(&self) -> Option<&'static str> {
        if self.service_key {
            Some("`unauthorized`: no valid service key")
        } else if self.access_token {
            Some(
                "`invalid_token`, `token_expired`: not a valid access token; `session_revoked`, \
                 `session_expired`: its session is no longer active",
            )
        } else {
            None
        }
    }
}

fn add_errors(path: &str, op: &mut Operation) {
    let shape = Shape::of(op);
    let mut errors: Vec<(&str, String)> = Vec::new();
    if let Some(codes) = shape.bad_request() {
        errors.push(("400", codes));
    }
    if let Some(codes) = shape.unauthorized() {
        errors.push(("401", codes.into()));
    }
    if shape.service_key {
        errors.push(("403", "`insufficient_scope`: the key lacks the scope this operation needs".into()));
    }
    if shape.body {
        errors.push(("408", "`request_timeout`: the body did not arrive in time".into()));
        errors.push(("413", "`payload_too_large`: the body exceeds the configured limit (64 KiB by default)".into()));
        errors.push(("415", "`unsupported_media_type`: a body without `Content-Type: application/json`".into()));
    }
    errors.push(("414", "`uri_too_long`: the request target exceeds 8 KiB".into()));
    errors.push(("431", "`headers_too_large`: more than 64 header fields, or more than 16 KiB of them".into()));
    if !STORELESS.contains(&path) {
        errors.push(("503", "`store_unavailable`: the database cannot be reached".into()));
    }
    let responses = &mut op.responses.responses;
    for (status, description) in errors {
        responses
            .entry(status.into())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    for (status, response) in responses.iter_mut() {
        if let (false, RefOr::T(response)) = (status.starts_with(['1', '2', '3']), response) {
            let problem = Content::new(Some(Ref::from_schema_name("Problem")));
            response.content = [("application/problem+json".to_owned(), problem)].into_iter().collect();
            if status == "401" {
                let header = Header::new(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"])));
                response.headers.insert("WWW-Authenticate".into(), header);
            }
        }
    }
}
