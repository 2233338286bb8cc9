//! [`Verifier`] (feature `verifier`): local verification of the service's access tokens for Rust
//! services, with the service's revocations refused within about a second.
//!
//! - Keys: the JWKS (`GET /.well-known/jwks.json`) is fetched on first use and cached; a token
//!   signed with an unknown `kid` makes it fetch again, at most once per
//!   [`VerifierConfig::jwks_min_interval`].
//! - Checks: EdDSA signature, `iss`, `aud`, `exp` and `nbf` with [`VerifierConfig::leeway`].
//! - Revocations: a set of revoked session ids, fed by [`Verifier::follow_feed`] (a background
//!   long-poll of `GET /revocations`) or [`Verifier::follow_nats`] (a core subscription to
//!   `<prefix>session.revoked`), or by hand with [`Verifier::revoke`]. An entry is dropped once
//!   no token of its session can still be valid.
//!
//! ```no_run
//! # async fn demo(token: &str) -> Result<(), session_client::verifier::VerifyError> {
//! use session_client::verifier::{Verifier, VerifierConfig};
//! let verifier = Verifier::new(VerifierConfig::new("http://127.0.0.1:8080", "session-service", "game-platform"));
//! let _feed = verifier.follow_feed("sk_live_...");
//! let claims = verifier.verify(token).await?;
//! println!("user {} on session {}", claims.sub, claims.sid);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Error, ServiceClient};

/// How a [`Verifier`] checks tokens and where it gets its keys.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Base URL of the session service (its JWKS and revocation feed).
    pub base_url: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf` [default: 5 s].
    pub leeway: Duration,
    /// At most one JWKS fetch per this interval, however many unknown `kid`s arrive
    /// [default: 30 s].
    pub jwks_min_interval: Duration,
    /// The service's longest access-token lifetime: how long a revocation heard on NATS (which
    /// carries no expiry) is kept [default: 10 min].
    pub max_access_ttl: Duration,
    /// How long one long-poll of the feed asks the server to wait [default: 25 s].
    pub feed_wait: Duration,
    /// Longest pause between feed reads after errors (the backoff doubles from 100 ms up to
    /// it) [default: 10 s].
    pub feed_max_backoff: Duration,
}

impl VerifierConfig {
    /// The defaults for the service at `base_url` issuing tokens as `issuer` for `audience`.
    pub fn new(base_url: impl Into<String>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(5),
            jwks_min_interval: Duration::from_secs(30),
            max_access_ttl: Duration::from_secs(600),
            feed_wait: Duration::from_secs(25),
            feed_max_backoff: Duration::from_secs(10),
        }
    }
}

/// The claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: Uuid,
    /// Token id.
    pub jti: Uuid,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Device id.
    pub did: String,
    /// Platform.
    pub plat: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, not EdDSA, no `kid`, or claims missing.
    #[error("malformed token")]
    Malformed,
    /// Signed with a key the JWKS does not have (after a re-fetch, or while re-fetching waits
    /// for the rate limit).
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// Past `exp` (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf` (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// Its session has been revoked.
    #[error("session {0} revoked")]
    Revoked(Uuid),
    /// The JWKS could not be fetched.
    #[error("cannot fetch the JWKS")]
    Jwks(#[source] Error),
}

/// Verifies access tokens locally; cheap to clone (clones share keys and revocations).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
    /// Revoked session id → when its entry can go.
    revoked: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

/// A JWKS as the service serves it.
#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("base_url", &self.inner.config.base_url).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `config` and a default `reqwest::Client`. Fetches nothing yet.
    pub fn new(config: VerifierConfig) -> Self {
        Self::with_client(config, reqwest::Client::new())
    }

    /// A verifier that fetches through `http`.
    pub fn with_client(mut config: VerifierConfig, http: reqwest::Client) -> Self {
        while config.base_url.ends_with('/') {
            config.base_url.pop();
        }
        let inner = Inner {
            config,
            http,
            keys: tokio::sync::Mutex::default(),
            revoked: Mutex::default(),
            fetches: AtomicU64::new(0),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Verifies `token` (signature, `iss`, `aud`, `exp`, `nbf`) and refuses it if its session is
    /// revoked. Fetches the JWKS on first use and when the token names an unknown key (rate
    /// limited).
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Malformed);
        }
        let kid = header.kid.ok_or(VerifyError::Malformed)?;
        let key = self.key(&kid).await?;
        let config = &self.inner.config;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|e| refusal(&e))?.claims;
        if self.is_revoked(claims.sid) {
            return Err(VerifyError::Revoked(claims.sid));
        }
        Ok(claims)
    }

    /// Whether `session_id` is in the revoked set (and its entry still matters).
    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        let now = Utc::now();
        self.revoked().get(&session_id).is_some_and(|until| *until > now)
    }

    /// Adds `session_id` to the revoked set until `not_after` (an entry already past it is not
    /// kept). What the feed and NATS followers call; callable by hand too.
    pub fn revoke(&self, session_id: Uuid, not_after: DateTime<Utc>) {
        let now = Utc::now();
        let mut revoked = self.revoked();
        revoked.retain(|_, until| *until > now);
        if not_after > now {
            let until = revoked.entry(session_id).or_insert(not_after);
            *until = (*until).max(not_after);
        }
    }

    /// How many revocations are kept, after dropping those that no longer matter.
    pub fn revoked_count(&self) -> usize {
        let now = Utc::now();
        let mut revoked = self.revoked();
        revoked.retain(|_, until| *until > now);
        revoked.len()
    }

    /// How many times the JWKS has been fetched.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        self.inner.revoked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key `kid`, fetching the JWKS if it is unknown and the rate limit allows.
    async fn key(&self, kid: &str) -> Result<DecodingKey, VerifyError> {
        let mut keys = self.inner.keys.lock().await;
        if let Some(key) = keys.by_kid.get(kid) {
            return Ok(key.clone());
        }
        let allowed = keys.fetched_at.is_none_or(|at| at.elapsed() >= self.inner.config.jwks_min_interval);
        if !allowed {
            return Err(VerifyError::UnknownKey(kid.to_owned()));
        }
        keys.fetched_at = Some(Instant::now());
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        keys.by_kid = self.fetch_jwks().await?;
        keys.by_kid.get(kid).cloned().ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, DecodingKey>, VerifyError> {
        let url = format!("{}/.well-known/jwks.json", self.inner.config.base_url);
        let response = self.inner.http.get(url).send().await.map_err(|e| VerifyError::Jwks(Error::Transport(e)))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| VerifyError::Jwks(Error::Transport(e)))?;
        let jwks: Jwks =
            serde_json::from_slice(&body).map_err(|source| VerifyError::Jwks(Error::Decode { status, source }))?;
        let usable = jwks.keys.into_iter().filter(|k| k.kty == "OKP" && k.crv == "Ed25519");
        Ok(usable.filter_map(|k| Some((k.kid?, DecodingKey::from_ed_components(&k.x).ok()?))).collect())
    }

    /// Follows the service's revocation feed in the background with `service_key` (scope
    /// `sessions:read`): one long-poll after another, backing off on errors. Stops when the
    /// handle is dropped.
    pub fn follow_feed(&self, service_key: impl Into<String>) -> Following {
        let client =
            ServiceClient::with_client(self.inner.config.base_url.clone(), service_key.into(), self.inner.http.clone());
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let verifier = self.clone();
        Following { task: tokio::spawn(verifier.feed_loop(client, synced_tx)), synced }
    }

    async fn feed_loop(self, client: ServiceClient, synced: tokio::sync::watch::Sender<bool>) {
        let config = &self.inner.config;
        let first_backoff = Duration::from_millis(100);
        let (mut cursor, mut backoff) = (None::<String>, first_backoff);
        loop {
            // The first read answers at once: the revocations still mattering.
            let wait = if cursor.is_some() { config.feed_wait } else { Duration::ZERO };
            match client.revocations(cursor.as_deref(), wait, None).await {
                Ok(page) => {
                    for r in &page.revocations {
                        self.revoke(r.session_id, r.not_after);
                    }
                    cursor = Some(page.cursor);
                    backoff = first_backoff;
                    if !page.has_more {
                        synced.send_replace(true);
                    }
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(config.feed_max_backoff);
                }
            }
        }
    }

    /// Follows `<subject_prefix>session.revoked` on NATS through `client` (a core subscription:
    /// the body is the CloudEvents envelope; `data.session_id` is revoked for the longest access
    /// lifetime from `time`). Subscribed when this returns; stops when the handle is dropped.
    ///
    /// # Errors
    /// The subscription could not be made.
    pub async fn follow_nats(
        &self,
        client: async_nats::Client,
        subject_prefix: &str,
    ) -> Result<Following, async_nats::SubscribeError> {
        let mut messages = client.subscribe(format!("{subject_prefix}session.revoked")).await?;
        // The server knows of the subscription once the flush returns.
        let _ = client.flush().await;
        let verifier = self.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = futures::StreamExt::next(&mut messages).await {
                if let Some((session_id, at)) = revoked_event(&message.payload) {
                    let ttl = chrono::Duration::from_std(verifier.inner.config.max_access_ttl).unwrap_or_default();
                    verifier.revoke(session_id, at + ttl);
                }
            }
        });
        let (_, synced) = tokio::sync::watch::channel(true);
        Ok(Following { task, synced })
    }
}

