//! One client connection: TCP from a chosen loopback source address, the WebSocket upgrade with
//! our subprotocol, `auth` → `welcome` (timed), then the idle loop (pings out, pongs in, a `refresh`
//! when the server warns that the access token is expiring) until told to stop or revoked.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use session_client::proto::ws::codec::{self, Data, DecodeError};
use session_client::proto::ws::{ClientFrame, ServerFrame};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{interval_at, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::sessions::Tokens;
use super::tally::Tally;
use super::Encoding;

/// Used when `welcome` announces no usable interval.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long our own close handshake may take before the socket is simply dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The server's socket address (loopback).
    pub addr: SocketAddr,
    /// `ws://host:port/ws`.
    url: String,
    encoding: codec::Encoding,
    timeout: Duration,
}

impl Target {
    /// Resolves `base` (already checked to be a loopback http:// URL) to the `/ws` endpoint.
    pub(super) async fn resolve(base: &str, encoding: Encoding, timeout: Duration) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base)?;
        let host = url.host_str().context("--base-url has no host")?.to_owned();
        let port = url.port_or_known_default().context("--base-url has no port")?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((bare, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .find(|a| a.ip().is_loopback())
            .with_context(|| format!("{host} does not resolve to a loopback address"))?;
        Ok(Self { addr, url: format!("ws://{host}:{port}/ws"), encoding: encoding.codec(), timeout })
    }

    fn request(&self) -> anyhow::Result<Request<()>> {
        let mut request = self.url.as_str().into_client_request()?;
        let protocol = HeaderValue::from_static(self.encoding.protocol());
        request.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        Ok(request)
    }
}

/// Why a connection could not be opened, or stopped early.
#[derive(Debug)]
pub(super) enum Failure {
    /// TCP connect (or bind) failed.
    Connect(std::io::ErrorKind),
    /// The HTTP upgrade failed (status, or a handshake error such as a missing subprotocol).
    Upgrade(String),
    /// The server closed with this code, after an `error` (its code) or `revoked`/`draining`.
    Closed { code: Option<u16>, reason: Option<String> },
    /// No `welcome` within the timeout.
    Timeout,
    /// Anything else: an I/O error mid-stream, an undecodable frame.
    Other(String),
}

impl Failure {
    /// The bucket this failure is counted in.
    pub(super) fn key(&self) -> String {
        match self {
            Self::Connect(kind) => format!("connect: {kind}"),
            Self::Upgrade(e) => format!("upgrade: {e}"),
            Self::Closed { code, reason } => {
                let code = code.map_or_else(|| "without code".to_owned(), |c| c.to_string());
                format!("close {code} ({})", reason.as_deref().unwrap_or("no reason frame"))
            }
            Self::Timeout => "timeout".to_owned(),
            Self::Other(e) => e.clone(),
        }
    }
}

/// How a held connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// We closed it when told to stop.
    Stopped,
    /// The server sent `revoked`, then closed as `close` says (code 4101 when all went well).
    Revoked { close: Failure },
    /// It ended before the stop for another reason (a [`Failure::key`]).
    Lost(String),
}

impl Ended {
    /// The key a connection that ended this way is counted under as lost; `None` when stopped.
    pub(super) fn lost_key(&self) -> Option<String> {
        match self {
            Self::Stopped => None,
            Self::Revoked { close } => Some(close.key()),
            Self::Lost(key) => Some(key.clone()),
        }
    }
}

/// What `welcome` said, and how long it took to get it.
#[derive(Debug, Clone)]
pub(super) struct Welcome {
    /// The connection's session (hyphenated UUID).
    pub session_id: String,
    /// The server's announced ping interval.
    pub heartbeat_interval: Duration,
    /// From starting the TCP connect to receiving `welcome`.
    pub connect_to_welcome: Duration,
    /// From sending `auth` to receiving `welcome`.
    pub auth_to_welcome: Duration,
}

/// When a held connection pings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pings {
    /// The first ping.
    pub first: Duration,
    /// Then one every so often.
    pub every: Duration,
}

