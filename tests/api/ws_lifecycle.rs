//! Deadlines over a connection's life (heartbeat, access-token warning and expiry, enforced by
//! `Gateway::sweep` at the manual clock's time, and a REST refresh that does not move them) and
//! presence (`online`, batched `last_seen_at`, live on the holding node only). The heartbeat cases
//! run on SQLite only (no store access); the rest on both stores.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use session_client::proto::ws::{close, ClientFrame, ServerFrame};
use uuid::Uuid;

use crate::helpers::*;
use crate::ws_client::*;

async fn silence_past_the_heartbeat_timeout_closes_with_heartbeat_timeout(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        app.advance(Duration::seconds(30));
        ws.ping(1).await;
        app.advance(Duration::seconds(45));
        app.state().gateway.sweep();
        // Had the sweep queued a push, it would come before this pong.
        ws.ping(2).await;
        app.advance(Duration::milliseconds(45_001));
        app.state().gateway.sweep();
        ws.expect_closing_error("heartbeat_timeout", close::HEARTBEAT_TIMEOUT).await;
    }
}

/// Moves the clock so that it reads `at_ms`.
/// A new session of `user-1` connected with header auth, past its `welcome`; with the access
/// token's expiry that `welcome` announced.
async fn welcomed(app: &TestApp, encoding: Encoding) -> (Created, WsClient, i64) {
    let created = app.create_session("user-1").await;
    let mut ws = app.ws(encoding, Some(&created.access)).await;
    let ServerFrame::Welcome { access_token_expires_at: exp, .. } = ws.next_frame().await else {
        panic!("expected welcome")
    };
    (created, ws, exp)
}

fn advance_to(app: &TestApp, at_ms: i64) {
    app.advance(Duration::milliseconds(at_ms - app.now().timestamp_millis()));
}

async fn token_expiring_comes_once_per_token_and_expiry_closes_with_token_expired(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.heartbeat_timeout_ms = A_YEAR_MS).await;
    for encoding in Encoding::BOTH {
        let (created, mut ws, exp) = welcomed(&app, encoding).await;
        advance_to(&app, exp - 60_001);
        app.state().gateway.sweep();
        ws.ping(1).await;
        advance_to(&app, exp - 60_000);
        app.state().gateway.sweep();
        assert_eq!(ws.next_frame().await, ServerFrame::TokenExpiring { access_token_expires_at: exp });
        app.state().gateway.sweep();
        ws.ping(2).await;

        ws.send(&ClientFrame::Refresh { id: Some(3), refresh_token: created.refresh.clone() }).await;
        let ServerFrame::Tokens { access_token_expires_at: exp2, .. } = ws.next_frame().await else {
            panic!("expected tokens")
        };
        assert!(exp2 > exp);
        advance_to(&app, exp2 - 60_000);
        app.state().gateway.sweep();
        assert_eq!(ws.next_frame().await, ServerFrame::TokenExpiring { access_token_expires_at: exp2 });

        advance_to(&app, exp2 + 29_999);
        app.state().gateway.sweep();
        ws.ping(4).await;
        advance_to(&app, exp2 + 30_000);
        app.state().gateway.sweep();
        ws.expect_closing_error("token_expired", close::TOKEN_EXPIRED).await;
    }
}

async fn a_token_with_less_than_the_warning_left_is_warned_at_the_next_sweep(backend: Backend) {
    // Access tokens of 30 s: less than the 60 s warning from the start. Only the node's own
    // one-second sweep runs here (the clock stands still).
    let app = spawn_app_with(backend, |o| o.sessions.access_ttl_secs = 30).await;
    for encoding in Encoding::BOTH {
        let (_, mut ws, exp) = welcomed(&app, encoding).await;
        let (frame, waited) = ws.timed_frame().await;
        assert_eq!(frame, ServerFrame::TokenExpiring { access_token_expires_at: exp });
        eprintln!("{encoding:?}: token_expiring came {waited:?} after welcome");
        // One sweep interval, with room for a busy machine.
        assert!(waited < std::time::Duration::from_secs(3), "{waited:?}");
    }
}

