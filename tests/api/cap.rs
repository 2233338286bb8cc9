//! The per-user cap on active sessions (docs/tokens.md): the least recently used one goes.

use chrono::Duration;
use reqwest::{Method, StatusCode};

use crate::helpers::*;

async fn the_per_user_cap_revokes_the_least_recently_used_session(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.max_sessions_per_user = 3).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.create_session("user-1").await);
        app.advance(Duration::minutes(1));
    }
    let other_user = app.create_session("user-2").await;
    app.refresh_ok(&sessions[0].refresh).await;
    app.advance(Duration::minutes(1));
    let fourth = app.create_session("user-1").await;
    let evicted = app.get_session(sessions[1].id).await;
    assert_eq!(
        (evicted["status"].as_str(), evicted["revoke_reason"].as_str()),
        (Some("revoked"), Some("session_limit"))
    );
    for kept in [&sessions[0], &sessions[2], &fourth, &other_user] {
        assert_eq!(app.get_session(kept.id).await["status"], "active", "{}", kept.id);
    }
    let resp = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(expect_json(resp, StatusCode::OK).await["sessions"].as_array().unwrap().len(), 3);
    expect_problem(app.refresh(&sessions[1].refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn expired_sessions_neither_count_toward_the_cap_nor_are_revoked_by_it(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.max_sessions_per_user = 2).await;
    let old = [app.create_session("user-1").await, app.create_session("user-1").await];
    app.advance(Duration::days(31));
    let new = [app.create_session("user-1").await, app.create_session("user-1").await];
    for s in &old {
        let view = app.get_session(s.id).await;
        assert_eq!((view["status"].as_str(), view.get("revoke_reason")), (Some("expired"), None), "{view}");
    }
    for s in &new {
        assert_eq!(app.get_session(s.id).await["status"], "active");
    }
}

async fn concurrent_creations_never_exceed_the_per_user_cap(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.max_sessions_per_user = 3).await;
    let created = futures::future::join_all((0..12).map(|_| app.create_session("user-1"))).await;
    let resp = app.reader(reqwest::Method::GET, "/sessions/user/user-1?status=all").send().await.unwrap();
    let all = expect_json(resp, StatusCode::OK).await;
    let sessions = all["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), created.len());
    let active = sessions.iter().filter(|s| s["status"] == "active").count();
    assert_eq!(active, 3, "{all}");
    let evicted = sessions.iter().filter(|s| s["revoke_reason"] == "session_limit").count();
    assert_eq!(evicted, 9);
}

both!(
    concurrent_creations_never_exceed_the_per_user_cap,
    the_per_user_cap_revokes_the_least_recently_used_session,
    expired_sessions_neither_count_toward_the_cap_nor_are_revoked_by_it,
);
