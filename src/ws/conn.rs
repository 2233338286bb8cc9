//! One WebSocket connection, from upgrade to close: authenticate, then select over the socket, the
//! push queue and the kill switch. Generic over `Sink`/`Stream`, so it runs over channels in
//! tests as well as over a real socket.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message};
use futures::{Sink, SinkExt, Stream, StreamExt};
use rand::Rng;
use session_client::proto::ws::{close, ClientFrame, ServerFrame};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::Instrument;

use super::close::CloseReason;
use super::codec::{Encoding, Inbound, Verdict};
use super::Gateway;
use crate::metrics::PushKind;
use crate::registry::{LiveConnection, Push};
use crate::session::{Actor, RequestContext, SessionError, SessionRecord};
use crate::tokens::{AccessClaims, RefreshToken};

/// How long a closing connection waits for the peer's close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The socket with its encoding and write deadline. A write that fails or times out means the
/// peer is gone or not reading: the connection just ends.
pub struct Socket<S> {
    inner: S,
    encoding: Encoding,
    write_timeout: std::time::Duration,
    /// The last read failed because a message exceeded the library's hard size limit.
    oversized: bool,
}

fn is_capacity_error(e: axum::Error) -> bool {
    e.into_inner()
        .downcast::<tokio_tungstenite::tungstenite::Error>()
        .is_ok_and(|e| matches!(*e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

/// The peer cannot be written to any more.
struct Gone;

impl<S> Socket<S>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    pub fn new(inner: S, encoding: Encoding, write_timeout: std::time::Duration) -> Self {
        Self { inner, encoding, write_timeout, oversized: false }
    }

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        let message = super::codec::encode(self.encoding, frame);
        match timeout(self.write_timeout, self.inner.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }

    async fn recv(&mut self) -> Option<Message> {
        match self.inner.next().await {
            Some(Ok(message)) => Some(message),
            Some(Err(e)) => {
                self.oversized = is_capacity_error(e);
                None
            }
            None => None,
        }
    }

    /// After `recv` returned `None`: says why, when the reason is worth telling the client, and
    /// answers a close the client sent (tungstenite queues the reply until the next write or
    /// flush; RFC 6455 §5.5.1 requires it).
    async fn ended(&mut self) {
        if std::mem::take(&mut self.oversized) {
            self.close_for(None, CloseReason::FrameTooLarge).await;
        } else {
            let _ = timeout(self.write_timeout, self.inner.flush()).await;
        }
    }

    /// Sends `frame` (the reason), then the close frame with `code`, then lingers briefly for the
    /// peer's close so the frames are not lost to a reset. `Err` if the reason could not be sent.
    async fn close(&mut self, frame: ServerFrame, code: u16) -> Result<(), Gone> {
        self.send(&frame).await?;
        let close = Message::Close(Some(CloseFrame { code, reason: "".into() }));
        if !matches!(timeout(self.write_timeout, self.inner.send(close)).await, Ok(Ok(()))) {
            return Ok(());
        }
        let _ = timeout(CLOSE_LINGER, async { while self.recv().await.is_some() {} }).await;
        Ok(())
    }

    /// Closes with `reason`'s `error` frame and close code; `id` answers the request that caused
    /// it.
    async fn close_for(&mut self, id: Option<u64>, reason: CloseReason) {
        let _ = self.close(reason.frame(id), reason.close_code()).await;
    }
}

/// An `error` frame that answers a request and keeps the connection open.
fn error_frame(id: Option<u64>, code: &str, message: &str) -> ServerFrame {
    ServerFrame::Error { id, code: code.to_owned(), message: message.to_owned(), close_code: None }
}

/// An `error` frame for a refused request, rendered from the domain's error.
fn refusal_frame(id: Option<u64>, e: &SessionError) -> ServerFrame {
    error_frame(id, e.code(), &e.public_message())
}

struct Authed {
    claims: AccessClaims,
    session: SessionRecord,
    id: Option<u64>,
}

/// Serves one upgraded connection until it closes. `bearer` is the access token from the
/// upgrade's `Authorization` header, if any.
///
/// Everything the connection logs is inside its span, `ws`, which carries `session.id` and
/// `user.id` once the connection has authenticated.
pub async fn serve<S>(socket: Socket<S>, gw: Arc<Gateway>, bearer: Option<String>, ip: Option<String>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let span = tracing::info_span!("ws", session.id = tracing::field::Empty, user.id = tracing::field::Empty);
    serving(socket, gw, bearer, ip).instrument(span).await;
}

async fn serving<S>(socket: Socket<S>, gw: Arc<Gateway>, bearer: Option<String>, ip: Option<String>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let _open = gw.open_guard();
    let mut socket = socket;
    let mut inbound = Inbound::new(socket.encoding, gw.config.inbound);
    // Every rare or one-off step is boxed, so an idle connection's task carries only the live
    // loop's state, not the largest future it might ever await (docs/performance.md). The box is
    // bound by `let` first: a temporary inside `Box::pin(f()).await` lives to the end of the
    // statement, across the await, and would still be reserved in the task.
    let opening = Box::pin(open(&mut socket, &mut inbound, &gw, bearer, ip));
    let Some((registration, ctx)) = opening.await else { return };
    live(socket, inbound, &gw, registration, ctx).await;
}

/// Authenticates, registers and welcomes the connection.
async fn open<'g, S>(
    socket: &mut Socket<S>,
    inbound: &mut Inbound,
    gw: &'g Gateway,
    bearer: Option<String>,
    ip: Option<String>,
) -> Option<(Registration<'g>, RequestContext)>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let (waiting, evicted) = gw.pending.enter(&gw.shutdown);
    if evicted {
        gw.metrics.ws_pending_evicted();
    }
    let authed = authenticate(socket, inbound, gw, bearer, &waiting.token).await?;
    drop(waiting);
    let span = tracing::Span::current();
    span.record("session.id", tracing::field::display(authed.session.id));
    span.record("user.id", authed.session.user_id.as_str());
    let ctx = RequestContext { actor: Actor::User(authed.claims.sub.clone()), ip, user_agent: None };
    let registration = start(socket, gw, authed).await?;
    Some((registration, ctx))
}

/// Waits for a valid `auth` (or checks the upgrade's bearer token). `evict` fires when the node
/// drains, or when newer sockets need this one's place among those waiting to authenticate.
async fn authenticate<S>(
    socket: &mut Socket<S>,
    inbound: &mut Inbound,
    gw: &Gateway,
    bearer: Option<String>,
    evict: &tokio_util::sync::CancellationToken,
) -> Option<Authed>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    if let Some(token) = bearer {
        return check_token(socket, gw, &token, None).await;
    }
    let deadline = Instant::now() + gw.config.auth_timeout;
    loop {
        let received = tokio::select! {
            () = evict.cancelled() => {
                if gw.shutdown.is_cancelled() {
                    drain(socket, gw).await;
                } else {
                    socket.close_for(None, CloseReason::TooManyWaiting).await;
                }
                return None;
            }
            received = timeout_at(deadline, socket.recv()) => received,
        };
        let message = match received {
            Err(_) => {
                socket.close_for(None, CloseReason::AuthTimeout).await;
                return None;
            }
            Ok(None) => {
                socket.ended().await;
                return None;
            }
            Ok(Some(m)) => m,
        };
        let verdict = inbound.classify(&message);
        let flow = match verdict {
            Verdict::Frame(ClientFrame::Auth { id, token }) => return check_token(socket, gw, &token, id).await,
            Verdict::Frame(_) if inbound.misplaced() => Err(Verdict::Abusive),
            Verdict::Frame(ClientFrame::Ping { id, .. } | ClientFrame::Refresh { id, .. }) => {
                Ok(error_frame(id, "not_authenticated", "send an auth frame first"))
            }
            Verdict::Malformed(detail) => Ok(error_frame(None, "bad_frame", &detail)),
            Verdict::Control => continue,
            other => Err(other),
        };
        match flow {
            Ok(frame) => {
                if socket.send(&frame).await.is_err() {
                    return None;
                }
            }
            Err(verdict) => {
                close_on(socket, verdict).await;
                return None;
            }
        }
    }
}

