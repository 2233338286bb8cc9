//! What a client may send: size and rate limits, malformed frames (answered, then tolerated up to
//! a streak), the node's connection limit, and garbage that must never take the node down. Every
//! close is preceded by an `error` frame giving the reason. SQLite only: none of this reaches the
//! store.

use std::io::Write as _;

use reqwest::{Method, StatusCode};
use serde_json::json;
use session_client::proto::ws::{close, codec, ClientFrame, ServerFrame};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use crate::ws_client::*;

/// A `ping` padded (with an unknown field, which the size check sees first) to `bytes`.
fn padded_ping(encoding: Encoding, bytes: usize) -> Message {
    encoding.message(&json!({ "type": "ping", "ts": 1, "pad": "x".repeat(bytes) }))
}

/// `frame` twice in one data message.
fn two_in_one(encoding: Encoding, frame: &ClientFrame) -> Message {
    match encoding.message(frame) {
        Message::Binary(b) => Message::Binary([&b[..], &b[..]].concat().into()),
        Message::Text(t) => Message::Text(format!("{t}{t}").into()),
        other => unreachable!("{other:?}"),
    }
}

/// `frame` in MessagePack with `tail` after the map.
fn followed_by(frame: &ClientFrame, tail: &[u8]) -> Message {
    let mut bytes = codec::to_msgpack(frame).expect("encodes");
    bytes.extend_from_slice(tail);
    Message::Binary(bytes.into())
}

/// Malformed messages of each kind for a connection speaking `encoding`.
fn malformed(encoding: Encoding) -> Vec<(&'static str, Message)> {
    let mut cases = vec![
        ("unknown type", encoding.message(&json!({ "type": "pong", "ts": 1 }))),
        ("no type", encoding.message(&json!({ "ts": 1 }))),
        ("missing field", encoding.message(&json!({ "type": "ping" }))),
        ("mistyped field", encoding.message(&json!({ "type": "ping", "ts": "soon" }))),
        ("unknown field", encoding.message(&json!({ "type": "ping", "ts": 1, "extra": true }))),
        ("not a map", encoding.message(&json!([1, 2]))),
        ("positional array", encoding.message(&json!(["ping", 1, 5]))),
        ("two maps", two_in_one(encoding, &ClientFrame::Ping { id: Some(1), ts: 1 })),
    ];
    match encoding {
        Encoding::Msgpack => {
            cases.push(("bad msgpack bytes", Message::Binary(vec![0xc1, 0x00, 0xff].into())));
            cases.push(("truncated msgpack", Message::Binary(vec![0x82, 0xa4].into())));
            cases.push(("text frame", Message::Text(r#"{"type":"ping","ts":1}"#.into())));
            cases.push(("map then 00 00", followed_by(&ClientFrame::Ping { id: Some(1), ts: 1 }, &[0, 0])));
        }
        Encoding::Json => {
            cases.push(("bad JSON", Message::Text("{\"type\":".into())));
            cases.push(("empty text", Message::Text("".into())));
            cases.push(("binary frame", Encoding::Msgpack.message(&ClientFrame::Ping { id: None, ts: 1 })));
        }
    }
    cases
}

async fn a_message_over_the_size_limit_closes_with_frame_too_large(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.max_message_bytes = 1000).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        ws.send_raw(padded_ping(encoding, 900)).await;
        ws.expect_error("bad_frame").await; // under the limit: only the unknown field is wrong
        ws.send_raw(padded_ping(encoding, 1000)).await;
        ws.expect_closing_error("frame_too_large", close::PROTOCOL_ERROR).await;
    }
}

async fn a_message_over_64_kib_is_refused_with_a_reason_too(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        ws.send_raw(padded_ping(encoding, 70_000)).await;
        // Over tungstenite's own limit the read fails mid-message. The reason must still come;
        // the close frame itself may be lost to a reset (the node closes with the rest of the
        // message unread), so the end of the stream is enough after it.
        match ws.recv().await {
            Some(message) => {
                let frame = encoding.frame(&message);
                assert!(
                    matches!(&frame, ServerFrame::Error { code, close_code: Some(close::PROTOCOL_ERROR), .. } if code == "frame_too_large"),
                    "{encoding:?}: {frame:?}"
                );
            }
            None => panic!("{encoding:?}: the connection ended without a reason"),
        }
        ws.expect_end().await;
    }
}

