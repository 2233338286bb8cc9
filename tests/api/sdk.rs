//! The service driven through the SDK's own clients (`ServiceClient`, `SessionClient`), as the
//! auth-service and game clients drive it: what the SDK decodes is what the server sent, and
//! refusals come back as the SDK's `Error` with the problem's stable code.

use reqwest::StatusCode;
use serde_json::json;
use session_client::proto::{Device, NewSession, SessionStatus};
use session_client::{Error, ServiceClient, SessionClient};

use crate::helpers::*;

impl TestApp {
    /// The auth-service's client, with the read+write key.
    fn sdk_service(&self) -> ServiceClient {
        ServiceClient::with_client(self.url("/"), &self.writer_key, self.client.clone())
    }

    /// A game client's client.
    fn sdk_user(&self) -> SessionClient {
        SessionClient::with_client(self.url(""), self.client.clone())
    }
}

/// A login from a phone, with every optional field the SDK can send.
fn login(user_id: &str) -> NewSession {
    let mut device = Device::new("install-8f2c", "ios");
    device.name = Some("Sam's phone".into());
    device.app_version = Some("3.4.1".into());
    let mut new = NewSession::new(user_id, device);
    new.ip = Some("203.0.113.7".into());
    new.user_agent = Some("Game/3.4.1 iOS/17.2".into());
    new.metadata = json!({ "login_method": "password" }).as_object().cloned();
    new
}

/// The SDK's error for a refused call: its status and stable code.
fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> (u16, String) {
    match result {
        Err(Error::Api { status, code, .. }) => (status, code),
        other => panic!("expected a problem, got {other:?}"),
    }
}

async fn a_session_opened_through_the_sdk_refreshes_validates_and_lists_itself(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.sdk_service().create_session(&login("user-1")).await.expect("created");
    let session = &created.session;
    assert_eq!((session.user_id.as_str(), session.status), ("user-1", SessionStatus::Active));
    assert_eq!(session.device.name.as_deref(), Some("Sam's phone"));
    assert_eq!((session.ip.as_deref(), session.online), (Some("203.0.113.7"), Some(false)));
    assert_eq!(session.metadata["login_method"], "password");
    assert_eq!(created.token_type, "Bearer");

    let user = app.sdk_user();
    let tokens = user.refresh(&created.refresh_token).await.expect("refreshed");
    assert_eq!(tokens.session_id, session.id);
    assert_ne!(tokens.refresh_token, created.refresh_token, "the refresh token rotated");
    assert_eq!(user.validate(&tokens.refresh_token).await.expect("valid").id, session.id);

    let me = user.me(&tokens.access_token).await.expect("me");
    assert_eq!((me.user_id.as_str(), me.session_id), ("user-1", session.id));
    let listed: Vec<_> = me.sessions.iter().map(|s| (s.id, s.current)).collect();
    assert_eq!(listed, [(session.id, Some(true))]);
    let raw = expect_json(app.me(&tokens.access_token).await, StatusCode::OK).await;
    assert_eq!(serde_json::to_value(&me).expect("serializes"), raw, "the SDK kept every field the server sent");
}

async fn logging_out_through_the_sdk_revokes_the_session_and_its_tokens_answer_session_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.sdk_service().create_session(&login("user-1")).await.expect("created");
    let user = app.sdk_user();
    user.logout(&created.access_token, created.session.id).await.expect("logged out");
    assert_eq!(app.get_session(created.session.id).await["revoke_reason"], "logout");
    assert_eq!(refused(user.refresh(&created.refresh_token).await), (401, "session_revoked".to_owned()));
    let err = user.me(&created.access_token).await.expect_err("refused");
    assert_eq!((err.status(), err.code()), (Some(401), Some("session_revoked")));
}

async fn logging_out_everywhere_but_here_through_the_sdk_counts_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let service = app.sdk_service();
    let here = service.create_session(&login("user-1")).await.expect("created");
    for _ in 0..2 {
        service.create_session(&login("user-1")).await.expect("created");
    }
    let user = app.sdk_user();
    assert_eq!(user.logout_all(&here.access_token, true).await.expect("logged out"), 2);
    let me = user.me(&here.access_token).await.expect("me");
    assert_eq!(me.sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [here.session.id]);
}

async fn calls_the_server_refuses_come_back_as_the_sdk_error_with_their_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let stranger = ServiceClient::with_client(app.url(""), "sk_not_a_key", app.client.clone());
    assert_eq!(refused(stranger.create_session(&login("user-1")).await), (401, "unauthorized".to_owned()));
    let reader = ServiceClient::with_client(app.url(""), &app.reader_key, app.client.clone());
    match reader.create_session(&login("user-1")).await {
        Err(Error::Api { status: 403, code, detail: Some(detail) }) => {
            assert_eq!(code, "insufficient_scope");
            assert!(detail.contains("sessions:write"), "{detail}");
        }
        other => panic!("expected insufficient_scope, got {other:?}"),
    }
    let mut bad_ip = login("user-1");
    bad_ip.ip = Some("not-an-ip".into());
    assert_eq!(refused(app.sdk_service().create_session(&bad_ip).await), (400, "invalid_field".to_owned()));
    let forged = "rt1.0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f.0.AAAA";
    assert_eq!(refused(app.sdk_user().refresh(forged).await), (401, "invalid_token".to_owned()));
}

both!(
    a_session_opened_through_the_sdk_refreshes_validates_and_lists_itself,
    logging_out_through_the_sdk_revokes_the_session_and_its_tokens_answer_session_revoked,
    logging_out_everywhere_but_here_through_the_sdk_counts_the_others,
    calls_the_server_refuses_come_back_as_the_sdk_error_with_their_code,
);
