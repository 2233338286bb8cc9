//! Who is calling: service keys (service API) and access tokens (user API), as extractors, and
//! the configured form of a service key (`name:sha256hex:scopes`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use hex::FromHex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::session::{Actor, RequestContext, SessionRecord};
use crate::state::AppState;
use crate::tokens::AccessClaims;

/// Scopes a service key may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    /// The scope as operators configure it and as `insufficient_scope` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "sessions:read",
            Self::Write => "sessions:write",
        }
    }
}

/// A configured service key: `name:sha256-hex-of-key:scope[+scope]`, e.g.
/// `auth-service:9f86d0...:sessions:read+sessions:write`. Only the hash is configured, so the
/// spec may be shown and serialized as it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceKeySpec {
    pub name: String,
    pub sha256: [u8; 32],
    pub scopes: Vec<Scope>,
}

impl FromStr for ServiceKeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().splitn(3, ':');
        let (name, hash, scopes) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if name.is_empty() {
            return Err("service key: expected name:sha256hex:scopes".into());
        }
        let sha256 = <[u8; 32]>::from_hex(hash)
            .map_err(|_| "service key: the hash must be 64 hex characters (SHA-256)".to_owned())?;
        let scopes = scopes
            .split('+')
            .map(|s| match s {
                "sessions:read" => Ok(Scope::Read),
                "sessions:write" => Ok(Scope::Write),
                other => Err(format!("service key {name}: unknown scope {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { name: name.to_owned(), sha256, scopes })
    }
}

impl TryFrom<String> for ServiceKeySpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The configured form, which parses back to the same spec.
impl fmt::Display for ServiceKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        write!(f, "{}:{}:{}", self.name, hex::encode(self.sha256), scopes.join("+"))
    }
}

impl From<ServiceKeySpec> for String {
    fn from(spec: ServiceKeySpec) -> Self {
        spec.to_string()
    }
}

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
    hex::encode(Sha256::digest(key.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn service_key_specs_parse_and_reject_garbage() {
        let k: ServiceKeySpec = format!("auth:{HASH}:sessions:read+sessions:write").parse().unwrap();
        assert_eq!(k.name, "auth");
        assert_eq!(k.scopes, vec![Scope::Read, Scope::Write]);
        assert!(format!("auth:{HASH}:sessions:admin").parse::<ServiceKeySpec>().is_err());
        assert!("auth:abc:sessions:read".parse::<ServiceKeySpec>().is_err());
        assert!(format!(":{HASH}:sessions:read").parse::<ServiceKeySpec>().is_err());
        assert!(format!("auth:{}zz:sessions:read", &HASH[..62]).parse::<ServiceKeySpec>().is_err());
    }

    #[test]
    fn a_spec_is_shown_in_the_form_it_was_configured_in() {
        let configured = format!("auth:{HASH}:sessions:read+sessions:write");
        let k: ServiceKeySpec = configured.parse().unwrap();
        assert_eq!(k.to_string(), configured);
        assert_eq!(hash_service_key("test"), HASH);
    }
}
