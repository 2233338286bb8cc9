//! Lifetimes and limits (docs/tokens.md): idle and absolute expiry, the sweep, the per-user cap.

use std::collections::HashMap;

use chrono::{DateTime, Duration};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use session_service::config::PlatformLifetimes;

use crate::helpers::*;

async fn an_idle_session_expires_after_the_idle_timeout(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::days(30) - Duration::seconds(1));
    assert_eq!(app.get_session(created.id).await["status"], "active");
    app.advance(Duration::seconds(1));
    assert_eq!(app.get_session(created.id).await["status"], "expired", "expired before any sweep");
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    let list = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(
        expect_json(list, StatusCode::OK).await["sessions"],
        serde_json::json!([]),
        "no longer listed as active"
    );
}

async fn rotation_moves_the_idle_expiry_but_never_the_absolute_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    let t0 = app.now();
    let created = app.create_session("user-1").await;
    app.advance(Duration::days(20));
    let tokens = app.refresh_ok(&created.refresh).await;
    assert_eq!(ts(&tokens.body["refresh_token_expires_at"]), t0 + Duration::days(50));
    let view = app.get_session(created.id).await;
    assert_eq!((ts(&view["expires_at"]), ts(&view["last_used_at"])), (t0 + Duration::days(50), app.now()));
    assert_eq!(ts(&view["absolute_expires_at"]), t0 + Duration::days(180));
    assert_eq!(ts(&view["created_at"]), t0);
}

async fn the_absolute_expiry_caps_refreshes_and_access_tokens(backend: Backend) {
    let app = spawn_app_with(backend, |o| {
        o.sessions.idle_timeout_secs = 86_400;
        o.sessions.absolute_lifetime_secs = 3 * 86_400;
    })
    .await;
    let t0 = app.now();
    let absolute = t0 + Duration::days(3);
    let created = app.create_session("user-1").await;
    assert_eq!(ts(&created.body["session"]["absolute_expires_at"]), absolute);
    let mut token = created.refresh;
    for _ in 0..3 {
        app.advance(Duration::hours(20));
        let tokens = app.refresh_ok(&token).await;
        let expected = (app.now() + Duration::days(1)).min(absolute);
        assert_eq!(ts(&tokens.body["refresh_token_expires_at"]), expected);
        token = tokens.refresh;
    }
    app.advance(Duration::hours(11) + Duration::minutes(55));
    let last = app.refresh_ok(&token).await;
    assert_eq!(ts(&last.body["refresh_token_expires_at"]), absolute);
    let capped = DateTime::from_timestamp(absolute.timestamp(), 0).unwrap();
    assert_eq!(ts(&last.body["access_token_expires_at"]), capped, "the access token ends with the session");
    app.advance(Duration::minutes(5));
    expect_problem(app.refresh(&last.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    expect_problem(app.me(&last.access).await, StatusCode::UNAUTHORIZED, "token_expired").await;
    let view = app.get_session(created.id).await;
    assert_eq!((view["status"].as_str(), ts(&view["expires_at"])), (Some("expired"), absolute));
}

async fn the_sweep_marks_expired_sessions_and_returns_their_count(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.create_session("user-1").await;
    let b = app.create_session("user-2").await;
    let revoked = app.create_session("user-1").await;
    app.writer(Method::POST, &format!("/sessions/{}/revoke", revoked.id)).send().await.unwrap();
    app.advance(Duration::days(15));
    let fresh = app.create_session("user-1").await;
    assert_eq!(app.state().sessions.sweep_expired().await.unwrap(), 0, "nothing is due yet");
    app.advance(Duration::days(15));
    assert_eq!(app.state().sessions.sweep_expired().await.unwrap(), 2);
    assert_eq!(app.state().sessions.sweep_expired().await.unwrap(), 0, "a second sweep finds nothing");
    let resp = app.reader(Method::GET, "/sessions/user/user-1?status=all").send().await.unwrap();
    let all = expect_json(resp, StatusCode::OK).await;
    let status_of = |id: uuid::Uuid| -> Value {
        let found = all["sessions"].as_array().unwrap().iter().find(|s| s["id"] == id.to_string());
        found.map_or(Value::Null, |s| s["status"].clone())
    };
    assert_eq!(
        (status_of(a.id), status_of(revoked.id), status_of(fresh.id)),
        ("expired".into(), "revoked".into(), "active".into())
    );
    assert_eq!(app.get_session(b.id).await["status"], "expired");
    assert!(app.audit_trail(a.id).await.iter().any(|(action, _)| action == "expire"), "the sweep is audited");
    expect_problem(app.refresh(&a.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
}

async fn per_platform_lifetimes_apply_to_creation_rotation_and_extend(backend: Backend) {
    let app = spawn_app_with(backend, |o| {
        let web = PlatformLifetimes {
            access_ttl_secs: Some(60),
            idle_timeout_secs: Some(3600),
            absolute_lifetime_secs: Some(7200),
        };
        o.platforms = HashMap::from([("web".to_owned(), web)]);
    })
    .await;
    let t0 = app.now();
    let mut body = session_body("user-1");
    body["device"]["platform"] = "web".into();
    let web = app.create_session_with(body).await;
    let ios = app.create_session("user-1").await;
    let seconds = |t: chrono::DateTime<chrono::Utc>| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
    assert_eq!(ts(&web.body["access_token_expires_at"]), seconds(t0 + Duration::seconds(60)));
    assert_eq!(ts(&web.body["session"]["expires_at"]), t0 + Duration::hours(1));
    assert_eq!(ts(&web.body["session"]["absolute_expires_at"]), t0 + Duration::hours(2));
    assert_eq!(ts(&ios.body["access_token_expires_at"]), seconds(t0 + Duration::minutes(10)));
    app.advance(Duration::minutes(30));
    let tokens = app.refresh_ok(&web.refresh).await;
    assert_eq!(ts(&tokens.body["refresh_token_expires_at"]), app.now() + Duration::hours(1));
    assert_eq!(ts(&tokens.body["access_token_expires_at"]), seconds(app.now() + Duration::seconds(60)));
    app.advance(Duration::minutes(30));
    let resp = app.writer(Method::POST, &format!("/sessions/{}/extend", web.id)).send().await.unwrap();
    let view = expect_json(resp, StatusCode::OK).await;
    assert_eq!(ts(&view["expires_at"]), t0 + Duration::hours(2), "one idle hour from now, capped at the absolute");
    app.advance(Duration::hours(1));
    expect_problem(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    assert_eq!(app.get_session(ios.id).await["status"], "active", "other platforms keep the defaults");
}

both!(
    an_idle_session_expires_after_the_idle_timeout,
    rotation_moves_the_idle_expiry_but_never_the_absolute_expiry,
    the_absolute_expiry_caps_refreshes_and_access_tokens,
    the_sweep_marks_expired_sessions_and_returns_their_count,
    per_platform_lifetimes_apply_to_creation_rotation_and_extend,
);
