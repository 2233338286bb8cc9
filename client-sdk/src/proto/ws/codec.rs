//! Reading and writing one frame per WebSocket message, in either encoding: the one codec of the
//! protocol, used by the server, the load generator and the tests alike. A message holds exactly
//! one map: a positional array, or anything after the map (a second map, stray bytes), is refused
//! rather than silently dropped, so a client bug that batches frames shows up at once instead of
//! losing every frame but the first.
//!
//! [`Encoding`] is the subprotocol a connection speaks, with the kind of message it travels in
//! (JSON in text messages, MessagePack in binary ones); the free functions are the two encodings
//! on their own.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

/// The encoding a connection speaks, named by its subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `session.v1.msgpack`: MessagePack maps with named fields, in binary messages.
    Msgpack,
    /// `session.v1.json`: JSON objects, in text messages.
    Json,
}

/// The payload of one WebSocket data message, as [`Encoding::encode`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A text message (`session.v1.json`).
    Text(String),
    /// A binary message (`session.v1.msgpack`).
    Binary(Vec<u8>),
}

impl Encoding {
    /// Both encodings, MessagePack (what game clients use) first.
    pub const BOTH: [Self; 2] = [Self::Msgpack, Self::Json];

    /// The encoding a subprotocol names; `None` for any other subprotocol.
    pub fn from_protocol(protocol: &str) -> Option<Self> {
        match protocol {
            SUBPROTOCOL_MSGPACK => Some(Self::Msgpack),
            SUBPROTOCOL_JSON => Some(Self::Json),
            _ => None,
        }
    }

    /// The subprotocol naming this encoding, as offered in `Sec-WebSocket-Protocol`.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Msgpack => SUBPROTOCOL_MSGPACK,
            Self::Json => SUBPROTOCOL_JSON,
        }
    }

    /// The kind of data message this encoding travels in.
    fn message_kind(self) -> &'static str {
        match self {
            Self::Msgpack => "binary",
            Self::Json => "text",
        }
    }

    /// Encodes `frame` as the one data message this encoding sends.
    pub fn encode<T: Serialize>(self, frame: &T) -> Result<Data, EncodeError> {
        Ok(match self {
            Self::Msgpack => Data::Binary(to_msgpack(frame)?),
            Self::Json => Data::Text(to_json(frame)?),
        })
    }

    /// Decodes a text message: one frame on a JSON connection, [`DecodeError::WrongKind`] on a
    /// MessagePack one.
    pub fn decode_text<T: DeserializeOwned>(self, text: &str) -> Result<T, DecodeError> {
        match self {
            Self::Json => from_json(text),
            Self::Msgpack => Err(DecodeError::WrongKind(self)),
        }
    }

    /// Decodes a binary message: one frame on a MessagePack connection, [`DecodeError::WrongKind`]
    /// on a JSON one.
    pub fn decode_binary<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Self::Msgpack => from_msgpack(bytes),
            Self::Json => Err(DecodeError::WrongKind(self)),
        }
    }
}

/// Why a frame could not be encoded (a frame type whose serialization fails: never ours).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// MessagePack serialization failed.
    #[error(transparent)]
    Msgpack(#[from] rmp_serde::encode::Error),
    /// JSON serialization failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why a message is not a frame.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A data message of the other kind than the connection's encoding travels in (binary on a
    /// JSON connection, text on a MessagePack one).
    #[error("a {} connection carries {} messages only", .0.protocol(), .0.message_kind())]
    WrongKind(Encoding),
    /// The message does not start with a map (JSON object / MessagePack map).
    #[error("not a map: a frame is one map with a `type`")]
    NotAMap,
    /// A complete map was followed by more data.
    #[error("{0} bytes after the frame's map: a message holds exactly one frame")]
    TrailingBytes(usize),
    /// Not valid MessagePack, or not a frame of the expected type.
    #[error(transparent)]
    Msgpack(#[from] rmp_serde::decode::Error),
    /// Not valid JSON (trailing characters included), or not a frame of the expected type.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Decodes one `session.v1.msgpack` binary message holding exactly one map.
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    // fixmap (0x80-0x8f), map16 (0xde), map32 (0xdf).
    if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return Err(DecodeError::NotAMap);
    }
    // `&[u8]` reads by advancing the slice, so what is left afterwards is what followed the map.
    let mut rest = bytes;
    let frame = T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest))?;
    match rest.len() {
        0 => Ok(frame),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Decodes one `session.v1.json` text message holding exactly one object (surrounding JSON
/// whitespace allowed; serde_json refuses anything else after the object).
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(DecodeError::NotAMap);
    }
    Ok(serde_json::from_str(text)?)
}

/// Encodes a frame as a MessagePack map with named fields (never a positional array).
pub fn to_msgpack<T: Serialize>(frame: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(frame)
}

