//! `POST /sessions/{id}/extend`: moves the idle expiry, never the absolute one.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

const DAY: i64 = 86_400;

/// A node whose sessions idle out after a day and end after three.
async fn short_lived(backend: Backend) -> TestApp {
    spawn_app_with(backend, |o| {
        o.sessions.idle_timeout_secs = DAY;
        o.sessions.absolute_lifetime_secs = 3 * DAY;
    })
    .await
}

async fn extend(app: &TestApp, id: Uuid, body: Option<Value>) -> reqwest::Response {
    let req = app.writer(Method::POST, &format!("/sessions/{id}/extend"));
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    req.send().await.unwrap()
}

async fn extending_without_a_body_moves_the_expiry_one_idle_timeout_from_now(backend: Backend) {
    let app = short_lived(backend).await;
    let t0 = app.now();
    let created = app.create_session("user-1").await;
    assert_eq!(ts(&created.body["session"]["expires_at"]), t0 + Duration::days(1));
    app.advance(Duration::hours(12));
    let view = expect_json(extend(&app, created.id, None).await, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), app.now() + Duration::days(1));
    assert_eq!(ts(&view["last_used_at"]), app.now());
    assert_eq!(ts(&view["absolute_expires_at"]), t0 + Duration::days(3));
    assert_eq!(app.get_session(created.id).await, view, "the new expiry is stored");
    assert!(app.audit_trail(created.id).await.contains(&("extend".into(), "ok".into())));
}

async fn extending_never_moves_the_expiry_past_the_absolute_expiry(backend: Backend) {
    let app = short_lived(backend).await;
    let t0 = app.now();
    let created = app.create_session("user-1").await;
    app.advance(Duration::hours(1));
    let view = expect_json(extend(&app, created.id, Some(json!({ "seconds": 3600 }))).await, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), t0 + Duration::days(1), "a shorter lifetime does not shorten the session");
    let view = expect_json(extend(&app, created.id, Some(json!({ "seconds": 2 * DAY }))).await, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), app.now() + Duration::days(2), "an explicit lifetime from now");
    let view = expect_json(extend(&app, created.id, Some(json!({ "seconds": 10 * DAY }))).await, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), t0 + Duration::days(3), "capped at the absolute expiry");
    app.advance(Duration::hours(60));
    let view = expect_json(extend(&app, created.id, None).await, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), t0 + Duration::days(3));
    assert_eq!(ts(&view["absolute_expires_at"]), t0 + Duration::days(3));
    app.advance(Duration::hours(11));
    let resp = extend(&app, created.id, None).await;
    expect_problem(resp, StatusCode::UNAUTHORIZED, "session_expired").await;
}

async fn extending_a_revoked_session_answers_session_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let resp = app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    let revoked = expect_json(resp, StatusCode::OK).await;
    expect_problem(extend(&app, created.id, None).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    assert_eq!(app.get_session(created.id).await, revoked, "nothing moved");
}

async fn extending_an_idle_expired_session_answers_session_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::days(30));
    expect_problem(extend(&app, created.id, None).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
}

async fn extending_with_a_bad_duration_or_a_missing_session_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let before = app.get_session(created.id).await;
    for seconds in [json!(0), json!(-5), json!(366 * DAY + 1)] {
        let resp = extend(&app, created.id, Some(json!({ "seconds": seconds }))).await;
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    for body in [json!({ "seconds": "soon" }), json!({ "days": 1 })] {
        expect_problem(extend(&app, created.id, Some(body)).await, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    assert_eq!(app.get_session(created.id).await, before);
    let resp = extend(&app, Uuid::new_v4(), None).await;
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
}

both!(
    extending_without_a_body_moves_the_expiry_one_idle_timeout_from_now,
    extending_never_moves_the_expiry_past_the_absolute_expiry,
    extending_a_revoked_session_answers_session_revoked,
    extending_an_idle_expired_session_answers_session_expired,
    extending_with_a_bad_duration_or_a_missing_session_is_refused,
);
