//! The user API's bodies and the problem body every error answers with.

use axum::response::IntoResponse;
use session_service::http::error::ApiError;

use super::*;

#[test]
fn every_session_status_reads_as_the_sdk_s_own_and_never_as_unknown() {
    for status in [SessionStatus::Active, SessionStatus::Revoked, SessionStatus::Expired] {
        assert_eq!(read_as::<sdk::SessionStatus>(&status), sdk_status(status));
    }
}

#[test]
fn a_session_view_reads_as_the_sdk_s_session() {
    assert_eq!(read_as::<sdk::Session>(&server_view(1, None)), sdk_session(1, None));
    let page = server::SessionPage { sessions: vec![server_view(1, None)], next_cursor: Some("MTcwMC4wMTkw".into()) };
    let expected = sdk::SessionPage { sessions: vec![sdk_session(1, None)], next_cursor: Some("MTcwMC4wMTkw".into()) };
    assert_eq!(read_as::<sdk::SessionPage>(&page), expected);
}

#[test]
fn a_created_session_and_a_refreshed_pair_read_as_the_sdk_s_tokens() {
    let created = server::CreatedSession {
        session: server_view(1, None),
        token_type: "Bearer",
        access_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
        access_token_expires_at: at(7),
        refresh_token: "rt1.0190b5a4-7c1e-7d2a-9f00-000000000001.0.q83vEjRW".into(),
        refresh_token_expires_at: at(8),
    };
    let expected = sdk::Created {
        session: sdk_session(1, None),
        token_type: "Bearer".into(),
        access_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
        access_token_expires_at: at(7),
        refresh_token: "rt1.0190b5a4-7c1e-7d2a-9f00-000000000001.0.q83vEjRW".into(),
        refresh_token_expires_at: at(8),
    };
    assert_eq!(read_as::<sdk::Created>(&created), expected);
    let tokens = server::Tokens {
        session_id: id(1),
        token_type: "Bearer",
        access_token: "eyJhbGciOiJFZERTQSJ9.e30.bmV4dA".into(),
        access_token_expires_at: at(9),
        refresh_token: "rt1.0190b5a4-7c1e-7d2a-9f00-000000000001.1.zZ9yXw".into(),
        refresh_token_expires_at: at(10),
    };
    let expected = sdk::Tokens {
        session_id: id(1),
        token_type: "Bearer".into(),
        access_token: "eyJhbGciOiJFZERTQSJ9.e30.bmV4dA".into(),
        access_token_expires_at: at(9),
        refresh_token: "rt1.0190b5a4-7c1e-7d2a-9f00-000000000001.1.zZ9yXw".into(),
        refresh_token_expires_at: at(10),
    };
    assert_eq!(read_as::<sdk::Tokens>(&tokens), expected);
}

#[test]
fn validate_me_and_logout_all_answers_read_as_the_sdk_s() {
    let validation = server::Validation { valid: true, session: server_view(1, None) };
    let expected = sdk::ValidateResponse { valid: true, session: Some(sdk_session(1, None)) };
    assert_eq!(read_as::<sdk::ValidateResponse>(&validation), expected);
    let me = server::MySessions {
        user_id: "user-42".into(),
        session_id: id(1),
        sessions: vec![server_view(1, Some(true)), server_view(2, Some(false))],
    };
    let expected = sdk::MySessions {
        user_id: "user-42".into(),
        session_id: id(1),
        sessions: vec![sdk_session(1, Some(true)), sdk_session(2, Some(false))],
    };
    assert_eq!(read_as::<sdk::MySessions>(&me), expected);
    assert_eq!(read_as::<sdk::Revoked>(&server::LogoutAll { revoked: 3 }), sdk::Revoked { revoked: 3 });
}

#[tokio::test]
async fn problem_bodies_read_as_the_sdk_s_problem_with_and_without_detail() {
    let cases = [
        (
            ApiError::InvalidField("ip: is not an IP address".into()),
            "a field breaks a rule",
            Some("ip: is not an IP address"),
        ),
        (ApiError::SessionRevoked, "the session has been revoked", None),
    ];
    for (error, title, detail) in cases {
        let (status, code) = (error.status().as_u16(), error.code());
        let body = axum::body::to_bytes(error.into_response().into_body(), usize::MAX).await.expect("a body");
        let sent: Value = serde_json::from_slice(&body).expect("JSON");
        let read = read_as::<sdk::Problem>(&sent);
        let expected = sdk::Problem {
            kind: format!("urn:session-service:problem:{code}"),
            title: title.to_owned(),
            status,
            detail: detail.map(str::to_owned),
            code: code.to_owned(),
        };
        assert_eq!(read, expected);
    }
}
