//! Typed helpers for the calls most tests make.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// A session as `POST /sessions` answered it.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub id: Uuid,
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

/// A token pair as `POST /session/refresh` answered it.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

impl TestApp {
    pub(crate) async fn create_session(&self, user_id: &str) -> Created {
        self.create_session_with(session_body(user_id)).await
    }

    /// `POST /sessions` with `body`, asserting 201.
    pub(crate) async fn create_session_with(&self, body: Value) -> Created {
        let resp = self.writer(Method::POST, "/sessions").json(&body).send().await.expect("request");
        let body = expect_json(resp, StatusCode::CREATED).await;
        Created {
            id: body["session"]["id"].as_str().and_then(|s| s.parse().ok()).expect("session.id"),
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            body,
        }
    }

    pub(crate) async fn refresh(&self, token: &str) -> Response {
        let body = json!({ "refresh_token": token });
        self.anon(Method::POST, "/session/refresh").json(&body).send().await.expect("request")
    }

    /// `POST /session/refresh`, asserting 200.
    pub(crate) async fn refresh_ok(&self, token: &str) -> Tokens {
        let body = expect_json(self.refresh(token).await, StatusCode::OK).await;
        Tokens {
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            body,
        }
    }

    pub(crate) async fn validate(&self, token: &str) -> Response {
        let body = json!({ "refresh_token": token });
        self.anon(Method::POST, "/session/validate").json(&body).send().await.expect("request")
    }

    pub(crate) async fn me(&self, access: &str) -> Response {
        self.player(Method::GET, "/session/me", access).send().await.expect("request")
    }

    /// `GET /sessions/{id}`, asserting 200.
    pub(crate) async fn get_session(&self, id: Uuid) -> Value {
        let resp = self.reader(Method::GET, &format!("/sessions/{id}")).send().await.expect("request");
        expect_json(resp, StatusCode::OK).await
    }

    /// The audit entries of a session, newest first.
    pub(crate) async fn audit(&self, id: Uuid) -> Vec<Value> {
        let resp = self.reader(Method::GET, &format!("/sessions/{id}/audit")).send().await.expect("request");
        let body = expect_json(resp, StatusCode::OK).await;
        body["entries"].as_array().expect("entries").clone()
    }

    /// `(action, outcome)` of every audit entry of a session, oldest first.
    pub(crate) async fn audit_trail(&self, id: Uuid) -> Vec<(String, String)> {
        let mut trail: Vec<_> = self
            .audit(id)
            .await
            .iter()
            .map(|e| (e["action"].as_str().unwrap_or("").to_owned(), e["outcome"].as_str().unwrap_or("").to_owned()))
            .collect();
        trail.reverse();
        trail
    }
}
