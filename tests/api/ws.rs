//! `GET /ws`, the handshake: subprotocol choice, authentication (bearer header or `auth` frame),
//! refusals with their close codes, and `ping`. Each case runs in both encodings; those that read
//! sessions run on both stores, the negotiation cases on SQLite only (they never reach the store).

use chrono::Duration;
use reqwest::{Method, StatusCode};
use session_client::proto::ws::{close, ClientFrame, ServerFrame, SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::ws_client::*;

fn ms(v: &serde_json::Value) -> i64 {
    ts(v).timestamp_millis()
}

async fn a_bearer_upgrade_is_welcomed_at_once_and_pings_are_answered(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws(encoding, Some(&created.access)).await;
        let welcome = ws.next_frame().await;
        let expected = ServerFrame::Welcome {
            id: None,
            session_id: created.id,
            user_id: "user-1".into(),
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 45_000,
            server_time: app.now().timestamp_millis(),
            access_token_expires_at: ms(&created.body["access_token_expires_at"]),
        };
        assert_eq!(welcome, expected, "{encoding:?}");
        assert_eq!(ws.ping(1).await, app.now().timestamp_millis());
        app.advance(Duration::seconds(3));
        assert_eq!(ws.ping(2).await, app.now().timestamp_millis(), "server_time is the node's clock");
        ws.send(&ClientFrame::Ping { id: None, ts: -5 }).await;
        let pong = ws.next_frame().await;
        assert_eq!(pong, ServerFrame::Pong { id: None, ts: -5, server_time: app.now().timestamp_millis() });
        ws.close().await;
    }
}

