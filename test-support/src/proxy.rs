//! A TCP proxy on loopback in front of one server, for partitions that involve some clients
//! only: a test points one node at the proxy and the others at the server, then cuts the proxy.
//! Re-exported by `redis`, whose servers it usually fronts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes pass both ways.
    Open,
    /// A black hole, like a partition: connections stay open and new ones are accepted, but
    /// nothing passes either way (bytes wait in the sockets) until the proxy is opened again.
    Cut,
    /// Like a dead server: every connection is closed, new ones as soon as they are accepted.
    Refuse,
}

/// The proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and relays to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("cannot bind a loopback port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let (mode, watching) = watch::channel(Mode::Open);
        let accepted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept(listener, upstream, watching, accepted.clone()));
        Proxy { addr, mode, accepted, task }
    }

    /// Where the proxy listens, for clients of servers other than Redis.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Switches what the proxy does, for open connections and new ones alike.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far, refused ones included: how often clients tried to connect.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every relay.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>, accepted: Arc<AtomicU64>) {
    let mut relays = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::SeqCst);
        if *mode.borrow() != Mode::Refuse {
            relays.spawn(relay(client, upstream, mode.clone()));
        }
        while relays.try_join_next().is_some() {} // reap finished relays
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending ends both: the sockets drop and each side sees the close.
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode) => {}
    }
}

/// Copies `from` to `to` while the mode is `Open`, waits while it is `Cut`, and returns at
/// `Refuse` or when either side closes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Refuse => return,
            Mode::Cut => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Open => {}
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            // `read` is cancel-safe: nothing read is lost when the mode changes first.
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    async fn read_exact(socket: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(Duration::from_secs(5), socket.read_exact(&mut buf)).await.expect("bytes arrive").unwrap();
        buf
    }

    #[tokio::test]
    async fn a_cut_holds_bytes_until_the_proxy_opens_and_a_refusal_closes_the_connection() {
        let proxy = Proxy::start(echo().await).await;
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(b"one").await.unwrap();
        assert_eq!(read_exact(&mut client, 3).await, b"one");

        proxy.set(Mode::Cut);
        client.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 3];
        // Absence can only be shown over a while: a quarter second of silence, then the bytes.
        let silent = tokio::time::timeout(Duration::from_millis(250), client.read(&mut buf)).await;
        assert!(silent.is_err(), "nothing passes a cut proxy: {silent:?}");
        proxy.set(Mode::Open);
        assert_eq!(read_exact(&mut client, 3).await, b"two");

        proxy.set(Mode::Refuse);
        let closed = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.expect("closed in time");
        assert!(matches!(closed, Ok(0) | Err(_)), "a refusing proxy closes the connection: {closed:?}");
        assert_eq!(proxy.accepted(), 1);
    }
}
