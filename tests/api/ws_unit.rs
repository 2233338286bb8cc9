//! The connection state machine (`ws::conn::serve`) driven over channels instead of a socket:
//! the paths that need no session, with paused time where a deadline is the subject. The gateway sits on an in-memory SQLite store these paths never touch.
//!
//! Time is paused after the store is connected, not from the start (`start_paused`): with paused
//! time the runtime jumps the clock whenever it is idle, and waiting for SQLite's worker thread
//! looks idle, so the pool's acquire timeout fires before the connection opens.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use chrono::Utc;
use futures::channel::mpsc;
use futures::{Sink, Stream, StreamExt};
use session_client::proto::ws::codec::{self, Encoding};
use session_client::proto::ws::{close, ServerFrame};
use session_service::app::{assemble, Backends, Wiring};
use session_service::clock::{Clock, ManualClock};
use session_service::fleet::FleetConfig;
use session_service::session::{Actor, Device, NewSession, Policy, RequestContext};
use session_service::tokens::{AccessTokens, RefreshSecrets, SigningKeyPair};
use session_service::ws::conn::{serve, Socket};
use session_service::ws::{Gateway, GatewayConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The server's end: reads what the peer sends, writes to the peer.
struct Duplex {
    inbound: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
    outbound: mpsc::UnboundedSender<Message>,
}

impl Stream for Duplex {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbound.poll_next_unpin(cx)
    }
}

impl Sink<Message> for Duplex {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.outbound.poll_ready(cx).map_err(axum::Error::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.outbound.start_send(item).map_err(axum::Error::new)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.outbound.close_channel();
        Poll::Ready(Ok(()))
    }
}

/// The client's end of a connection served by a spawned `serve`.
struct Peer {
    to_server: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    from_server: mpsc::UnboundedReceiver<Message>,
    task: JoinHandle<()>,
}

impl Peer {
    /// A JSON connection without a bearer token.
    fn connect(gw: &Arc<Gateway>) -> Self {
        let (to_server, inbound) = mpsc::unbounded();
        let (outbound, from_server) = mpsc::unbounded();
        let socket = Socket::new(Duplex { inbound, outbound }, Encoding::Json, Duration::from_secs(1));
        let task = tokio::spawn(serve(socket, gw.clone(), None, None));
        Self { to_server, from_server, task }
    }

    fn send(&self, text: &str) {
        self.to_server.unbounded_send(Ok(Message::Text(text.into()))).expect("the server reads");
    }

    async fn recv(&mut self) -> Message {
        self.from_server.next().await.expect("the server wrote before ending")
    }

