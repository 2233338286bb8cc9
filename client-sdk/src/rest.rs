//! REST clients: [`SessionClient`] for the user API and [`ServiceClient`] for the service API.
//!
//! Both are cheap to clone (the `reqwest::Client` inside is a handle to one connection pool);
//! share one per process rather than building one per call.

use std::fmt;

use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::proto::{
    Created, MySessions, NewSession, Problem, RefreshRequest, RevocationPage, Revoked, Session, Tokens,
    ValidateResponse,
};
use crate::Error;

/// Client of the user API (`/session/...`), used by game clients and by the gateway on a
/// player's behalf. Authenticates each call with the token it is given.
#[derive(Debug, Clone)]
pub struct SessionClient {
    base_url: String,
    http: reqwest::Client,
}

impl SessionClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`), with a default
    /// `reqwest::Client`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_client(base_url, reqwest::Client::new())
    }

    /// A client that sends through `http`, so timeouts and pooling are the caller's choice.
    pub fn with_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        Self { base_url: trim_base(base_url.into()), http }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /session/refresh`: spends `refresh_token` and returns the next pair. Always keep
    /// the returned refresh token: presenting a spent one after the grace window revokes the
    /// session as stolen.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, Error> {
        let body = RefreshRequest { refresh_token: refresh_token.to_owned() };
        json(self.http.post(self.url("/session/refresh")).json(&body)).await
    }

    /// `POST /session/validate`: the session `refresh_token` belongs to, without spending it.
    pub async fn validate(&self, refresh_token: &str) -> Result<Session, Error> {
        let body = RefreshRequest { refresh_token: refresh_token.to_owned() };
        let answer: ValidateResponse = json(self.http.post(self.url("/session/validate")).json(&body)).await?;
        match answer {
            ValidateResponse { valid: true, session: Some(session) } => Ok(session),
            // The server answers invalid tokens with a 401; this is the same verdict, in a 200.
            _ => Err(Error::Api { status: 200, code: "invalid_token".to_owned(), detail: None }),
        }
    }

    /// `GET /session/me`: the caller's user id, session id and all their active sessions.
    pub async fn me(&self, access_token: &str) -> Result<MySessions, Error> {
        json(self.http.get(self.url("/session/me")).bearer_auth(access_token)).await
    }

    /// `DELETE /session/{id}`: logs out one of the caller's devices (possibly this one).
    pub async fn logout(&self, access_token: &str, session_id: Uuid) -> Result<(), Error> {
        let url = self.url(&format!("/session/{}", session_id.as_hyphenated()));
        send(self.http.delete(url).bearer_auth(access_token)).await.map(drop)
    }

    /// `DELETE /session/all`: logs out all the caller's devices, or all but this one when
    /// `except_current` is set. Returns how many sessions were revoked.
    pub async fn logout_all(&self, access_token: &str, except_current: bool) -> Result<u64, Error> {
        let path = if except_current { "/session/all?except=current" } else { "/session/all" };
        let answer: Revoked = json(self.http.delete(self.url(path)).bearer_auth(access_token)).await?;
        Ok(answer.revoked)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Client of the service API (`/sessions/...`), used by the auth-service. Authenticates with a
/// service key, which `Debug` does not print.
#[derive(Clone)]
pub struct ServiceClient {
    base_url: String,
    service_key: String,
    http: reqwest::Client,
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A client for the server at `base_url` using `service_key`, with a default
    /// `reqwest::Client`.
    pub fn new(base_url: impl Into<String>, service_key: impl Into<String>) -> Self {
        Self::with_client(base_url, service_key, reqwest::Client::new())
    }

    /// A client that sends through `http`.
    pub fn with_client(base_url: impl Into<String>, service_key: impl Into<String>, http: reqwest::Client) -> Self {
        Self { base_url: trim_base(base_url.into()), service_key: service_key.into(), http }
    }

    /// `POST /sessions`: opens a session after a login; returns it with its first token pair.
    pub async fn create_session(&self, new: &NewSession) -> Result<Created, Error> {
        let url = format!("{}/sessions", self.base_url);
        json(self.http.post(url).bearer_auth(&self.service_key).json(new)).await
    }

    /// `GET /revocations`: the sessions revoked after `after` (every revocation still mattering
    /// without it), at most `limit` (the server's default without it). With nothing new, the
    /// server waits up to `wait` (capped by its own maximum) for a revocation. Needs the
    /// `sessions:read` scope.
    pub async fn revocations(
        &self,
        after: Option<&str>,
        wait: std::time::Duration,
        limit: Option<u32>,
    ) -> Result<RevocationPage, Error> {
        let url = format!("{}/revocations", self.base_url);
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let mut query: Vec<(&str, String)> = vec![("wait", wait_ms.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        json(self.http.get(url).bearer_auth(&self.service_key).query(&query)).await
    }
}

fn trim_base(mut base_url: String) -> String {
    while base_url.ends_with('/') {
        base_url.pop();
    }
    base_url
}

/// Sends `request` and decodes a successful answer's JSON body as `T`.
async fn json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, Error> {
    let (status, body) = send(request).await?;
    serde_json::from_slice(&body).map_err(|source| Error::Decode { status: status.as_u16(), source })
}

/// Sends `request` and returns a 2xx answer's status and body; any other status becomes
/// [`Error::Api`] (problem details) or [`Error::Decode`] (a body that is not problem details).
async fn send(request: RequestBuilder) -> Result<(StatusCode, Vec<u8>), Error> {
    let response = request.send().await?;
    let status = response.status();
    let body = response.bytes().await?.to_vec();
    if status.is_success() {
        return Ok((status, body));
    }
    Err(problem_error(status, &body))
}

/// The error for a non-2xx answer with `body`. The HTTP status wins over the body's `status`
/// member should they differ: it is what actually happened on the wire.
fn problem_error(status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => Error::Api { status: status.as_u16(), code: p.code, detail: p.detail },
        Err(source) => Error::Decode { status: status.as_u16(), source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bodies_become_api_errors_and_anything_else_a_decode_error() {
        let body = br#"{"type":"urn:session-service:problem:session_revoked","title":"the session has been revoked","status":401,"code":"session_revoked"}"#;
        match problem_error(StatusCode::UNAUTHORIZED, body) {
            Error::Api { status: 401, code, detail: None } => assert_eq!(code, "session_revoked"),
            other => panic!("{other:?}"),
        }
        let html = b"<html><body>502 Bad Gateway</body></html>";
        assert!(matches!(problem_error(StatusCode::BAD_GATEWAY, html), Error::Decode { status: 502, .. }));
    }

    #[test]
    fn base_urls_lose_trailing_slashes_and_keys_stay_out_of_debug() {
        let c = SessionClient::new("http://127.0.0.1:8080//");
        assert_eq!(c.url("/session/me"), "http://127.0.0.1:8080/session/me");
        let s = ServiceClient::new("http://localhost:8080/", "sk_live_secret");
        assert!(!format!("{s:?}").contains("sk_live_secret"));
    }
}
