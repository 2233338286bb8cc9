//! `refresh` over the socket: the same rotation rules as `POST /session/refresh` (rotate, grace
//! replay, reuse revokes), the same error codes, and only the connection's own session. Both
//! stores, both encodings.

use chrono::Duration;
use reqwest::StatusCode;
use session_client::proto::ws::{ClientFrame, ServerFrame};

use crate::helpers::*;
use crate::ws_client::*;

/// The refresh's answer, which must be `tokens` echoing `id`.
async fn tokens(ws: &mut WsClient, id: u64, refresh_token: &str) -> (String, i64, String) {
    ws.send(&ClientFrame::Refresh { id: Some(id), refresh_token: refresh_token.to_owned() }).await;
    match ws.next_frame().await {
        ServerFrame::Tokens { id: got, access_token, access_token_expires_at, refresh_token, .. } => {
            assert_eq!(got, Some(id));
            (access_token, access_token_expires_at, refresh_token)
        }
        other => panic!("expected tokens for request {id}, got {other:?}"),
    }
}

async fn refreshing_over_the_socket_rotates_replays_and_revokes_on_reuse(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        app.advance(Duration::seconds(10));
        let (access, access_exp, first) = tokens(&mut ws, 5, &created.refresh).await;
        assert_eq!(generation(&first), 1);
        assert_eq!(access_exp, (app.now() + Duration::minutes(10)).timestamp() * 1000);
        let me = expect_json(app.me(&access).await, StatusCode::OK).await;
        assert_eq!(me["session_id"], created.id.to_string(), "the new access token works over REST");
        let stored = app.state().sessions.stored(created.id).await.expect("the session");
        assert_eq!((stored.refresh_generation, stored.last_used_at), (1, app.now()));

        let (_, _, replayed) = tokens(&mut ws, 6, &created.refresh).await;
        assert_eq!(replayed, first, "within the grace window the previous token gets the same successor");
        let (_, _, second) = tokens(&mut ws, 7, &first).await;
        assert_eq!(generation(&second), 2);

        ws.send(&ClientFrame::Refresh { id: Some(8), refresh_token: created.refresh.clone() }).await;
        assert_eq!(ws.expect_error("session_revoked").await, Some(8), "a reused token is refused");
        let waited = ws.expect_revoked("refresh_token_reuse").await;
        assert!(waited < PROMPT, "revoked came {waited:?} after the refusal");
        let view = app.get_session(created.id).await;
        assert_eq!(
            (view["status"].as_str(), view["revoke_reason"].as_str()),
            (Some("revoked"), Some("refresh_token_reuse"))
        );
        assert_eq!(view["online"], false);
    }
}

async fn refresh_errors_use_the_rest_codes_and_change_no_session(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let mine = app.create_session("user-1").await;
        let other_user = app.create_session("user-2").await;
        let same_user = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &mine).await;
        app.advance(Duration::seconds(10));
        let before =
            [app.get_session(mine.id).await, app.get_session(other_user.id).await, app.get_session(same_user.id).await];
        let trails_before = [app.audit_trail(other_user.id).await, app.audit_trail(same_user.id).await];

        let attempts = [
            (1, "garbage".to_owned()),
            (2, other_user.refresh.clone()),
            (3, same_user.refresh.clone()),
            (4, forge(&mine.refresh, 0)),
            (5, forge(&mine.refresh, 1)), // a generation not issued yet
        ];
        for (id, token) in attempts {
            ws.send(&ClientFrame::Refresh { id: Some(id), refresh_token: token }).await;
            assert_eq!(ws.expect_error("invalid_token").await, Some(id), "{encoding:?} attempt {id}");
        }
        ws.ping(9).await;

        let after =
            [app.get_session(mine.id).await, app.get_session(other_user.id).await, app.get_session(same_user.id).await];
        // `last_seen_at` of the live session moves with the socket's activity; nothing else may.
        let strip = |mut v: serde_json::Value| {
            v.as_object_mut().expect("a view").remove("last_seen_at");
            v
        };
        assert_eq!(before.map(strip), after.map(strip));
        assert_eq!([app.audit_trail(other_user.id).await, app.audit_trail(same_user.id).await], trails_before);
        for id in [mine.id, other_user.id, same_user.id] {
            let stored = app.state().sessions.stored(id).await.expect("the session");
            assert_eq!(stored.refresh_generation, 0);
        }
        // The other sessions' tokens are still good.
        app.refresh_ok(&other_user.refresh).await;
        app.refresh_ok(&same_user.refresh).await;
        ws.close().await;
    }
}

/// A reused token's answer over the socket: `error session_revoked` echoing `id`, then the push
/// `revoked{refresh_token_reuse}` and close 4101.
async fn expect_reuse(ws: &mut WsClient, id: u64, refresh_token: &str) {
    ws.send(&ClientFrame::Refresh { id: Some(id), refresh_token: refresh_token.to_owned() }).await;
    assert_eq!(ws.expect_error("session_revoked").await, Some(id));
    ws.expect_revoked("refresh_token_reuse").await;
}

async fn the_previous_token_after_the_grace_window_is_reuse_over_the_socket(backend: Backend) {
    let app = spawn_app_with(backend, patient_deadlines).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        tokens(&mut ws, 1, &created.refresh).await;
        app.advance(Duration::milliseconds(19_999));
        let (_, _, replayed) = tokens(&mut ws, 2, &created.refresh).await;
        assert_eq!(generation(&replayed), 1, "inside the 20 s window: the same successor");
        app.advance(Duration::milliseconds(1));
        expect_reuse(&mut ws, 3, &created.refresh).await;
    }
}

async fn a_token_two_generations_old_is_reuse_even_inside_the_grace_window(backend: Backend) {
    let app = spawn_app_with(backend, patient_deadlines).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        let (_, _, first) = tokens(&mut ws, 1, &created.refresh).await;
        app.advance(Duration::seconds(1));
        tokens(&mut ws, 2, &first).await;
        // One second after the last rotation and one second after the first: both windows are
        // open, but only the previous generation may replay.
        app.advance(Duration::seconds(1));
        expect_reuse(&mut ws, 3, &created.refresh).await;
    }
}

async fn a_refresh_of_a_session_past_its_expiry_answers_session_expired_and_the_socket_stays(backend: Backend) {
    let app = spawn_app_with(backend, |o| {
        o.sessions.idle_timeout_secs = 3600;
        patient_deadlines(o);
    })
    .await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        app.advance(Duration::seconds(3600));
        ws.send(&ClientFrame::Refresh { id: Some(1), refresh_token: created.refresh.clone() }).await;
        // The warning of the expired access token may come first, from the node's own sweep.
        let id = loop {
            match ws.next_frame().await {
                ServerFrame::TokenExpiring { .. } => continue,
                ServerFrame::Error { id, code, close_code: None, .. } if code == "session_expired" => break id,
                other => panic!("{encoding:?}: expected session_expired, got {other:?}"),
            }
        };
        assert_eq!(id, Some(1));
        ws.ping(2).await;
        ws.close().await;
    }
}

both!(
    refreshing_over_the_socket_rotates_replays_and_revokes_on_reuse,
    refresh_errors_use_the_rest_codes_and_change_no_session,
    the_previous_token_after_the_grace_window_is_reuse_over_the_socket,
    a_token_two_generations_old_is_reuse_even_inside_the_grace_window,
    a_refresh_of_a_session_past_its_expiry_answers_session_expired_and_the_socket_stays,
);