async fn check_token<S>(socket: &mut Socket<S>, gw: &Gateway, token: &str, id: Option<u64>) -> Option<Authed>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let started = std::time::Instant::now();
    let authenticated = gw.sessions.authenticate(token).await;
    gw.metrics.ws_auth(started.elapsed().as_secs_f64());
    match authenticated {
        Ok((claims, session)) => Some(Authed { claims, session, id }),
        Err(e) => {
            log_store_failure(&e, "authenticating a connection");
            socket.close_for(id, CloseReason::Refused(e)).await;
            None
        }
    }
}

/// Closes for an inbound verdict that ends the connection.
async fn close_on<S>(socket: &mut Socket<S>, verdict: Verdict)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let reason = match verdict {
        Verdict::TooLarge => CloseReason::FrameTooLarge,
        Verdict::RateLimited => CloseReason::RateLimited,
        Verdict::Abusive => CloseReason::Abusive,
        Verdict::Closed => return socket.ended().await,
        Verdict::Frame(_) | Verdict::Malformed(_) | Verdict::Control => return,
    };
    socket.close_for(None, reason).await;
}

/// Logs a store failure behind a refusal, once, here where it is handled (other refusals are the
/// client's business, not the operator's).
fn log_store_failure(e: &SessionError, doing: &str) {
    if let SessionError::Store(cause) = e {
        tracing::warn!(error = cause as &dyn std::error::Error, "{doing}: the store failed");
    }
}

