//! The grace window of the refresh state machine: replay inside it, reuse after it, and older generations (docs/tokens.md).

use chrono::Duration;
use reqwest::StatusCode;

use crate::helpers::*;

async fn the_previous_token_inside_the_grace_window_replays_the_same_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(19));
    let replay = app.refresh_ok(&created.refresh).await;
    assert_eq!(replay.refresh, rotated.refresh, "the very same successor, re-derived");
    assert_ne!(replay.access, rotated.access, "a fresh access token");
    assert_eq!(app.me(&replay.access).await.status(), StatusCode::OK);
    let next = app.refresh_ok(&rotated.refresh).await;
    assert_eq!(generation(&next.refresh), 2, "the replay changed nothing: the successor is still current");
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn the_grace_window_is_fixed_from_the_rotation_and_never_slides(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    for _ in 0..2 {
        app.advance(Duration::seconds(9));
        assert_eq!(app.refresh_ok(&created.refresh).await.refresh, rotated.refresh);
    }
    app.advance(Duration::seconds(2));
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn the_grace_window_has_the_configured_length(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.refresh_grace_secs = 5).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(4));
    assert_eq!(app.refresh_ok(&created.refresh).await.refresh, rotated.refresh);
    app.advance(Duration::seconds(1));
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn the_previous_token_after_the_grace_window_revokes_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(20));
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    let view = app.get_session(created.id).await;
    assert_eq!(
        (view["status"].as_str(), view["revoke_reason"].as_str()),
        (Some("revoked"), Some("refresh_token_reuse"))
    );
    expect_problem(app.refresh(&rotated.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    expect_problem(app.me(&rotated.access).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn an_older_generation_revokes_the_session_even_inside_the_grace_window(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let first = app.refresh_ok(&created.refresh).await;
    let second = app.refresh_ok(&first.refresh).await;
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    assert_eq!(app.get_session(created.id).await["revoke_reason"], "refresh_token_reuse");
    expect_problem(app.refresh(&second.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

both!(
    the_previous_token_inside_the_grace_window_replays_the_same_refresh_token,
    the_grace_window_is_fixed_from_the_rotation_and_never_slides,
    the_grace_window_has_the_configured_length,
    the_previous_token_after_the_grace_window_revokes_the_session,
    an_older_generation_revokes_the_session_even_inside_the_grace_window,
);