async fn more_messages_than_the_rate_closes_with_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.messages_per_sec = 5).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        for i in 0..30 {
            ws.send(&ClientFrame::Ping { id: Some(i), ts: 1 }).await;
        }
        let mut pongs = 0;
        loop {
            match ws.next_frame().await {
                ServerFrame::Pong { .. } => pongs += 1,
                ServerFrame::Error { code, close_code, .. } => {
                    assert_eq!((code.as_str(), close_code), ("rate_limited", Some(close::RATE_LIMITED)));
                    break;
                }
                other => panic!("expected pongs then rate_limited, got {other:?}"),
            }
        }
        assert!((10..=12).contains(&pongs), "a burst of 10 (plus what refilled meanwhile), got {pongs}");
        ws.expect_close(close::RATE_LIMITED).await;
    }
}

async fn malformed_frames_are_answered_and_the_connection_keeps_working(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        for (i, (what, message)) in malformed(encoding).into_iter().enumerate() {
            ws.send_raw(message).await;
            match ws.next_frame().await {
                ServerFrame::Error { code, close_code: None, message, .. } => {
                    assert_eq!(code, "bad_frame", "{encoding:?} {what}");
                    assert!(!message.is_empty() && message.len() <= 200, "{what}: {message}");
                }
                other => panic!("{encoding:?} {what}: expected bad_frame, got {other:?}"),
            }
            ws.ping(i as u64).await;
        }
        // WebSocket-level pings are not frames of ours: no answer, no strike.
        ws.send_raw(Message::Ping(vec![1, 2, 3].into())).await;
        ws.ping(99).await;
        ws.close().await;
    }
}

async fn a_message_holding_more_than_one_map_is_refused_whole(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        // Before auth: an `auth` with something after it must not authenticate.
        let created = app.create_session("user-1").await;
        let auth = ClientFrame::Auth { id: Some(1), token: created.access.clone() };
        let mut ws = app.ws(encoding, None).await;
        let batched = match encoding {
            Encoding::Msgpack => followed_by(&auth, &[0, 0]),
            Encoding::Json => two_in_one(encoding, &auth),
        };
        ws.send_raw(batched).await;
        assert_eq!(ws.expect_error("bad_frame").await, None, "{encoding:?}: the batch is one bad message");
        ws.send(&auth).await;
        assert!(matches!(ws.next_frame().await, ServerFrame::Welcome { id: Some(1), .. }), "{encoding:?}");

        // Live: two pings in one message get one `bad_frame` and no `pong`: the next frame
        // answers the ping after them.
        ws.send_raw(two_in_one(encoding, &ClientFrame::Ping { id: Some(2), ts: 1 })).await;
        assert_eq!(ws.expect_error("bad_frame").await, None, "{encoding:?}");
        ws.ping(3).await;
        ws.close().await;
    }
}

async fn five_malformed_frames_in_a_row_close_with_protocol_error(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        let created = app.create_session("user-1").await;
        let mut ws = app.ws_live(encoding, &created).await;
        let cases = malformed(encoding);
        for (_, message) in cases.iter().take(4).cloned() {
            ws.send_raw(message).await;
            ws.expect_error("bad_frame").await;
        }
        ws.send_raw(cases[4].1.clone()).await;
        ws.expect_closing_error("protocol_error", close::PROTOCOL_ERROR).await;
    }
}