/// Unregisters the connection however the task ends.
struct Registration<'a> {
    gw: &'a Gateway,
    conn: Arc<LiveConnection>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.gw.registry.unregister(&self.conn);
        self.gw.release_seat();
        // The directory entry goes in the background; a node that dies leaves entries its
        // peers ignore once its liveness key lapses.
        let (fleet, conn) = (self.gw.fleet.clone(), self.conn.clone());
        self.gw.tasks.spawn(async move { fleet.disconnected(&conn).await });
    }
}

/// Registers the connection, re-checks the session and sends `welcome`. Boxed by the caller:
/// what it holds (the session record, the claims) is not needed for the connection's lifetime.
async fn start<'g, S>(socket: &mut Socket<S>, gw: &'g Gateway, authed: Authed) -> Option<Registration<'g>>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    if !gw.take_seat() {
        socket.close_for(authed.id, CloseReason::AtConnectionLimit).await;
        return None;
    }
    let now_ms = gw.now_ms();
    let exp_ms = authed.claims.exp * 1000;
    // From here on the registration gives the seat back, however the connection ends.
    let conn = gw.registry.register(authed.session.id, &authed.session.user_id, exp_ms, now_ms, &gw.shutdown);
    let registration = Registration { gw, conn };
    gw.fleet.connected(&registration.conn).await;
    // A revocation committed between the check above and the claim found no connection to tell:
    // look once more now that pushes can reach us (src/fleet.rs explains why this suffices).
    match gw.sessions.cached(authed.session.id).await {
        Ok(Some(s)) if s.is_active(gw.sessions.now()) => {}
        Ok(Some(s)) => {
            let ended = SessionError::inactive(&s, gw.sessions.now());
            socket.close_for(None, CloseReason::Refused(ended)).await;
            return None;
        }
        Ok(None) => {
            socket.close_for(None, CloseReason::Refused(SessionError::Revoked)).await;
            return None;
        }
        // The check above just succeeded; a store hiccup here is not a reason to refuse.
        Err(e) => tracing::warn!(error = &e as &dyn std::error::Error, "re-checking a new connection's session failed"),
    }
    let welcome = ServerFrame::Welcome {
        id: authed.id,
        session_id: authed.session.id,
        user_id: authed.session.user_id,
        heartbeat_interval_ms: gw.config.heartbeat_interval.as_millis() as u64,
        heartbeat_timeout_ms: gw.config.heartbeat_timeout.as_millis() as u64,
        server_time: now_ms,
        access_token_expires_at: exp_ms,
    };
    socket.send(&welcome).await.ok()?;
    Some(registration)
}

/// The live loop: the only state an idle connection keeps.
async fn live<S>(
    mut socket: Socket<S>,
    mut inbound: Inbound,
    gw: &Gateway,
    registration: Registration<'_>,
    ctx: RequestContext,
) where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let conn = &registration.conn;
    loop {
        let flow = tokio::select! {
            biased;
            () = conn.kill.cancelled() => {
                let closing = Box::pin(killed(&mut socket, gw));
                closing.await;
                ControlFlow::Break(())
            }
            push = conn.next_push() => {
                let pushing = Box::pin(on_push(&mut socket, push));
                pushing.await
            }
            message = socket.recv() => match message {
                None => {
                    let ending = Box::pin(socket.ended());
                    ending.await;
                    ControlFlow::Break(())
                }
                Some(m) => on_message(&mut socket, &mut inbound, gw, conn, &ctx, m).await,
            },
        };
        if flow.is_break() {
            return;
        }
    }
}

/// Tells the client the node is draining and when to reconnect (jittered), then closes 4000.
async fn drain<S>(socket: &mut Socket<S>, gw: &Gateway)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let jitter = gw.config.drain_jitter.as_millis() as u64;
    let reconnect_after_ms = rand::thread_rng().gen_range(0..=jitter);
    let told = socket.close(ServerFrame::Draining { reconnect_after_ms }, close::DRAINING).await;
    gw.metrics.pushed(PushKind::Draining, told.is_ok());
}

/// The kill switch fired: the node is draining, or the connection could not take a push.
async fn killed<S>(socket: &mut Socket<S>, gw: &Gateway)
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    if gw.shutdown.is_cancelled() {
        drain(socket, gw).await;
    } else {
        socket.close_for(None, CloseReason::SlowConsumer).await;
    }
}