impl Pings {
    /// A ping every `every`, the first at a random point of the first interval: spread over many
    /// connections, the server sees a steady trickle rather than one burst per interval.
    pub(super) fn spread(every: Duration) -> Self {
        Self { first: every.mul_f64(rand::thread_rng().gen_range(0.0..1.0)), every }
    }
}

/// What woke the idle loop.
enum Event {
    Stop,
    Tick,
    Frame(Result<ServerFrame, Failure>),
}

/// An authenticated connection.
pub(super) struct Live {
    ws: WebSocketStream<TcpStream>,
    encoding: codec::Encoding,
    refresh: Option<String>,
}

/// Small buffers: the load generator holds up to ~20,000 of these, and idle connections move a
/// few dozen bytes a second (tungstenite's defaults are 128 KiB each way).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10))
}

/// Connects from `source` (or a kernel-chosen address), upgrades, authenticates and waits for
/// `welcome`, all within the target's timeout.
pub(super) async fn open(target: &Target, source: Option<IpAddr>, tokens: Tokens) -> Result<(Live, Welcome), Failure> {
    match tokio::time::timeout(target.timeout, open_unbounded(target, source, tokens)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

async fn open_unbounded(target: &Target, source: Option<IpAddr>, tokens: Tokens) -> Result<(Live, Welcome), Failure> {
    let started = Instant::now();
    let socket = if target.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
    let socket = socket.map_err(|e| Failure::Connect(e.kind()))?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| Failure::Connect(e.kind()))?;
    }
    let stream = socket.connect(target.addr).await.map_err(|e| Failure::Connect(e.kind()))?;
    // Idle connections send a few small frames: don't let Nagle hold a ping back.
    let _ = stream.set_nodelay(true);
    let request = target.request().map_err(|e| Failure::Other(format!("request: {e}")))?;
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .map_err(|e| Failure::Upgrade(upgrade_error(&e)))?;

    let mut live = Live { ws, encoding: target.encoding, refresh: tokens.refresh };
    let auth_sent = Instant::now();
    live.send(&ClientFrame::Auth { id: Some(1), token: tokens.access }).await?;
    loop {
        match live.next_frame().await? {
            ServerFrame::Welcome { session_id, heartbeat_interval_ms, .. } => {
                let welcome = Welcome {
                    session_id: session_id.hyphenated().to_string(),
                    heartbeat_interval: match heartbeat_interval_ms {
                        0 => DEFAULT_HEARTBEAT,
                        ms => Duration::from_millis(ms),
                    },
                    connect_to_welcome: started.elapsed(),
                    auth_to_welcome: auth_sent.elapsed(),
                };
                return Ok((live, welcome));
            }
            frame => {
                if let Some(reason) = closing_reason(&frame) {
                    return Err(live.await_close(reason).await);
                }
            }
        }
    }
}

/// A short, countable description of a failed upgrade.
fn upgrade_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("HTTP {}", response.status().as_u16()),
        Error::Io(io) => format!("{}", io.kind()),
        other => other.to_string(),
    }
}

/// The failure a message that is not a server frame counts as: one bucket per encoding (with the
/// codec's reason) and one for a message of the wrong kind.
fn undecodable(encoding: codec::Encoding, e: &DecodeError) -> Failure {
    match (e, encoding) {
        (DecodeError::WrongKind(_), _) => Failure::Other("frame of the wrong kind for the subprotocol".to_owned()),
        (_, codec::Encoding::Msgpack) => Failure::Other(format!("bad msgpack frame: {e}")),
        (_, codec::Encoding::Json) => Failure::Other(format!("bad json frame: {e}")),
    }
}

/// The reason a frame announces the server is about to close, if it does.
fn closing_reason(frame: &ServerFrame) -> Option<String> {
    match frame {
        ServerFrame::Error { code, close_code: Some(_), .. } => Some(code.clone()),
        ServerFrame::Revoked { reason } => Some(format!("revoked: {reason}")),
        ServerFrame::Draining { .. } => Some("draining".to_owned()),
        _ => None,
    }
}

impl Live {
    async fn send(&mut self, frame: &ClientFrame) -> Result<(), Failure> {
        let message = match self.encoding.encode(frame) {
            Ok(Data::Binary(bytes)) => Message::Binary(bytes.into()),
            Ok(Data::Text(text)) => Message::Text(text.into()),
            Err(e) => return Err(Failure::Other(format!("encode: {e}"))),
        };
        self.ws.send(message).await.map_err(|e| Failure::Other(format!("send: {e}")))
    }

