//! Who is calling: service keys (service API) and access tokens (user API), as extractors.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::{Scope, ServiceKeySpec};
use crate::http::error::ApiError;
use crate::session::{Actor, RequestContext, SessionRecord};
use crate::state::AppState;
use crate::tokens::AccessClaims;

/// Configured service keys, looked up by the SHA-256 of the presented key. Keys are high-entropy
/// random strings, so a hash lookup leaks nothing useful through timing.
#[derive(Debug, Default)]
pub struct ServiceKeys {
    by_hash: HashMap<[u8; 32], ServiceCaller>,
}

impl ServiceKeys {
    pub fn new(specs: &[ServiceKeySpec]) -> Self {
        let by_hash = specs
            .iter()
            .map(|s| (s.sha256, ServiceCaller { name: s.name.clone(), scopes: s.scopes.clone() }))
            .collect();
        Self { by_hash }
    }

    pub fn authenticate(&self, presented: &str) -> Option<&ServiceCaller> {
        self.by_hash.get(&<[u8; 32]>::from(Sha256::digest(presented.as_bytes())))
    }
}

/// SHA-256 of a service key in hex: the form operators configure.
pub fn hash_service_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An authenticated caller of the service API.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub name: String,
    scopes: Vec<Scope>,
}

impl ServiceCaller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope(scope.as_str()))
        }
    }

    pub fn context(&self, peer: &Peer) -> RequestContext {
        peer.context(Actor::Service(self.name.clone()))
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is a non-empty one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        state.service_keys.authenticate(key).cloned().ok_or(ApiError::Unauthorized)
    }
}

/// A player authenticated by an access token whose session is still active.
#[derive(Debug, Clone)]
pub struct Player {
    pub claims: AccessClaims,
    pub session: SessionRecord,
}

impl Player {
    pub fn context(&self, peer: &Peer) -> RequestContext {
        peer.context(Actor::User(self.claims.sub.clone()))
    }
}

impl FromRequestParts<AppState> for Player {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::InvalidToken)?;
        let (claims, session) = state.sessions.authenticate(token).await?;
        Ok(Self { claims, session })
    }
}

/// Where a request came from: the peer address and the User-Agent.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Peer {
    pub fn context(&self, actor: Actor) -> RequestContext {
        RequestContext { actor, ip: self.ip.clone(), user_agent: self.user_agent.clone() }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        let user_agent =
            parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).filter(|ua| ua.len() <= 512).map(str::to_owned);
        Ok(Self { ip, user_agent })
    }
}
