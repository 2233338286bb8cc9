//! Slow and idle HTTP clients (slowloris): a socket that sends nothing, sends its headers a byte
//! at a time, pauses inside its body, or idles after a response is closed once the documented
//! timeout lapses, and never holds a node's place forever. The timeouts are short here (300 ms);
//! the upper bounds below are generous so a busy machine does not fail them: the defect they
//! catch is a socket that is never closed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const TIMEOUT_MS: u64 = 300;
/// Far above the timeout: only a socket that is never closed reaches it.
const NEVER: Duration = Duration::from_secs(15);

async fn node(backend: Backend) -> TestApp {
    spawn_app_with(backend, |o| {
        o.http.header_timeout_ms = TIMEOUT_MS;
        o.http.body_timeout_ms = TIMEOUT_MS;
    })
    .await
}

/// Reads until the server closes the connection; returns what it sent and how long it took.
async fn until_closed(socket: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + NEVER).into(), socket.read(&mut buf)).await {
            Err(tokio::time::error::Elapsed { .. }) => panic!("the server kept the socket open for {NEVER:?}"),
            Ok(Ok(0) | Err(_)) => return (received, started.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

fn assert_not_before_the_timeout(waited: Duration) {
    // Timers round to the millisecond; the socket must not be cut before its time.
    assert!(waited >= Duration::from_millis(TIMEOUT_MS - 5), "closed after only {waited:?}");
}

async fn a_socket_that_sends_nothing_is_closed_at_the_header_timeout(backend: Backend) {
    let app = node(backend).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let (received, waited) = until_closed(&mut socket).await;
    assert_not_before_the_timeout(waited);
    assert!(received.is_empty() || received.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&received));
}

async fn headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(backend: Backend) {
    let app = node(backend).await;
    let socket = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let started = Instant::now();
    // 400 bytes at one per 25 ms would take 10 s: far past the timeout, each pause far below it.
    let header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n", "a".repeat(400));
    let trickle = tokio::spawn(async move {
        for byte in header.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return false; // the server closed the socket
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        true
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(NEVER, reader.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept the slow socket open for {NEVER:?}");
    let waited = started.elapsed();
    assert_not_before_the_timeout(waited);
    assert!(waited < Duration::from_secs(10), "the whole header went through ({waited:?})");
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "the slow request was served");
    trickle.abort();
}

async fn a_body_that_stops_arriving_is_answered_408_at_the_body_timeout(backend: Backend) {
    let app = node(backend).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"user_id\":",
        app.writer_key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let (received, waited) = until_closed(&mut socket).await;
    assert_not_before_the_timeout(waited);
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json") && text.contains("request_timeout"), "{text}");
}

async fn a_body_sent_a_byte_at_a_time_is_answered_408_at_the_body_deadline(backend: Backend) {
    let app = node(backend).await;
    let socket = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let body = format!(
        "{{\"user_id\":\"player-1\",\"device\":{{\"id\":\"d\",\"platform\":\"ios\"}},\"x\":\"{}\"}}",
        "a".repeat(300)
    );
    let head = format!(
        "POST /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        app.writer_key,
        body.len()
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // Each pause (25 ms) is far below the body timeout; the whole body would take 9 s.
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(NEVER, reader.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept the slow body open for {NEVER:?}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(9), "the whole body went through ({waited:?})");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408") && text.contains("request_timeout"), "{text}");
    trickle.abort();
}

async fn a_keep_alive_connection_idle_after_its_response_is_closed_at_the_header_timeout(backend: Backend) {
    let app = node(backend).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = socket.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    // Kept alive for a next request that never comes.
    let (_, waited) = until_closed(&mut socket).await;
    assert_not_before_the_timeout(waited);
}

both!(
    a_socket_that_sends_nothing_is_closed_at_the_header_timeout,
    headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout,
    a_body_that_stops_arriving_is_answered_408_at_the_body_timeout,
    a_body_sent_a_byte_at_a_time_is_answered_408_at_the_body_deadline,
    a_keep_alive_connection_idle_after_its_response_is_closed_at_the_header_timeout,
);
