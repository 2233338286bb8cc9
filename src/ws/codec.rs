//! The gateway's side of the SDK's codec: frames to and from axum messages, and the checks every
//! inbound message passes (size, rate, well-formedness) before the connection acts on it. The
//! encoding itself is the SDK's (`session_client::proto::ws::codec`), the same one clients use.

use axum::extract::ws::Message;
pub use session_client::proto::ws::codec::Encoding;
use session_client::proto::ws::codec::{Data, DecodeError};
use session_client::proto::ws::{ClientFrame, ServerFrame};
use tokio::time::Instant;

/// Longest `message` an `error` frame repeats from a decoder.
const MAX_DETAIL: usize = 160;

/// The encoding of a connection whose upgrade selected `protocol`: JSON when the client offered
/// no subprotocol we know.
pub fn negotiated(protocol: Option<&str>) -> Encoding {
    protocol.and_then(Encoding::from_protocol).unwrap_or(Encoding::Json)
}

/// `frame` as the data message `encoding` sends.
pub fn encode(encoding: Encoding, frame: &ServerFrame) -> Message {
    match encoding.encode(frame).expect("server frames serialize") {
        Data::Text(text) => Message::Text(text.into()),
        Data::Binary(bytes) => Message::Binary(bytes.into()),
    }
}

/// Decodes a data message of `encoding`, which must hold exactly one map (nothing before or after
/// it); the error is safe to show the client.
pub fn decode(encoding: Encoding, message: &Message) -> Result<ClientFrame, String> {
    let decoded = match message {
        Message::Text(text) => encoding.decode_text(text),
        Message::Binary(bytes) => encoding.decode_binary(bytes),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Err(DecodeError::WrongKind(encoding)),
    };
    decoded.map_err(|e| match e {
        // The client is told what to send, not what the codec saw.
        DecodeError::WrongKind(Encoding::Json) => "this connection speaks session.v1.json: send text frames".into(),
        DecodeError::WrongKind(Encoding::Msgpack) => {
            "this connection speaks session.v1.msgpack: send binary frames".into()
        }
        e => e.to_string().chars().take(MAX_DETAIL).collect(),
    })
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct InboundLimits {
    pub max_message_bytes: usize,
    pub messages_per_sec: f64,
    pub burst: f64,
    /// Malformed frames in a row that close the connection.
    pub max_malformed_in_a_row: u32,
}

/// What an inbound message means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Frame(ClientFrame),
    /// Answer with `bad_frame`, keep going.
    Malformed(String),
    /// WebSocket-level ping/pong: activity, nothing to answer (the library answers pings).
    Control,
    /// The peer closed.
    Closed,
    TooLarge,
    RateLimited,
    /// Too many malformed frames in a row.
    Abusive,
}

/// Per-connection inbound state: a token bucket and the malformed-frame streak.
#[derive(Debug)]
pub struct Inbound {
    encoding: Encoding,
    limits: InboundLimits,
    tokens: f64,
    refilled: Instant,
    malformed_in_a_row: u32,
}

impl Inbound {
    pub fn new(encoding: Encoding, limits: InboundLimits) -> Self {
        Self { encoding, limits, tokens: limits.burst, refilled: Instant::now(), malformed_in_a_row: 0 }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn classify(&mut self, message: &Message) -> Verdict {
        if matches!(message, Message::Close(_)) {
            return Verdict::Closed;
        }
        if !self.take_token() {
            return Verdict::RateLimited;
        }
        let len = match message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return Verdict::Control,
        };
        if len > self.limits.max_message_bytes {
            return Verdict::TooLarge;
        }
        match decode(self.encoding, message) {
            Ok(frame) => {
                self.malformed_in_a_row = 0;
                Verdict::Frame(frame)
            }
            Err(detail) => {
                self.malformed_in_a_row += 1;
                if self.malformed_in_a_row >= self.limits.max_malformed_in_a_row {
                    Verdict::Abusive
                } else {
                    Verdict::Malformed(detail)
                }
            }
        }
    }