    /// The next data frame, decoded; a close or the end of the stream is a [`Failure`].
    async fn next_frame(&mut self) -> Result<ServerFrame, Failure> {
        loop {
            let message = match self.ws.next().await {
                None => return Err(Failure::Other("connection reset".to_owned())),
                Some(Err(e)) => return Err(Failure::Other(format!("read: {e}"))),
                Some(Ok(m)) => m,
            };
            let decoded = match message {
                Message::Binary(bytes) => self.encoding.decode_binary(&bytes),
                Message::Text(text) => self.encoding.decode_text(&text),
                Message::Close(frame) => {
                    return Err(Failure::Closed { code: frame.map(|f| u16::from(f.code)), reason: None })
                }
                // Control frames: tungstenite answers pings itself.
                _ => continue,
            };
            return decoded.map_err(|e| undecodable(self.encoding, &e));
        }
    }

    /// After a frame announcing a close: reads on until the close arrives (at most
    /// [`CLOSE_WAIT`]) and reports its code with the announced reason.
    async fn await_close(&mut self, reason: String) -> Failure {
        let closed = tokio::time::timeout(CLOSE_WAIT, async {
            loop {
                match self.next_frame().await {
                    Ok(_) => {}
                    Err(Failure::Closed { code, .. }) => return code,
                    Err(_) => return None,
                }
            }
        })
        .await;
        match closed {
            Ok(code) => Failure::Closed { code, reason: Some(reason) },
            Err(_) => Failure::Closed { code: None, reason: Some(format!("{reason}, then no close")) },
        }
    }

