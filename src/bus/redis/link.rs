//! Connections to Redis and the rules every call on them follows: it is over within the timeout
//! (`REDIS_TIMEOUT_MS`) whatever the connection manager is doing (reconnecting, backing off), a
//! failure for want of Redis opens the breaker, and while it is open request paths are answered
//! without a call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, FromRedisValue, ProtocolVersion, RedisError, RedisResult, ServerErrorKind};

use super::breaker::Breaker;
use crate::bus::BusError;

/// Who waits for a call, which decides what an open breaker does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// A request (REST, WebSocket auth, a revocation's routing): answered `Unavailable` at once
    /// while the breaker is open.
    Request,
    /// The node's own background work (heartbeat, re-announcing presence, replaying
    /// invalidations, leaving): always asks, within the timeout. These calls are the probes.
    Maintenance,
}

/// A connection of either kind. Both are cheap handles over a multiplexed connection.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A connection, its timeout and the breaker it reports to.
#[derive(Clone)]
pub(super) struct Link {
    pub(super) conn: Conn,
    timeout: Duration,
    breaker: Arc<Breaker>,
}

impl Link {
    pub(super) fn new(conn: Conn, timeout: Duration, breaker: Arc<Breaker>) -> Self {
        Self { conn, timeout, breaker }
    }

    pub(super) async fn query<T: FromRedisValue>(&self, caller: Caller, cmd: &redis::Cmd) -> Result<T, BusError> {
        self.call(caller, self.send(cmd)).await
    }

    pub(super) async fn script<T: FromRedisValue>(
        &self,
        caller: Caller,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BusError> {
        let run = async {
            match &self.conn {
                Conn::Single(c) => invocation.invoke_async(&mut c.clone()).await,
                Conn::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
            }
        };
        self.call(caller, run).await
    }

    /// `cmd` as the heartbeat's probe: within one timeout, tried a second time after a failure
    /// for want of Redis. A broken connection's first failure only starts its reconnection, so
    /// the second try is what tells whether Redis answers now, one beat sooner.
    pub(super) async fn probe<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BusError> {
        let twice = async {
            match self.send(cmd).await {
                Err(e) if is_outage(&e) => self.send(cmd).await,
                answered => answered,
            }
        };
        self.call(Caller::Maintenance, twice).await
    }

    async fn send<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match &self.conn {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// Runs `call` under the breaker and the timeout.
    async fn call<T>(&self, caller: Caller, call: impl Future<Output = RedisResult<T>>) -> Result<T, BusError> {
        if caller == Caller::Request && !self.breaker.admit() {
            return Err(BusError::unavailable("Redis failed recently and has not answered a probe since"));
        }
        let failure = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if !is_outage(&e) => return Err(BusError::backend(e)),
            Ok(Err(e)) => unreachable(e),
            Err(_) => no_answer(self.timeout),
        };
        if self.breaker.trip() {
            tracing::warn!(
                error = &failure as &dyn std::error::Error,
                "Redis unreachable: request paths use the store until a heartbeat's probe is answered"
            );
        }
        Err(failure)
    }
}

/// Whether `e` says Redis cannot be reached (as opposed to a command Redis refused): only those
/// open the breaker.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown | ServerErrorKind::BusyLoading | ServerErrorKind::TryAgain
                )
        )
}

fn unreachable(e: RedisError) -> BusError {
    BusError::unavailable(e)
}

/// Where to connect, parsed once.
#[derive(Clone)]
pub(super) enum Target {
    Single(redis::Client),
    Cluster(Vec<String>),
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Self, BusError> {
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        let bad = |e: RedisError| BusError::backend(InvalidUrl(e));
        match urls.as_slice() {
            [] => Err(BusError::backend("REDIS_URL is empty")),
            [one] => {
                let info = redis::IntoConnectionInfo::into_connection_info(one.as_str()).map_err(bad)?;
                let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                Ok(Self::Single(redis::Client::open(info.set_redis_settings(settings)).map_err(bad)?))
            }
            many => Ok(Self::Cluster(many.to_vec())),
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// A connection; `push` receives pub/sub messages and disconnection notices. Bounded by
    /// `timeout` (connecting and each response).
    pub(super) async fn connect(
        &self,
        timeout: Duration,
        push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
    ) -> Result<Conn, BusError> {
        match self {
            Self::Single(client) => {
                // No retries of its own: a reconnection is one attempt, and the heartbeat's probe
                // is the retry loop. The manager's backoff would only hold the probe (measured:
                // two retries kept every call of an outage waiting ~540 ms).
                let mut config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout))
                    .set_number_of_retries(0);
                if let Some(tx) = push {
                    config = config.set_push_sender(tx).set_automatic_resubscription();
                }
                let conn = client.get_connection_manager_with_config(config);
                let conn = tokio::time::timeout(timeout, conn).await.map_err(|_| no_answer(timeout))?;
                Ok(Conn::Single(conn.map_err(unreachable)?))
            }
            Self::Cluster(urls) => {
                let mut builder = ClusterClientBuilder::new(urls.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2);
                if let Some(tx) = push {
                    builder = builder.push_sender(tx);
                }
                let client = builder.build().map_err(unreachable)?;
                let conn = tokio::time::timeout(timeout, client.get_async_connection()).await;
                Ok(Conn::Cluster(conn.map_err(|_| no_answer(timeout))?.map_err(unreachable)?))
            }
        }
    }
}

fn no_answer(timeout: Duration) -> BusError {
    BusError::unavailable(format!("no answer within {} ms", timeout.as_millis()))
}

/// `REDIS_URL` does not parse; the parser's error is the source.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL does not parse")]
struct InvalidUrl(#[source] RedisError);
