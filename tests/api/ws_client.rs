//! A small WebSocket client for the gateway tests (`GET /ws`): connects with a chosen subprotocol
//! and an optional bearer header, sends `ClientFrame`s, other maps or raw messages, and reads
//! `ServerFrame`s under a deadline, so a frame that never comes fails the test instead of hanging
//! it.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
pub(crate) use session_client::proto::ws::codec::Encoding;
use session_client::proto::ws::codec::{Data, DecodeError};
use session_client::proto::ws::{ClientFrame, ServerFrame};
use session_service::config::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use crate::helpers::*;

/// Longest wait for any one frame, close or end of stream.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How soon a push must follow the call that caused it (loopback, one node).
pub(crate) const PROMPT: Duration = Duration::from_millis(100);
/// Long enough that the node's own one-second sweep never fires a deadline while a test moves the
/// clock by hours or days.
pub(crate) const A_YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

/// The SDK codec's [`Encoding`] in tungstenite messages, as the tests send and read them.
pub(crate) trait Messages {
    /// `value` (a frame, or any other map a test sends) as a data message of this encoding.
    fn message(self, value: &impl Serialize) -> Message;

    /// A server frame, asserting it came in this encoding's message type, alone in its message.
    fn frame(self, message: &Message) -> ServerFrame;
}

impl Messages for Encoding {
    fn message(self, value: &impl Serialize) -> Message {
        match self.encode(value).expect("encodes") {
            Data::Binary(bytes) => Message::Binary(bytes.into()),
            Data::Text(text) => Message::Text(text.into()),
        }
    }

    fn frame(self, message: &Message) -> ServerFrame {
        let decoded = match message {
            Message::Binary(bytes) => self.decode_binary(bytes),
            Message::Text(text) => self.decode_text(text),
            other => panic!("a {self:?} connection got {other:?}"),
        };
        decoded.unwrap_or_else(|e: DecodeError| panic!("not a {self:?} server frame ({e}): {message:?}"))
    }
}

/// Settings for tests that move the clock by hours or days: the node's background sweep must not
/// close connections for silence or token expiry behind the test's back.
pub(crate) fn patient_deadlines(o: &mut Config) {
    o.gateway.heartbeat_timeout_ms = A_YEAR_MS;
    o.gateway.token_grace_ms = A_YEAR_MS;
}

pub(crate) struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// What the server speaks on this connection (from the subprotocol it answered).
    pub encoding: Encoding,
    /// The `Sec-WebSocket-Protocol` the server answered, if any.
    pub protocol: Option<String>,
}

impl TestApp {
    /// Upgrades `GET /ws`, offering `protocols` (one header, comma-separated) and sending
    /// `Authorization: Bearer <bearer>` if given.
    pub(crate) async fn ws_upgrade(&self, protocols: &[&str], bearer: Option<&str>) -> Result<WsClient, WsError> {
        let mut request = format!("ws://{}/ws", self.addr).into_client_request().expect("a request");
        let headers = request.headers_mut();
        if !protocols.is_empty() {
            headers.insert("sec-websocket-protocol", HeaderValue::from_str(&protocols.join(", ")).expect("a header"));
        }
        if let Some(token) = bearer {
            headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).expect("a header"));
        }
        let (ws, response) = tokio::time::timeout(WAIT, connect_async(request)).await.expect("the upgrade answers")?;
        let protocol = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().expect("ASCII").to_owned());
        let encoding = protocol.as_deref().and_then(Encoding::from_protocol).unwrap_or(Encoding::Json);
        Ok(WsClient { ws, encoding, protocol })
    }

    /// A connection speaking `encoding`, not yet authenticated unless `bearer` is given.
    pub(crate) async fn ws(&self, encoding: Encoding, bearer: Option<&str>) -> WsClient {
        let client = self.ws_upgrade(&[encoding.protocol()], bearer).await.expect("the upgrade succeeds");
        assert_eq!(client.encoding, encoding, "the server speaks the offered subprotocol");
        client
    }

    /// A connection of `session` authenticated by the upgrade's bearer header, past its `welcome`.
    pub(crate) async fn ws_live(&self, encoding: Encoding, session: &Created) -> WsClient {
        let mut client = self.ws(encoding, Some(&session.access)).await;
        match client.next_frame().await {
            ServerFrame::Welcome { session_id, .. } => assert_eq!(session_id, session.id),
            other => panic!("expected welcome, got {other:?}"),
        }
        client
    }
}