async fn a_rest_refresh_leaves_the_socket_on_its_old_access_token(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.heartbeat_timeout_ms = A_YEAR_MS).await;
    for encoding in Encoding::BOTH {
        let (created, mut ws, exp) = welcomed(&app, encoding).await;
        app.advance(Duration::minutes(5));
        let rest = app.refresh_ok(&created.refresh).await;
        assert!(ms(&rest.body["access_token_expires_at"]) > exp);
        // The socket still runs on the token it authenticated with: warned and closed by its expiry.
        advance_to(&app, exp - 60_000);
        app.state().gateway.sweep();
        assert_eq!(ws.next_frame().await, ServerFrame::TokenExpiring { access_token_expires_at: exp });
        advance_to(&app, exp + 30_000);
        app.state().gateway.sweep();
        ws.expect_closing_error("token_expired", close::TOKEN_EXPIRED).await;
        // The client reconnects with the access token it got over REST.
        app.ws_live(encoding, &Created { access: rest.access.clone(), ..created }).await.close().await;
    }
}

async fn a_socket_refresh_after_a_rest_refresh_moves_the_socket_to_the_new_token(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.heartbeat_timeout_ms = A_YEAR_MS).await;
    for encoding in Encoding::BOTH {
        let (created, mut ws, exp) = welcomed(&app, encoding).await;
        app.advance(Duration::minutes(5));
        let rest = app.refresh_ok(&created.refresh).await;
        ws.send(&ClientFrame::Refresh { id: Some(1), refresh_token: rest.refresh.clone() }).await;
        let ServerFrame::Tokens { access_token_expires_at: exp2, refresh_token, .. } = ws.next_frame().await else {
            panic!("expected tokens")
        };
        assert_eq!((generation(&refresh_token), exp2), (2, exp + 5 * 60_000), "rotated once more");
        advance_to(&app, exp + 30_000);
        app.state().gateway.sweep();
        ws.ping(2).await; // no warning, no close: the old token's deadlines are gone
        advance_to(&app, exp2 - 60_000);
        app.state().gateway.sweep();
        assert_eq!(ws.next_frame().await, ServerFrame::TokenExpiring { access_token_expires_at: exp2 });
        ws.close().await;
    }
}

fn ms(v: &serde_json::Value) -> i64 {
    ts(v).timestamp_millis()
}

/// `online` of `id` in the three views that show it.
async fn online_everywhere(app: &TestApp, id: Uuid, user: &str, access: &str) -> [bool; 3] {
    let one = app.get_session(id).await["online"].as_bool().expect("online");
    let me = expect_json(app.me(access).await, reqwest::StatusCode::OK).await;
    let listed = app.reader(Method::GET, &format!("/sessions/user/{user}")).send().await.unwrap();
    let listed = expect_json(listed, reqwest::StatusCode::OK).await;
    let find = |v: &serde_json::Value| {
        v["sessions"].as_array().expect("sessions").iter().find(|s| s["id"] == id.to_string()).expect("listed")
            ["online"]
            .as_bool()
            .expect("online")
    };
    [one, find(&me), find(&listed)]
}

async fn presence_shows_online_while_connected(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let other = app.create_session("user-1").await;
        assert_eq!(online_everywhere(&app, created.id, "user-1", &other.access).await, [false; 3]);
        let ws = app.ws_live(encoding, &created).await;
        assert_eq!(online_everywhere(&app, created.id, "user-1", &other.access).await, [true; 3]);
        assert_eq!(online_everywhere(&app, other.id, "user-1", &other.access).await, [false; 3]);
        ws.close().await;
        assert_eq!(online_everywhere(&app, created.id, "user-1", &other.access).await, [false; 3]);
    }
}

fn at_ms(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.timestamp_millis())
}

async fn stored_last_seen(app: &TestApp, id: Uuid) -> Option<DateTime<Utc>> {
    app.state().sessions.stored(id).await.expect("the session").last_seen_at
}

async fn flush(app: &TestApp) {
    app.state().gateway.flush_presence().await;
}

