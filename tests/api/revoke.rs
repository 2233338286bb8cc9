//! `POST /sessions/{id}/revoke`: idempotent, with a validated reason code.

use chrono::Duration;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

async fn revoke(app: &TestApp, id: Uuid, body: Option<Value>) -> Response {
    let req = app.writer(Method::POST, &format!("/sessions/{id}/revoke"));
    match body {
        Some(b) => req.json(&b),
        None => req,
    }
    .send()
    .await
    .unwrap()
}

async fn revoking_marks_the_session_revoked_with_the_reason_and_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::minutes(5));
    let view =
        expect_json(revoke(&app, created.id, Some(json!({ "reason": "password_changed" }))).await, StatusCode::OK)
            .await;
    assert_eq!(view["status"], "revoked");
    assert_eq!(view["revoke_reason"], "password_changed");
    assert_eq!(ts(&view["revoked_at"]), app.now());
    assert_eq!(app.get_session(created.id).await, view);
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    expect_problem(app.me(&created.access).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    let entry = app.audit(created.id).await.into_iter().find(|e| e["action"] == "revoke").expect("a revoke entry");
    assert_eq!((entry["outcome"].as_str(), entry["reason"].as_str()), (Some("ok"), Some("password_changed")));
    assert_eq!(entry["actor"], json!({ "kind": "service", "id": "auth-service" }));
}

async fn revoking_twice_gives_the_same_answer_and_keeps_the_first_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let first =
        expect_json(revoke(&app, created.id, Some(json!({ "reason": "password_changed" }))).await, StatusCode::OK)
            .await;
    app.advance(Duration::minutes(1));
    let second = expect_json(revoke(&app, created.id, Some(json!({ "reason": "fraud" }))).await, StatusCode::OK).await;
    assert_eq!(second, first);
    let third = expect_json(revoke(&app, created.id, None).await, StatusCode::OK).await;
    assert_eq!(third, first);
    let revokes = app.audit_trail(created.id).await.iter().filter(|(action, _)| action == "revoke").count();
    assert_eq!(revokes, 1, "only the first revocation changed anything");
}

async fn revoking_without_a_body_uses_the_default_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let view = expect_json(revoke(&app, created.id, None).await, StatusCode::OK).await;
    assert_eq!(
        (view["status"].as_str(), view["revoke_reason"].as_str()),
        (Some("revoked"), Some("revoked_by_service"))
    );
    let other = app.create_session("user-1").await;
    let view = expect_json(revoke(&app, other.id, Some(json!({}))).await, StatusCode::OK).await;
    assert_eq!(view["revoke_reason"], "revoked_by_service");
}

async fn revoking_with_a_malformed_reason_is_refused_and_revokes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    for reason in ["", "Password Changed", "drop table;", &"r".repeat(65), "é"] {
        let resp = revoke(&app, created.id, Some(json!({ "reason": reason }))).await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    let resp = revoke(&app, created.id, Some(json!({ "reason": 7 }))).await;
    expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(app.get_session(created.id).await["status"], "active");
    let ok = revoke(&app, created.id, Some(json!({ "reason": "r".repeat(64) }))).await;
    assert_eq!(ok.status(), StatusCode::OK, "64 characters are allowed");
}

async fn revoking_an_expired_session_changes_nothing_and_answers_its_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::days(30));
    let view = expect_json(revoke(&app, created.id, Some(json!({ "reason": "fraud" }))).await, StatusCode::OK).await;
    assert_eq!(view["status"], "expired");
    assert!(view.get("revoke_reason").is_none() && view.get("revoked_at").is_none(), "{view}");
    assert_eq!(app.get_session(created.id).await, view);
}

async fn revoking_a_missing_session_answers_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = revoke(&app, Uuid::new_v4(), None).await;
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
}

both!(
    revoking_marks_the_session_revoked_with_the_reason_and_time,
    revoking_twice_gives_the_same_answer_and_keeps_the_first_reason,
    revoking_without_a_body_uses_the_default_reason,
    revoking_with_a_malformed_reason_is_refused_and_revokes_nothing,
    revoking_an_expired_session_changes_nothing_and_answers_its_state,
    revoking_a_missing_session_answers_404,
);