    /// Counts a well-formed frame that was not acceptable in the current state toward the streak.
    pub fn misplaced(&mut self) -> bool {
        self.malformed_in_a_row += 1;
        self.malformed_in_a_row >= self.limits.max_malformed_in_a_row
    }

    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.limits.messages_per_sec).min(self.limits.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use session_client::proto::ws::codec;

    use super::*;

    const LIMITS: InboundLimits =
        InboundLimits { max_message_bytes: 64, messages_per_sec: 10.0, burst: 3.0, max_malformed_in_a_row: 3 };

    fn ping_json() -> Message {
        Message::Text(r#"{"type":"ping","ts":1}"#.into())
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_refills_with_time() {
        let mut inbound = Inbound::new(Encoding::Json, LIMITS);
        for _ in 0..3 {
            assert!(matches!(inbound.classify(&ping_json()), Verdict::Frame(_)));
        }
        assert_eq!(inbound.classify(&ping_json()), Verdict::RateLimited);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(matches!(inbound.classify(&ping_json()), Verdict::Frame(_)));
        assert_eq!(inbound.classify(&ping_json()), Verdict::RateLimited);
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_frames_are_reported_and_a_streak_of_them_is_abuse() {
        let mut inbound = Inbound::new(Encoding::Json, InboundLimits { burst: 100.0, ..LIMITS });
        assert!(matches!(inbound.classify(&Message::Text("{".into())), Verdict::Malformed(_)));
        assert!(matches!(inbound.classify(&Message::Text(r#"{"type":"nope"}"#.into())), Verdict::Malformed(_)));
        assert!(matches!(inbound.classify(&ping_json()), Verdict::Frame(_)), "a good frame resets the streak");
        assert!(matches!(inbound.classify(&Message::Binary(vec![1, 2].into())), Verdict::Malformed(_)));
        assert!(matches!(inbound.classify(&Message::Text("[]".into())), Verdict::Malformed(_)));
        assert_eq!(inbound.classify(&Message::Text("null".into())), Verdict::Abusive);
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_messages_and_closes_are_recognised() {
        let mut inbound = Inbound::new(Encoding::Msgpack, LIMITS);
        assert_eq!(inbound.classify(&Message::Binary(vec![0; 65].into())), Verdict::TooLarge);
        assert_eq!(inbound.classify(&Message::Close(None)), Verdict::Closed);
        assert_eq!(inbound.classify(&Message::Ping(vec![].into())), Verdict::Control);
    }

    #[test]
    fn both_encodings_decode_what_a_client_sends() {
        let frame = ClientFrame::Ping { id: Some(3), ts: 42 };
        let bytes = codec::to_msgpack(&frame).unwrap();
        assert_eq!(decode(Encoding::Msgpack, &Message::Binary(bytes.into())), Ok(frame.clone()));
        let text = codec::to_json(&frame).unwrap();
        assert_eq!(decode(Encoding::Json, &Message::Text(text.into())), Ok(frame));
        assert!(decode(Encoding::Msgpack, &Message::Binary(vec![0xc1].into())).is_err());
        assert_eq!(negotiated(Some("session.v1.msgpack")), Encoding::Msgpack);
        assert_eq!(negotiated(Some("session.v2.msgpack")), Encoding::Json);
        assert_eq!(negotiated(None), Encoding::Json);
    }

    #[test]
    fn a_message_of_the_wrong_kind_is_told_what_to_send() {
        let ping = ClientFrame::Ping { id: None, ts: 1 };
        let binary = Message::Binary(codec::to_msgpack(&ping).unwrap().into());
        let text = Message::Text(codec::to_json(&ping).unwrap().into());
        assert_eq!(
            decode(Encoding::Json, &binary),
            Err("this connection speaks session.v1.json: send text frames".into())
        );
        assert_eq!(
            decode(Encoding::Msgpack, &text),
            Err("this connection speaks session.v1.msgpack: send binary frames".into())
        );
    }

    #[test]
    fn server_frames_go_out_in_the_connection_s_kind_of_message() {
        let frame = ServerFrame::Revoked { reason: "logout".into() };
        assert_eq!(encode(Encoding::Json, &frame), Message::Text(r#"{"type":"revoked","reason":"logout"}"#.into()));
        match encode(Encoding::Msgpack, &frame) {
            Message::Binary(bytes) => assert_eq!(codec::from_msgpack::<ServerFrame>(&bytes).unwrap(), frame),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_message_is_one_map_with_nothing_after_it() {
        let ping = codec::to_msgpack(&ClientFrame::Ping { id: Some(1), ts: 5 }).unwrap();
        let two_maps = [ping.clone(), ping.clone()].concat();
        let zeros = [ping.clone(), vec![0, 0]].concat();
        for bytes in [two_maps, zeros] {
            let refused = decode(Encoding::Msgpack, &Message::Binary(bytes.clone().into()));
            assert!(refused.as_ref().is_err_and(|e| e.contains("after the frame's map")), "{bytes:02x?}: {refused:?}");
        }
        let positional = rmp_serde::to_vec(&("ping", 1u8, 5u8)).unwrap();
        assert!(decode(Encoding::Msgpack, &Message::Binary(positional.into())).is_err());
        let json = r#"{"type":"ping","id":1,"ts":5}"#;
        for text in [format!("{json}{json}"), format!("{json}\n\u{0}"), r#"["ping",1,5]"#.to_owned()] {
            assert!(decode(Encoding::Json, &Message::Text(text.clone().into())).is_err(), "{text}");
        }
        assert!(decode(Encoding::Json, &Message::Text(format!(" {json}\n").into())).is_ok(), "JSON whitespace is fine");
    }
}