async fn the_connection_limit_refuses_with_server_full(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.gateway.max_connections = 2).await;
    let sessions = [app.create_session("user-1").await, app.create_session("user-2").await];
    let first = app.ws_live(Encoding::Msgpack, &sessions[0]).await;
    let _second = app.ws_live(Encoding::Json, &sessions[1]).await;
    for encoding in Encoding::BOTH {
        let mut third = app.ws(encoding, Some(&sessions[0].access)).await;
        third.expect_closing_error("server_full", close::SERVER_FULL).await;
    }
    assert_eq!(app.get_session(sessions[0].id).await["online"], true, "the refused connection replaced nothing");
    first.close().await;
    let mut again = app.ws_live(Encoding::Json, &sessions[0]).await;
    again.ping(1).await;
}

async fn unauthenticated_upgrades_cannot_keep_players_out(backend: Backend) {
    // Once 50 silent upgrades filled a node with WS_MAX_CONNECTIONS=50 until their auth timeout.
    let app = spawn_app_with(backend, |o| {
        o.gateway.max_connections = 50;
        o.gateway.max_pending = 20;
        o.gateway.auth_timeout_ms = 600_000;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(app.ws(Encoding::Msgpack, None).await);
    }
    for encoding in Encoding::BOTH {
        let created = app.create_session("player-1").await;
        let mut player = app.ws(encoding, None).await;
        player.send(&ClientFrame::Auth { id: Some(1), token: created.access.clone() }).await;
        assert!(matches!(player.next_frame().await, ServerFrame::Welcome { id: Some(1), .. }));
        player.ping(2).await;
        player.close().await;
    }
    // The oldest silent sockets made room, each told why: the last 20 silent ones waited, the
    // first player took the oldest of those's place and left the waiting ones once welcomed.
    silent[0].expect_closing_error("server_full", close::SERVER_FULL).await;
    assert_eq!(app.state().gateway.pending.len(), 19);
}

async fn unauthenticated_garbage_never_takes_the_node_down(backend: Backend) {
    let app = spawn_app(backend).await;
    for encoding in Encoding::BOTH {
        // Before auth: malformed frames are answered, a WebSocket ping is ignored.
        let mut ws = app.ws(encoding, None).await;
        for (what, message) in malformed(encoding).into_iter().take(3) {
            ws.send_raw(message).await;
            assert_eq!(ws.expect_error("bad_frame").await, None, "{what}");
        }
        ws.send_raw(Message::Ping(vec![].into())).await;
        let created = app.create_session("user-1").await;
        ws.send(&ClientFrame::Auth { id: None, token: created.access.clone() }).await;
        assert!(matches!(ws.next_frame().await, ServerFrame::Welcome { .. }));
        ws.close().await;

        let mut ws = app.ws(encoding, None).await;
        ws.send_raw(padded_ping(encoding, 10_000)).await;
        ws.expect_closing_error("frame_too_large", close::PROTOCOL_ERROR).await;

        // The client leaves without a close handshake.
        let ws = app.ws(encoding, None).await;
        drop(ws);
    }
    // Not WebSocket at all.
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.expect("connects");
    let mut junk = Vec::new();
    write!(junk, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n").unwrap();
    junk.extend_from_slice(b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n\r\n\x81\xff\x00\x00");
    tcp.write_all(&junk).await.expect("writes");
    drop(tcp);
    let health = app.anon(Method::GET, "/healthz").send().await.expect("the node still answers");
    assert_eq!(health.status(), StatusCode::OK);
    let created = app.create_session("user-1").await;
    app.ws_live(Encoding::Msgpack, &created).await.ping(1).await;
}

sqlite_only!(
    a_message_over_the_size_limit_closes_with_frame_too_large,
    a_message_over_64_kib_is_refused_with_a_reason_too,
    more_messages_than_the_rate_closes_with_rate_limited,
    malformed_frames_are_answered_and_the_connection_keeps_working,
    a_message_holding_more_than_one_map_is_refused_whole,
    five_malformed_frames_in_a_row_close_with_protocol_error,
    the_connection_limit_refuses_with_server_full,
    unauthenticated_upgrades_cannot_keep_players_out,
    unauthenticated_garbage_never_takes_the_node_down,
);