/// The session id and time of a `session.revoked` envelope; `None` for anything else.
fn revoked_event(body: &[u8]) -> Option<(Uuid, DateTime<Utc>)> {
    #[derive(Deserialize)]
    struct Envelope {
        time: DateTime<Utc>,
        data: Data,
    }
    #[derive(Deserialize)]
    struct Data {
        session_id: Uuid,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    Some((envelope.data.session_id, envelope.time))
}

fn refusal(e: &jsonwebtoken::errors::Error) -> VerifyError {
    match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        _ => VerifyError::Malformed,
    }
}

/// A background follower of revocations; dropping it stops it.
#[derive(Debug)]
pub struct Following {
    task: JoinHandle<()>,
    synced: tokio::sync::watch::Receiver<bool>,
}

impl Following {
    /// Resolves once the follower has read up to the feed's end once (at once for NATS).
    pub async fn synced(&mut self) {
        let _ = self.synced.wait_for(|s| *s).await;
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_envelope_reads_and_anything_else_is_ignored() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"specversion": "1.0", "type": "session.revoked", "time": "2026-01-02T03:04:05Z",
            "data": {"session_id": id, "user_id": "u1", "reason": "logout"}});
        let (sid, at) = revoked_event(body.to_string().as_bytes()).unwrap();
        assert_eq!((sid, at.to_rfc3339()), (id, "2026-01-02T03:04:05+00:00".to_owned()));
        assert!(revoked_event(b"not json").is_none());
        assert!(revoked_event(br#"{"time":"2026-01-02T03:04:05Z","data":{"session_id":"nope"}}"#).is_none());
    }

    #[test]
    fn entries_past_their_end_are_not_kept() {
        let v = Verifier::new(VerifierConfig::new("http://127.0.0.1:1", "iss", "aud"));
        let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
        v.revoke(gone, Utc::now() - chrono::Duration::seconds(1));
        v.revoke(kept, Utc::now() + chrono::Duration::minutes(5));
        assert!(!v.is_revoked(gone) && v.is_revoked(kept));
        assert_eq!(v.revoked_count(), 1);
    }
}
