//! `POST /session/validate`: checks a refresh token without rotating it.

use chrono::Duration;
use reqwest::{Method, StatusCode};

use crate::helpers::*;

async fn validating_the_current_token_answers_valid_with_the_session_and_does_not_rotate(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let body = expect_json(app.validate(&created.refresh).await, StatusCode::OK).await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["session"], app.get_session(created.id).await);
    let again = expect_json(app.validate(&created.refresh).await, StatusCode::OK).await;
    assert_eq!(again["valid"], true);
    let tokens = app.refresh_ok(&created.refresh).await;
    assert_eq!(generation(&tokens.refresh), 1, "validation left the token current");
}

async fn validating_the_previous_token_inside_the_grace_window_is_valid(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(10));
    let body = expect_json(app.validate(&created.refresh).await, StatusCode::OK).await;
    assert_eq!(body["valid"], true);
    assert_eq!(generation(&app.refresh_ok(&rotated.refresh).await.refresh), 2);
}

async fn validating_a_forged_token_is_refused_and_audited_as_forged(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let body =
        expect_problem(app.validate(&forge(&created.refresh, 0)).await, StatusCode::UNAUTHORIZED, "invalid_token")
            .await;
    assert!(body.get("detail").is_none(), "{body}");
    expect_problem(app.validate("not-a-token").await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let entry = app.audit(created.id).await.into_iter().find(|e| e["action"] == "validate").expect("audited");
    assert_eq!(entry["outcome"], "forged");
    assert_eq!(app.get_session(created.id).await["status"], "active");
    assert_eq!(app.validate(&created.refresh).await.status(), StatusCode::OK);
}

async fn validating_a_token_of_a_revoked_session_answers_session_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    expect_problem(app.validate(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    let other = app.create_session("user-1").await;
    app.advance(Duration::days(30));
    expect_problem(app.validate(&other.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
}

async fn validating_a_reused_token_revokes_the_session_like_a_refresh(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(20));
    expect_problem(app.validate(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    assert_eq!(app.get_session(created.id).await["revoke_reason"], "refresh_token_reuse");
    expect_problem(app.refresh(&rotated.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

both!(
    validating_the_current_token_answers_valid_with_the_session_and_does_not_rotate,
    validating_the_previous_token_inside_the_grace_window_is_valid,
    validating_a_forged_token_is_refused_and_audited_as_forged,
    validating_a_token_of_a_revoked_session_answers_session_revoked,
    validating_a_reused_token_revokes_the_session_like_a_refresh,
);