impl WsClient {
    pub(crate) async fn send(&mut self, frame: &ClientFrame) {
        let message = self.encoding.message(frame);
        self.send_raw(message).await;
    }

    pub(crate) async fn send_raw(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.ws.send(message)).await.expect("the send completes").expect("the send");
    }

    /// The next data or close message (WebSocket pings and pongs skipped); `None` once the stream
    /// ended, however it ended.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server within {WAIT:?}"));
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(message)) => return Some(message),
                None | Some(Err(_)) => return None,
            }
        }
    }

    pub(crate) async fn next_frame(&mut self) -> ServerFrame {
        match self.recv().await {
            Some(message @ (Message::Text(_) | Message::Binary(_))) => self.encoding.frame(&message),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame and how long it took to come.
    pub(crate) async fn timed_frame(&mut self) -> (ServerFrame, Duration) {
        let start = Instant::now();
        let frame = self.next_frame().await;
        (frame, start.elapsed())
    }

    /// The next message is a close with `code`; then the stream ends.
    pub(crate) async fn expect_close(&mut self, code: u16) {
        match self.recv().await {
            Some(Message::Close(Some(CloseFrame { code: got, .. }))) => {
                assert_eq!(u16::from(got), code, "close code");
            }
            other => panic!("expected a close with {code}, got {other:?}"),
        }
        self.expect_end().await;
    }

    /// The stream ends (after the close handshake, if any) within [`WAIT`].
    pub(crate) async fn expect_end(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(Message::Close(_)) => continue,
                Some(other) => panic!("expected the end of the stream, got {other:?}"),
            }
        }
    }

    /// `error{code, close_code}` followed by the close itself.
    pub(crate) async fn expect_closing_error(&mut self, code: &str, close_code: u16) {
        match self.next_frame().await {
            ServerFrame::Error { code: got, close_code: got_close, .. } => {
                assert_eq!((got.as_str(), got_close), (code, Some(close_code)), "the error announcing the close");
            }
            other => panic!("expected error {code} before close {close_code}, got {other:?}"),
        }
        self.expect_close(close_code).await;
    }

    /// `error{code}` that keeps the connection open; returns its `id`.
    pub(crate) async fn expect_error(&mut self, code: &str) -> Option<u64> {
        match self.next_frame().await {
            ServerFrame::Error { id, code: got, close_code, .. } => {
                assert_eq!((got.as_str(), close_code), (code, None), "an error that keeps the connection open");
                id
            }
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    /// `revoked{reason}` followed by close 4101; returns how long the frame took to come.
    pub(crate) async fn expect_revoked(&mut self, reason: &str) -> Duration {
        let (frame, waited) = self.timed_frame().await;
        assert_eq!(frame, ServerFrame::Revoked { reason: reason.to_owned() });
        self.expect_close(session_client::proto::ws::close::REVOKED).await;
        waited
    }

    /// A `ping` answered by its `pong` (id and ts echoed); returns the pong's `server_time`.
    pub(crate) async fn ping(&mut self, id: u64) -> i64 {
        let ts = 1_700_000_000_000 + id as i64;
        self.send(&ClientFrame::Ping { id: Some(id), ts }).await;
        match self.next_frame().await {
            ServerFrame::Pong { id: got, ts: echoed, server_time } => {
                assert_eq!((got, echoed), (Some(id), ts), "pong echoes id and ts");
                server_time
            }
            other => panic!("expected pong {id}, got {other:?}"),
        }
    }

    /// Closes from the client side and waits for the stream to end.
    pub(crate) async fn close(mut self) {
        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        self.expect_end().await;
    }
}
