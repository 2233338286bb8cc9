//! Reading and writing one frame per WebSocket message, in either encoding, exactly as the
//! server does. A message holds exactly one map: a positional array, or anything after the map
//! (a second map, stray bytes), is refused rather than silently dropped, so a client bug that
//! batches frames shows up at once instead of losing every frame but the first.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a message is not a frame.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
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
    fn a_truncated_map_is_a_decoding_error_not_a_frame() {
        let one = to_msgpack(&ServerFrame::Revoked { reason: "logout".into() }).unwrap();
        let cut = &one[..one.len() - 1];
        assert!(matches!(from_msgpack::<ServerFrame>(cut), Err(DecodeError::Msgpack(_))));
        assert_eq!(from_msgpack::<ServerFrame>(&one).unwrap(), ServerFrame::Revoked { reason: "logout".into() });
    }
}