async fn an_auth_frame_authenticates_and_only_once(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws(encoding, None).await;
        ws.send(&ClientFrame::Ping { id: Some(3), ts: 1 }).await;
        assert_eq!(ws.expect_error("not_authenticated").await, Some(3));
        ws.send(&ClientFrame::Refresh { id: Some(4), refresh_token: created.refresh.clone() }).await;
        assert_eq!(ws.expect_error("not_authenticated").await, Some(4));
        ws.send(&ClientFrame::Auth { id: Some(9), token: created.access.clone() }).await;
        match ws.next_frame().await {
            ServerFrame::Welcome { id, session_id, user_id, .. } => {
                assert_eq!((id, session_id, user_id.as_str()), (Some(9), created.id, "user-1"));
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        ws.send(&ClientFrame::Auth { id: Some(10), token: created.access.clone() }).await;
        assert_eq!(ws.expect_error("already_authenticated").await, Some(10));
        ws.ping(11).await;
        assert_eq!(generation(&created.refresh), 0);
        let stored = app.state().sessions.stored(created.id).await.expect("the session");
        assert_eq!(stored.refresh_generation, 0, "a refresh before auth changes nothing");
        ws.close().await;
    }
}

/// Connects with `token` as a bearer header and as an `auth` frame; both are refused with
/// `code` and `close_code`.
async fn expect_refused(app: &TestApp, token: &str, code: &str, close_code: u16) {
    for encoding in Encoding::BOTH {
        let mut ws = app.ws(encoding, Some(token)).await;
        ws.expect_closing_error(code, close_code).await;
        let mut ws = app.ws(encoding, None).await;
        ws.send(&ClientFrame::Auth { id: Some(77), token: token.to_owned() }).await;
        match ws.next_frame().await {
            ServerFrame::Error { id, code: got, close_code: got_close, .. } => {
                assert_eq!((id, got.as_str(), got_close), (Some(77), code, Some(close_code)), "{encoding:?}");
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
        ws.expect_close(close_code).await;
    }
}

async fn bad_credentials_are_refused_with_their_close_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    expect_refused(&app, "not-a-jwt", "invalid_token", close::AUTH_FAILED).await;
    let deleted = app.create_session("user-1").await;
    let resp = app.writer(Method::DELETE, &format!("/sessions/{}", deleted.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_refused(&app, &deleted.access, "invalid_token", close::AUTH_FAILED).await;
    let revoked = app.create_session("user-1").await;
    let resp = app.writer(Method::POST, &format!("/sessions/{}/revoke", revoked.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    expect_refused(&app, &revoked.access, "session_revoked", close::REVOKED).await;

    let stale = app.create_session("user-1").await;
    app.advance(Duration::minutes(11));
    expect_refused(&app, &stale.access, "token_expired", close::TOKEN_EXPIRED).await;

    // A token the node itself signs now, for a session whose idle expiry has passed.
    app.advance(Duration::days(31));
    let record = app.state().sessions.stored(stale.id).await.expect("the session");
    let (token, _) = app.state().access.sign(&record, app.now(), Duration::minutes(10));
    expect_refused(&app, &token, "session_expired", close::SESSION_EXPIRED).await;
}

async fn a_session_that_ran_out_of_time_meets_token_expired_at_auth_then_session_expired(backend: Backend) {
    // An idle timeout shorter than the access-token lifetime, so the token lives exactly as long
    // as the session: the token's `exp` is capped at the session's expiry.
    let app = spawn_app_with(backend, |o| o.sessions.idle_timeout_secs = 120).await;
    let created = app.create_session("user-1").await;
    let (exp, end) = (ms(&created.body["access_token_expires_at"]), ms(&created.body["session"]["expires_at"]));
    assert!(exp <= end && end - exp < 1000, "the token ends with the session (to its whole second): {exp} {end}");
    app.advance(Duration::seconds(120));
    expect_refused(&app, &created.access, "token_expired", close::TOKEN_EXPIRED).await;
    // What the client does next, by close 4007's policy: refresh over REST. That says why.
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
}

async fn session_expired_at_auth_takes_a_lifetime_shortened_after_the_token_was_issued(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    // The operator lowers the idle timeout below the access-token lifetime; the next rotation
    // moves the session's expiry earlier than the access token issued before it.
    let app = app.restart(|o| o.sessions.idle_timeout_secs = 60).await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(61));
    expect_refused(&app, &created.access, "session_expired", close::SESSION_EXPIRED).await;
    expect_refused(&app, &rotated.access, "token_expired", close::TOKEN_EXPIRED).await;
}

async fn the_server_prefers_msgpack_and_defaults_to_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases: [(&[&str], Option<&str>); 5] = [
        (&[SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK], Some(SUBPROTOCOL_MSGPACK)),
        (&[SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON], Some(SUBPROTOCOL_MSGPACK)),
        (&["chat", SUBPROTOCOL_JSON], Some(SUBPROTOCOL_JSON)),
        (&[SUBPROTOCOL_MSGPACK], Some(SUBPROTOCOL_MSGPACK)),
        (&[], None),
    ];
    for (offered, chosen) in cases {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_upgrade(offered, Some(&created.access)).await.expect("the upgrade succeeds");
        assert_eq!(ws.protocol.as_deref(), chosen, "offered {offered:?}");
        // `next_frame` checks the message type: binary for msgpack, text otherwise.
        assert!(matches!(ws.next_frame().await, ServerFrame::Welcome { .. }), "offered {offered:?}");
        ws.ping(1).await;
        ws.close().await;
    }
}

async fn no_auth_within_the_timeout_closes_with_auth_timeout(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.auth_timeout_ms = 200).await;
    for encoding in Encoding::BOTH {
        let started = std::time::Instant::now();
        let mut ws = app.ws(encoding, None).await;
        // Activity before auth does not extend the deadline.
        ws.send(&ClientFrame::Ping { id: Some(1), ts: 1 }).await;
        ws.expect_error("not_authenticated").await;
        ws.expect_closing_error("auth_timeout", close::AUTH_TIMEOUT).await;
        let waited = started.elapsed();
        assert!(waited >= std::time::Duration::from_millis(200), "closed after {waited:?}");
    }
}

async fn a_plain_get_of_ws_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    expect_problem(app.anon(Method::GET, "/ws").send().await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app.anon(Method::GET, "/ws").header("upgrade", "websocket").header("connection", "upgrade").send();
    expect_problem(resp.await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
}

async fn a_close_from_the_client_is_answered_with_a_close(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        let normal = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        ws.send_raw(Message::Close(Some(normal))).await;
        // RFC 6455 §5.5.1: the endpoint that receives a close must answer it with a close.
        let answer = ws.recv().await;
        assert!(matches!(answer, Some(Message::Close(_))), "{encoding:?}: the node answered {answer:?}");
        ws.expect_end().await;
        assert_eq!(app.get_session(created.id).await["online"], false);
    }
}

both!(
    a_bearer_upgrade_is_welcomed_at_once_and_pings_are_answered,
    an_auth_frame_authenticates_and_only_once,
    bad_credentials_are_refused_with_their_close_codes,
    a_session_that_ran_out_of_time_meets_token_expired_at_auth_then_session_expired,
    session_expired_at_auth_takes_a_lifetime_shortened_after_the_token_was_issued,
);

sqlite_only!(
    the_server_prefers_msgpack_and_defaults_to_json,
    no_auth_within_the_timeout_closes_with_auth_timeout,
    a_plain_get_of_ws_is_a_bad_request,
    a_close_from_the_client_is_answered_with_a_close,
);
