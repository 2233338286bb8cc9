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
        let stored = app.state().store.get_session(created.id).await.unwrap().expect("the session");
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
            let stored = app.state().store.get_session(id).await.unwrap().expect("the session");
            assert_eq!(stored.refresh_generation, 0);
        }
        // The other sessions' tokens are still good.
        app.refresh_ok(&other_user.refresh).await;
        app.refresh_ok(&same_user.refresh).await;
        ws.close().await;
    }
}

both!(
    refreshing_over_the_socket_rotates_replays_and_revokes_on_reuse,
    refresh_errors_use_the_rest_codes_and_change_no_session,
);