/// Encodes a frame as a JSON object.
pub fn to_json<T: Serialize>(frame: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ws::{ClientFrame, ServerFrame};

    fn ping() -> ClientFrame {
        ClientFrame::Ping { id: Some(7), ts: 5 }
    }

    #[test]
    fn one_map_decodes_in_both_encodings() {
        let bytes = to_msgpack(&ping()).unwrap();
        assert_eq!(from_msgpack::<ClientFrame>(&bytes).unwrap(), ping());
        assert_eq!(from_json::<ClientFrame>(&to_json(&ping()).unwrap()).unwrap(), ping());
        assert_eq!(from_json::<ClientFrame>(" \r\n{\"type\":\"ping\",\"id\":7,\"ts\":5}\n\t").unwrap(), ping());
    }

    #[test]
    fn anything_after_the_map_is_refused() {
        let one = to_msgpack(&ping()).unwrap();
        let two = [one.clone(), one.clone()].concat();
        assert!(matches!(from_msgpack::<ClientFrame>(&two), Err(DecodeError::TrailingBytes(n)) if n == one.len()));
        for tail in [&[0x00][..], &[0x00, 0x00], &[0xc0], &[0x80]] {
            let bytes = [one.as_slice(), tail].concat();
            assert!(
                matches!(from_msgpack::<ClientFrame>(&bytes), Err(DecodeError::TrailingBytes(n)) if n == tail.len()),
                "{tail:02x?}"
            );
        }
        let json = to_json(&ping()).unwrap();
        for bad in [format!("{json}{json}"), format!("{json} 0"), format!("{json}x")] {
            assert!(matches!(from_json::<ClientFrame>(&bad), Err(DecodeError::Json(_))), "{bad}");
        }
    }

    #[test]
    fn a_positional_array_is_not_a_frame() {
        // serde reads an internally tagged enum from a sequence too (tag first): refused here.
        let array = rmp_serde::to_vec(&("ping", 7u8, 5u8)).unwrap();
        assert!(matches!(from_msgpack::<ClientFrame>(&array), Err(DecodeError::NotAMap)));
        assert!(matches!(from_json::<ClientFrame>(r#"["ping",7,5]"#), Err(DecodeError::NotAMap)));
        for bad in [&[][..], &[0xc0], &[0x05]] {
            assert!(matches!(from_msgpack::<ClientFrame>(bad), Err(DecodeError::NotAMap)), "{bad:02x?}");
        }
        assert!(matches!(from_json::<ClientFrame>(""), Err(DecodeError::NotAMap)));
        assert!(matches!(from_json::<ClientFrame>("null"), Err(DecodeError::NotAMap)));
    }

    #[test]
    fn an_encoding_travels_in_its_own_kind_of_message_only() {
        assert_eq!(Encoding::Msgpack.encode(&ping()).unwrap(), Data::Binary(to_msgpack(&ping()).unwrap()));
        assert_eq!(Encoding::Json.encode(&ping()).unwrap(), Data::Text(r#"{"type":"ping","id":7,"ts":5}"#.into()));
        let bytes = to_msgpack(&ping()).unwrap();
        let text = to_json(&ping()).unwrap();
        assert_eq!(Encoding::Msgpack.decode_binary::<ClientFrame>(&bytes).unwrap(), ping());
        assert_eq!(Encoding::Json.decode_text::<ClientFrame>(&text).unwrap(), ping());
        let wrong = Encoding::Json.decode_binary::<ClientFrame>(&bytes).unwrap_err();
        assert!(matches!(wrong, DecodeError::WrongKind(Encoding::Json)));
        assert_eq!(wrong.to_string(), "a session.v1.json connection carries text messages only");
        let wrong = Encoding::Msgpack.decode_text::<ClientFrame>(&text).unwrap_err();
        assert_eq!(wrong.to_string(), "a session.v1.msgpack connection carries binary messages only");
    }

    #[test]
    fn each_subprotocol_names_its_encoding() {
        for encoding in Encoding::BOTH {
            assert_eq!(Encoding::from_protocol(encoding.protocol()), Some(encoding));
        }
        assert_eq!(Encoding::Msgpack.protocol(), "session.v1.msgpack");
        assert_eq!(Encoding::from_protocol("session.v2.json"), None);
    }

    #[test]
    fn a_truncated_map_is_a_decoding_error_not_a_frame() {
        let one = to_msgpack(&ServerFrame::Revoked { reason: "logout".into() }).unwrap();
        let cut = &one[..one.len() - 1];
        assert!(matches!(from_msgpack::<ServerFrame>(cut), Err(DecodeError::Msgpack(_))));
        assert_eq!(from_msgpack::<ServerFrame>(&one).unwrap(), ServerFrame::Revoked { reason: "logout".into() });
    }
}