async fn last_seen_reaches_the_store_in_batches_not_per_heartbeat(backend: Backend) {
    // Only the test flushes.
    let app = spawn_app_with(backend, |o| o.gateway.presence_flush_ms = A_YEAR_MS).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        let connected = app.now();
        flush(&app).await;
        assert_eq!(stored_last_seen(&app, created.id).await, at_ms(connected));

        for i in 0..3 {
            app.advance(Duration::seconds(5));
            ws.ping(i).await;
        }
        assert_eq!(stored_last_seen(&app, created.id).await, at_ms(connected), "pings alone write nothing");
        let view = app.get_session(created.id).await;
        assert_eq!(Some(ts(&view["last_seen_at"])), at_ms(app.now()), "the API shows the live value");
        flush(&app).await;
        assert_eq!(stored_last_seen(&app, created.id).await, at_ms(app.now()));
        let unchanged = app.stored_rows("audit_log").await;

        // Activity of a connection that has since closed is flushed too.
        app.advance(Duration::seconds(5));
        ws.ping(9).await;
        let last = app.now();
        ws.close().await;
        app.advance(Duration::seconds(5));
        flush(&app).await;
        assert_eq!(stored_last_seen(&app, created.id).await, at_ms(last));
        assert_eq!(app.stored_rows("audit_log").await, unchanged, "presence is not audited");
    }
}

async fn last_seen_is_live_on_the_node_holding_the_connection_and_flushed_elsewhere(backend: Backend) {
    // Only the test flushes; both nodes read one database and share the clock.
    let holder = spawn_app_with(backend, |o| o.gateway.presence_flush_ms = A_YEAR_MS).await;
    let other = holder.sibling(|o| o.gateway.presence_flush_ms = A_YEAR_MS).await;
    let created = holder.create_session("user-1").await;
    let mut ws = holder.ws_live(Encoding::Json, &created).await;
    holder.advance(Duration::seconds(7));
    ws.ping(1).await;
    let pinged = at_ms(holder.now());
    let seen = |v: serde_json::Value| v.get("last_seen_at").map(ts);
    assert_eq!(seen(holder.get_session(created.id).await), pinged, "the holder shows its in-memory activity");
    assert_eq!(seen(other.get_session(created.id).await), None, "elsewhere: what was flushed (nothing yet)");
    flush(&holder).await;
    assert_eq!(seen(other.get_session(created.id).await), pinged, "after the holder's flush");
    ws.close().await;
}

async fn a_client_that_stops_reading_stays_online_until_the_heartbeat_timeout_and_one_second_more(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    // Never read again: the client answers neither the closing error nor the close frame.
    let _gone = app.ws_live(Encoding::Json, &created).await;
    app.advance(Duration::seconds(45));
    app.state().gateway.sweep();
    assert_eq!(app.get_session(created.id).await["online"], true, "not past the timeout yet");
    app.advance(Duration::milliseconds(1));
    let timed_out = std::time::Instant::now();
    app.state().gateway.sweep();
    while app.get_session(created.id).await["online"] == true {
        assert!(timed_out.elapsed() < std::time::Duration::from_secs(5), "still online");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let waited = timed_out.elapsed();
    eprintln!("offline {waited:?} after the heartbeat timeout fired");
    // The node waits one second for the close answer that never comes, then lets go.
    assert!(waited >= std::time::Duration::from_millis(950), "{waited:?}");
}

sqlite_only!(
    silence_past_the_heartbeat_timeout_closes_with_heartbeat_timeout,
    a_client_that_stops_reading_stays_online_until_the_heartbeat_timeout_and_one_second_more,
);

both!(
    a_token_with_less_than_the_warning_left_is_warned_at_the_next_sweep,
    a_rest_refresh_leaves_the_socket_on_its_old_access_token,
    a_socket_refresh_after_a_rest_refresh_moves_the_socket_to_the_new_token,
    last_seen_is_live_on_the_node_holding_the_connection_and_flushed_elsewhere,
    token_expiring_comes_once_per_token_and_expiry_closes_with_token_expired,
    presence_shows_online_while_connected,
    last_seen_reaches_the_store_in_batches_not_per_heartbeat,
);