    async fn frame(&mut self) -> ServerFrame {
        match self.recv().await {
            Message::Text(t) => codec::from_json(&t).expect("a server frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn error(&mut self) -> (String, Option<u16>) {
        match self.frame().await {
            ServerFrame::Error { code, close_code, .. } => (code, close_code),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The close frame, then the peer answers it and the connection task ends.
    async fn expect_close(mut self, code: u16) {
        match self.recv().await {
            Message::Close(Some(CloseFrame { code: got, .. })) => assert_eq!(got, code),
            other => panic!("expected close {code}, got {other:?}"),
        }
        let _ = self.to_server.unbounded_send(Ok(Message::Close(None)));
        self.to_server.close_channel();
        self.task.await.expect("the connection task ends cleanly");
    }
}

async fn gateway(config: GatewayConfig) -> Arc<Gateway> {
    let store = session_service::store::connect("sqlite::memory:").await.expect("an in-memory store");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let access = Arc::new(AccessTokens::new("session-service", "game-platform", &SigningKeyPair::generate(), &[]));
    let wiring = Wiring {
        clock,
        access,
        refresh: RefreshSecrets::new([7; 32], None),
        policy: Policy::default(),
        gateway: config,
        fleet: FleetConfig::default(),
        feed_max_wait: Duration::from_secs(25),
    };
    assemble(Backends::single_node(store, Duration::from_secs(3)), wiring).gateway
}

#[tokio::test]
async fn a_connection_without_auth_closes_at_the_auth_deadline() {
    let gw = gateway(GatewayConfig::default()).await;
    tokio::time::pause();
    let started = Instant::now();
    let mut peer = Peer::connect(&gw);
    peer.send(r#"{"type":"ping","id":1,"ts":1}"#);
    assert_eq!(peer.error().await, ("not_authenticated".to_owned(), None));
    assert_eq!(peer.error().await, ("auth_timeout".to_owned(), Some(close::AUTH_TIMEOUT)));
    // Activity does not move the deadline (timers have millisecond resolution).
    let waited = started.elapsed();
    let timeout = gw.config.auth_timeout;
    assert!(waited >= timeout && waited <= timeout + Duration::from_millis(2), "closed after {waited:?}");
    peer.expect_close(close::AUTH_TIMEOUT).await;
    assert_eq!(gw.open_connections(), 0);
}

#[tokio::test]
async fn malformed_frames_before_auth_are_answered_until_a_streak_closes() {
    let gw = gateway(GatewayConfig::default()).await;
    let mut peer = Peer::connect(&gw);
    peer.send("{");
    assert_eq!(peer.error().await, ("bad_frame".to_owned(), None));
    peer.to_server.unbounded_send(Ok(Message::Binary(vec![0x90].into()))).unwrap();
    assert_eq!(peer.error().await, ("bad_frame".to_owned(), None));
    // A WebSocket ping is neither answered by us nor a strike.
    peer.to_server.unbounded_send(Ok(Message::Ping(vec![].into()))).unwrap();
    // Well-formed but not allowed yet: answered, and it restarts the streak at one.
    peer.send(r#"{"type":"ping","ts":1}"#);
    assert_eq!(peer.error().await, ("not_authenticated".to_owned(), None));
    for bad in [r#"{"type":"auth"}"#, "null", "[]"] {
        peer.send(bad);
        assert_eq!(peer.error().await, ("bad_frame".to_owned(), None), "{bad}");
    }
    peer.send(r#"{"type":"auth","token":7}"#);
    assert_eq!(peer.error().await, ("protocol_error".to_owned(), Some(close::PROTOCOL_ERROR)));
    peer.expect_close(close::PROTOCOL_ERROR).await;
    assert!(gw.registry.is_empty());
}

/// An access token of a fresh session on the gateway's own store.
async fn access_token(gw: &Gateway, user: &str) -> String {
    let new = NewSession {
        user_id: user.into(),
        device: Device {
            id: format!("device-of-{user}"),
            platform: "ios".into(),
            name: None,
            model: None,
            app_version: None,
            fingerprint: None,
        },
        ip: None,
        user_agent: None,
        metadata: serde_json::json!({}),
    };
    let ctx = RequestContext { actor: Actor::Service("test".into()), ip: None, user_agent: None };
    gw.sessions.create(new, &ctx).await.expect("a session").access_token
}

impl Peer {
    /// Sends `auth` with `token` and expects `welcome`.
    async fn authenticate(&mut self, token: &str) {
        self.send(&serde_json::json!({ "type": "auth", "token": token }).to_string());
        match self.frame().await {
            ServerFrame::Welcome { .. } => {}
            other => panic!("expected welcome, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_authenticated_connection_over_the_limit_is_refused_with_server_full() {
    let gw = gateway(GatewayConfig { max_connections: 1, ..GatewayConfig::default() }).await;
    let (one, two) = (access_token(&gw, "player-1").await, access_token(&gw, "player-2").await);
    let mut first = Peer::connect(&gw);
    first.authenticate(&one).await;
    let mut second = Peer::connect(&gw);
    second.send(&serde_json::json!({ "type": "auth", "token": two }).to_string());
    assert_eq!(second.error().await, ("server_full".to_owned(), Some(close::SERVER_FULL)));
    second.expect_close(close::SERVER_FULL).await;
    assert_eq!(gw.open_connections(), 1);
    // The first leaves without a close frame: its place is free again.
    first.to_server.close_channel();
    first.task.await.unwrap();
    assert_eq!(gw.open_connections(), 0);
    let mut third = Peer::connect(&gw);
    third.authenticate(&two).await;
}

#[tokio::test]
async fn sockets_that_never_authenticate_cannot_keep_a_real_client_out() {
    let config = GatewayConfig { max_connections: 2, max_pending: 3, ..GatewayConfig::default() };
    let gw = gateway(config).await;
    let token = access_token(&gw, "player-1").await;
    // More silent sockets than there are places, authenticated or not.
    let mut silent = Vec::new();
    for _ in 0..5 {
        let mut peer = Peer::connect(&gw);
        peer.send("{");
        assert_eq!(peer.error().await.0, "bad_frame", "the socket is being served");
        silent.push(peer);
    }
    // Each newcomer beyond three closed the oldest waiting socket.
    for peer in silent.drain(..2) {
        let mut peer = peer;
        assert_eq!(peer.error().await, ("server_full".to_owned(), Some(close::SERVER_FULL)));
        peer.expect_close(close::SERVER_FULL).await;
    }
    assert_eq!(gw.pending.len(), 3);
    let mut player = Peer::connect(&gw);
    player.authenticate(&token).await;
    assert_eq!(gw.registry.len(), 1);
    // The player took the oldest silent socket's place, and gave it up once welcomed.
    let mut oldest = silent.remove(0);
    assert_eq!(oldest.error().await, ("server_full".to_owned(), Some(close::SERVER_FULL)));
    oldest.expect_close(close::SERVER_FULL).await;
    assert_eq!(gw.pending.len(), 2);
}

#[tokio::test]
async fn a_drain_reaches_a_connection_still_authenticating() {
    let gw = gateway(GatewayConfig::default()).await;
    tokio::time::pause();
    let mut peer = Peer::connect(&gw);
    peer.send("{");
    assert_eq!(peer.error().await.0, "bad_frame");
    let started = Instant::now();
    let drain = tokio::spawn({
        let gw = gw.clone();
        async move { gw.drain().await }
    });
    match peer.frame().await {
        ServerFrame::Draining { reconnect_after_ms } => assert!(reconnect_after_ms <= 5000),
        other => panic!("expected draining, got {other:?} after {:?}", started.elapsed()),
    }
    peer.expect_close(close::DRAINING).await;
    drain.await.unwrap();
}