async fn on_push<S>(socket: &mut Socket<S>, push: Push) -> ControlFlow<()>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    match push {
        Push::TokenExpiring(access_token_expires_at) => {
            let frame = ServerFrame::TokenExpiring { access_token_expires_at };
            return if socket.send(&frame).await.is_ok() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) };
        }
        Push::Revoked(reason) => {
            let _ = socket.close(ServerFrame::Revoked { reason: reason.to_string() }, close::REVOKED).await;
        }
        Push::Replaced => socket.close_for(None, CloseReason::Replaced).await,
        Push::HeartbeatTimeout => socket.close_for(None, CloseReason::HeartbeatTimeout).await,
        Push::TokenExpired => socket.close_for(None, CloseReason::AccessTokenLapsed).await,
    }
    ControlFlow::Break(())
}

async fn on_message<S>(
    socket: &mut Socket<S>,
    inbound: &mut Inbound,
    gw: &Gateway,
    conn: &LiveConnection,
    ctx: &RequestContext,
    message: Message,
) -> ControlFlow<()>
where
    S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    conn.touch(gw.now_ms());
    let reply = match inbound.classify(&message) {
        Verdict::Frame(ClientFrame::Ping { id, ts }) => ServerFrame::Pong { id, ts, server_time: gw.now_ms() },
        Verdict::Frame(ClientFrame::Refresh { id, refresh_token }) => {
            // Boxed: a rotation's future is large and rare.
            let refreshing = Box::pin(refresh(gw, conn, ctx, id, &refresh_token));
            refreshing.await
        }
        Verdict::Frame(ClientFrame::Auth { id, .. }) => {
            error_frame(id, "already_authenticated", "this connection is authenticated")
        }
        Verdict::Malformed(detail) => error_frame(None, "bad_frame", &detail),
        Verdict::Control => return ControlFlow::Continue(()),
        Verdict::Closed => {
            let ending = Box::pin(socket.ended());
            ending.await;
            return ControlFlow::Break(());
        }
        ending => {
            let closing = Box::pin(close_on(socket, ending));
            closing.await;
            return ControlFlow::Break(());
        }
    };
    match socket.send(&reply).await {
        Ok(()) => ControlFlow::Continue(()),
        Err(Gone) => ControlFlow::Break(()),
    }
}

/// Rotates the refresh token over the socket; only this connection's session may be refreshed.
async fn refresh(
    gw: &Gateway,
    conn: &LiveConnection,
    ctx: &RequestContext,
    id: Option<u64>,
    presented: &str,
) -> ServerFrame {
    let own = RefreshToken::parse(presented).is_some_and(|t| t.session_id == conn.session_id);
    if !own {
        return refusal_frame(id, &SessionError::InvalidToken);
    }
    match gw.sessions.refresh(presented, ctx).await {
        Ok(issued) => {
            conn.set_access_expiry(issued.access_token_expires_at.timestamp_millis());
            ServerFrame::Tokens {
                id,
                access_token: issued.access_token,
                access_token_expires_at: issued.access_token_expires_at.timestamp_millis(),
                refresh_token: issued.refresh_token,
                refresh_token_expires_at: issued.refresh_token_expires_at.timestamp_millis(),
            }
        }
        // A reuse revokes the session: the registry's push closes the connection next.
        Err(e) => {
            log_store_failure(&e, "refreshing over a socket");
            refusal_frame(id, &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::session::Policy;
    use crate::tokens::{AccessTokens, RefreshSecrets, SigningKeyPair};
    use crate::ws::GatewayConfig;

    type Duplex = futures::stream::Empty<Result<Message, axum::Error>>;

    /// A socket type with the right shape; the futures below are measured, never run.
    struct NullSocket(Duplex);

    impl Stream for NullSocket {
        type Item = Result<Message, axum::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_next_unpin(cx)
        }
    }

    impl Sink<Message> for NullSocket {
        type Error = axum::Error;
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let store = crate::store::connect("sqlite::memory:").await.unwrap();
        let key = SigningKeyPair::generate();
        let wiring = crate::app::Wiring {
            clock: Arc::new(SystemClock),
            access: Arc::new(AccessTokens::new("i", "a", &key, &[])),
            refresh: RefreshSecrets::new([0; 32], None),
            policy: Policy::default(),
            gateway: GatewayConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
            feed_max_wait: std::time::Duration::from_secs(25),
        };
        let backends = crate::app::Backends::single_node(store, std::time::Duration::from_secs(3));
        let gw = crate::app::assemble(backends, wiring).gateway;
        let socket =
            Socket::new(NullSocket(futures::stream::empty()), Encoding::Json, std::time::Duration::from_secs(1));
        let future = serve(socket, gw, None, None);
        let size = std::mem::size_of_val(&future);
        eprintln!("connection task future: {size} bytes");
        // 5,728 bytes before the rare paths were boxed, 1,280 after; every byte here is paid by
        // each idle connection.
        assert!(size < 1600, "{size}");
    }
}