    /// Keeps the connection alive with `pings`, answering `token_expiring` with a `refresh`, until
    /// `stop` (then closes with 1000) or the server ends it. When a `revoked` frame arrives, its
    /// arrival time goes to `on_revoked` at once, before the close is awaited.
    pub(super) async fn hold(
        mut self,
        pings: Pings,
        stop: &CancellationToken,
        tally: &Tally,
        mut on_revoked: Option<oneshot::Sender<Instant>>,
    ) -> Ended {
        let mut ticker = interval_at(tokio::time::Instant::now() + pings.first, pings.every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut next_id = 2;
        loop {
            // `next_frame` is cancel-safe (it only awaits `StreamExt::next`), so losing the race
            // to the ticker drops no frame.
            let event = tokio::select! {
                () = stop.cancelled() => Event::Stop,
                _ = ticker.tick() => Event::Tick,
                frame = self.next_frame() => Event::Frame(frame),
            };
            let step = match event {
                Event::Stop => {
                    self.close().await;
                    return Ended::Stopped;
                }
                Event::Tick => {
                    tally.pings.fetch_add(1, Ordering::Relaxed);
                    next_id += 1;
                    self.send(&ClientFrame::Ping { id: Some(next_id), ts: unix_millis() }).await.map(|()| None)
                }
                Event::Frame(Ok(ServerFrame::Revoked { reason })) => {
                    let arrived = Instant::now();
                    if let Some(tx) = on_revoked.take() {
                        // The receiver is gone when the sample already timed out: nothing to tell.
                        let _ = tx.send(arrived);
                    }
                    return Ended::Revoked { close: self.await_close(format!("revoked: {reason}")).await };
                }
                Event::Frame(Ok(frame)) => self.handle(frame, &mut next_id, tally).await,
                Event::Frame(Err(failure)) => Err(failure),
            };
            match step {
                Ok(None) => {}
                Ok(Some(reason)) => return Ended::Lost(self.await_close(reason).await.key()),
                Err(failure) => return Ended::Lost(failure.key()),
            }
        }
    }

    /// Handles one frame of the idle phase; `Some(reason)` when the server is about to close.
    async fn handle(
        &mut self,
        frame: ServerFrame,
        next_id: &mut u64,
        tally: &Tally,
    ) -> Result<Option<String>, Failure> {
        match frame {
            ServerFrame::Pong { ts, .. } => tally.pong(unix_millis().saturating_sub(ts)),
            ServerFrame::TokenExpiring { .. } => {
                tally.token_expiring.fetch_add(1, Ordering::Relaxed);
                if let Some(refresh_token) = self.refresh.clone() {
                    *next_id += 1;
                    self.send(&ClientFrame::Refresh { id: Some(*next_id), refresh_token }).await?;
                }
            }
            ServerFrame::Tokens { refresh_token, .. } => {
                tally.refreshed.fetch_add(1, Ordering::Relaxed);
                self.refresh = Some(refresh_token);
            }
            ServerFrame::Error { code, close_code: None, .. } => tally.error(code),
            frame => return Ok(closing_reason(&frame)),
        }
        Ok(None)
    }

    /// Our side of the close handshake, bounded by [`CLOSE_WAIT`].
    pub(super) async fn close(&mut self) {
        let frame = CloseFrame { code: CloseCode::Normal, reason: "load test over".into() };
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if self.ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

fn unix_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_close_code_and_reason() {
        let f = Failure::Closed { code: Some(4100), reason: Some("invalid_token".into()) };
        assert_eq!(f.key(), "close 4100 (invalid_token)");
        assert_eq!(Failure::Closed { code: None, reason: None }.key(), "close without code (no reason frame)");
        assert_eq!(Failure::Connect(std::io::ErrorKind::AddrNotAvailable).key(), "connect: address not available");
    }

    #[test]
    fn a_revoked_connection_counts_as_lost_under_its_close() {
        let close = Failure::Closed { code: Some(4101), reason: Some("revoked: loadtest".into()) };
        assert_eq!(Ended::Revoked { close }.lost_key().as_deref(), Some("close 4101 (revoked: loadtest)"));
        assert_eq!(Ended::Stopped.lost_key(), None);
    }

    #[test]
    fn pings_start_within_the_first_interval() {
        for _ in 0..100 {
            let p = Pings::spread(Duration::from_secs(15));
            assert!(p.first < p.every, "{p:?}");
        }
    }

    #[test]
    fn frames_announcing_a_close_give_their_reason() {
        let err = |close_code| ServerFrame::Error { id: None, code: "x".into(), message: String::new(), close_code };
        assert_eq!(closing_reason(&err(Some(4001))).as_deref(), Some("x"));
        assert_eq!(closing_reason(&err(None)), None);
        assert_eq!(
            closing_reason(&ServerFrame::Revoked { reason: "logout".into() }).as_deref(),
            Some("revoked: logout")
        );
        assert_eq!(closing_reason(&ServerFrame::Draining { reconnect_after_ms: 5 }).as_deref(), Some("draining"));
    }

    #[test]
    fn undecodable_messages_are_counted_per_encoding_and_the_wrong_kind_apart() {
        let one = codec::to_msgpack(&ServerFrame::Revoked { reason: "x".into() }).unwrap();
        let two_maps = [one.clone(), one].concat();
        let e = codec::from_msgpack::<ServerFrame>(&two_maps).unwrap_err();
        let key = undecodable(codec::Encoding::Msgpack, &e).key();
        assert!(key.starts_with("bad msgpack frame: ") && key.contains("after the frame's map"), "{key}");
        let e = codec::from_json::<ServerFrame>(r#"{"type":"pong"}"#).unwrap_err();
        assert!(undecodable(codec::Encoding::Json, &e).key().starts_with("bad json frame: "));
        let e = codec::Encoding::Json.decode_binary::<ServerFrame>(&two_maps).unwrap_err();
        assert_eq!(undecodable(codec::Encoding::Json, &e).key(), "frame of the wrong kind for the subprotocol");
    }

    #[tokio::test]
    async fn the_upgrade_request_offers_the_chosen_subprotocol() {
        let target = Target::resolve("http://127.0.0.1:9", Encoding::Msgpack, Duration::from_secs(1)).await.unwrap();
        let request = target.request().unwrap();
        assert_eq!(request.uri(), "ws://127.0.0.1:9/ws");
        assert_eq!(request.headers()[header::SEC_WEBSOCKET_PROTOCOL], "session.v1.msgpack");
    }
}
