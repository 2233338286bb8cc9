//! Revocation reaches the live connection, whatever its path: `revoked{reason}` then close 4101,
//! within [`PROMPT`] of the call returning; other connections stay. Also: a newer connection of
//! the same session replaces the older one. Both stores; connections alternate encodings.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use session_client::proto::ws::{close, ServerFrame};
use uuid::Uuid;

use crate::helpers::*;
use crate::ws_client::*;

/// Asserts the push came promptly.
fn prompt(waited: std::time::Duration, what: &str) {
    assert!(waited < PROMPT, "{what}: revoked came {waited:?} after the call returned");
}

/// Sessions of `user`, each with a live connection (encodings alternating).
async fn live_sessions(app: &TestApp, user: &str, n: usize) -> Vec<(Created, WsClient)> {
    let mut out = Vec::new();
    for i in 0..n {
        let created = app.create_session(user).await;
        let ws = app.ws_live(Encoding::BOTH[i % 2], &created).await;
        out.push((created, ws));
    }
    out
}

async fn revoke(app: &TestApp, id: Uuid, body: Option<serde_json::Value>) {
    let req = app.writer(Method::POST, &format!("/sessions/{id}/revoke"));
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
}

async fn a_service_revoke_pushes_its_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut live = live_sessions(&app, "user-1", 2).await;
    revoke(&app, live[0].0.id, Some(json!({ "reason": "password_changed" }))).await;
    prompt(live[0].1.expect_revoked("password_changed").await, "service revoke");
    live[1].1.ping(1).await;
    revoke(&app, live[1].0.id, None).await;
    prompt(live[1].1.expect_revoked("revoked_by_service").await, "service revoke, default reason");
}

async fn a_service_delete_pushes_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut live = live_sessions(&app, "user-1", 2).await;
    for (created, ws) in &mut live {
        let resp = app.writer(Method::DELETE, &format!("/sessions/{}", created.id)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        prompt(ws.expect_revoked("deleted").await, "delete");
    }
}

async fn a_logout_pushes_logout_to_that_session_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut live = live_sessions(&app, "user-1", 3).await;
    // From another device of the same user, then the session logging itself out.
    for (target, caller) in [(0, 2), (1, 1)] {
        let path = format!("/session/{}", live[target].0.id);
        let resp = app.player(Method::DELETE, &path, &live[caller].0.access).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        prompt(live[target].1.expect_revoked("logout").await, "logout");
    }
    live[2].1.ping(1).await;
}

async fn logout_all_reaches_every_device_of_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut mine = live_sessions(&app, "user-1", 3).await;
    let mut theirs = live_sessions(&app, "user-2", 1).await;
    let resp = app.player(Method::DELETE, "/session/all", &mine[1].0.access).send().await.unwrap();
    assert_eq!(expect_json(resp, StatusCode::OK).await["revoked"], 3);
    for (_, ws) in &mut mine {
        prompt(ws.expect_revoked("logout_all").await, "logout all");
    }
    theirs[0].1.ping(1).await;
}

async fn logout_all_except_current_keeps_the_callers_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut mine = live_sessions(&app, "user-1", 3).await;
    let resp = app.player(Method::DELETE, "/session/all?except=current", &mine[0].0.access).send().await.unwrap();
    assert_eq!(expect_json(resp, StatusCode::OK).await["revoked"], 2);
    for (_, ws) in &mut mine[1..] {
        prompt(ws.expect_revoked("logout_all").await, "logout all except current");
    }
    mine[0].1.ping(1).await;
    assert_eq!(app.get_session(mine[0].0.id).await["online"], true);
}

async fn refresh_token_reuse_over_rest_closes_the_connection(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut live = live_sessions(&app, "user-1", 2).await;
    for (created, ws) in &mut live {
        let first = app.refresh_ok(&created.refresh).await;
        app.refresh_ok(&first.refresh).await;
        ws.ping(1).await;
        expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
        prompt(ws.expect_revoked("refresh_token_reuse").await, "refresh token reuse");
    }
}

async fn the_expiry_sweep_pushes_expired(backend: Backend) {
    let app = spawn_app_with(backend, |o| {
        o.sessions.idle_timeout_secs = 3600;
        patient_deadlines(o);
    })
    .await;
    let mut live = live_sessions(&app, "user-1", 2).await;
    app.advance(Duration::hours(2));
    // The access tokens are past their warning time too: take that push out of the way first.
    app.state().gateway.sweep();
    for (_, ws) in &mut live {
        assert!(matches!(ws.next_frame().await, ServerFrame::TokenExpiring { .. }));
    }
    assert_eq!(app.state().sessions.sweep_expired().await.expect("the sweep"), 2);
    for (_, ws) in &mut live {
        prompt(ws.expect_revoked("expired").await, "expiry sweep");
    }
}

async fn the_per_user_cap_pushes_session_limit_to_the_evicted_session(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.max_sessions_per_user = 2).await;
    let oldest = app.create_session("user-1").await;
    app.advance(Duration::seconds(1));
    let newer = app.create_session("user-1").await;
    app.advance(Duration::seconds(1));
    let mut oldest_ws = app.ws_live(Encoding::Msgpack, &oldest).await;
    let mut newer_ws = app.ws_live(Encoding::Json, &newer).await;
    app.create_session("user-1").await;
    prompt(oldest_ws.expect_revoked("session_limit").await, "per-user cap");
    newer_ws.ping(1).await;
}

async fn a_second_connection_of_a_session_replaces_the_first(backend: Backend) {
    let app = spawn_app(backend).await;
    for (first, second) in [(Encoding::Msgpack, Encoding::Json), (Encoding::Json, Encoding::Msgpack)] {
        let created = app.create_session("user-1").await;
        let mut old = app.ws_live(first, &created).await;
        let mut new = app.ws_live(second, &created).await;
        old.expect_closing_error("replaced", close::REPLACED).await;
        new.ping(1).await;
        assert_eq!(app.get_session(created.id).await["online"], true, "the old connection leaving keeps the new");
        revoke(&app, created.id, None).await;
        prompt(new.expect_revoked("revoked_by_service").await, "revoke after replace");
    }
}

both!(
    a_service_revoke_pushes_its_reason,
    a_service_delete_pushes_deleted,
    a_logout_pushes_logout_to_that_session_only,
    logout_all_reaches_every_device_of_the_user,
    logout_all_except_current_keeps_the_callers_connection,
    refresh_token_reuse_over_rest_closes_the_connection,
    the_expiry_sweep_pushes_expired,
    the_per_user_cap_pushes_session_limit_to_the_evicted_session,
    a_second_connection_of_a_session_replaces_the_first,
);
