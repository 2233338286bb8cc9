//! Wire types of the WebSocket protocol (`GET /ws`), shared by the server and clients.
//!
//! Every frame is a map with a `type`. Requests may carry an `id` (any unsigned integer), echoed in
//! the reply. Times are integer milliseconds since the Unix epoch. The same types encode as JSON
//! text frames (subprotocol `session.v1.json`) and as MessagePack binary frames with named fields
//! (`session.v1.msgpack`). docs/protocol.md is the normative description. [`codec`] reads and
//! writes them one frame per message; the server uses the same codec.

pub mod codec;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Subprotocol for MessagePack binary frames (what game clients use).
pub const SUBPROTOCOL_MSGPACK: &str = "session.v1.msgpack";
/// Subprotocol for JSON text frames.
pub const SUBPROTOCOL_JSON: &str = "session.v1.json";

/// Frames a client sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame: authenticates the connection with an access token.
    Auth {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        token: String,
    },
    /// Heartbeat; `ts` is the client's own clock, echoed in the `pong`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        ts: i64,
    },
    /// Rotates the refresh token over the socket; answered by `tokens` or `error`.
    Refresh {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        refresh_token: String,
    },
}

impl std::fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auth { id, .. } => f.debug_struct("Auth").field("id", id).finish_non_exhaustive(),
            Self::Ping { id, ts } => f.debug_struct("Ping").field("id", id).field("ts", ts).finish(),
            Self::Refresh { id, .. } => f.debug_struct("Refresh").field("id", id).finish_non_exhaustive(),
        }
    }
}

/// Frames the server sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The connection is authenticated.
    Welcome {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The session id as a string in both encodings.
        #[serde(with = "uuid_as_string")]
        session_id: Uuid,
        user_id: String,
        /// Send a `ping` at least this often.
        heartbeat_interval_ms: u64,
        /// A connection silent for longer is closed with [`close::HEARTBEAT_TIMEOUT`].
        heartbeat_timeout_ms: u64,
        server_time: i64,
        access_token_expires_at: i64,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        ts: i64,
        server_time: i64,
    },
    /// Answer to `refresh`: the new pair. The connection now runs on the new access token.
    Tokens {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        access_token: String,
        access_token_expires_at: i64,
        refresh_token: String,
        refresh_token_expires_at: i64,
    },
    /// The access token expires soon: send `refresh` before `access_token_expires_at`.
    TokenExpiring { access_token_expires_at: i64 },
    /// The session was revoked; the server closes with [`close::REVOKED`] right after.
    Revoked { reason: String },
    /// The node is shutting down; the server closes with [`close::DRAINING`] right after.
    /// Reconnect (to any node) after `reconnect_after_ms`.
    Draining { reconnect_after_ms: u64 },
    /// A request failed, or (with `close_code`) the server is about to close the connection.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Stable code, shared with the REST API's problem codes where they overlap.
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        close_code: Option<u16>,
    },
}

impl std::fmt::Debug for ServerFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tokens { id, access_token_expires_at, .. } => f
                .debug_struct("Tokens")
                .field("id", id)
                .field("access_token_expires_at", access_token_expires_at)
                .finish_non_exhaustive(),
            Self::Welcome { session_id, user_id, .. } => f
                .debug_struct("Welcome")
                .field("session_id", session_id)
                .field("user_id", user_id)
                .finish_non_exhaustive(),
            Self::Pong { id, ts, server_time } => {
                f.debug_struct("Pong").field("id", id).field("ts", ts).field("server_time", server_time).finish()
            }
            Self::TokenExpiring { access_token_expires_at } => {
                f.debug_struct("TokenExpiring").field("access_token_expires_at", access_token_expires_at).finish()
            }
            Self::Revoked { reason } => f.debug_struct("Revoked").field("reason", reason).finish(),
            Self::Draining { reconnect_after_ms } => {
                f.debug_struct("Draining").field("reconnect_after_ms", reconnect_after_ms).finish()
            }
            Self::Error { id, code, message, close_code } => f
                .debug_struct("Error")
                .field("id", id)
                .field("code", code)
                .field("message", message)
                .field("close_code", close_code)
                .finish(),
        }
    }
}

/// UUIDs travel as hyphenated strings in both encodings: left to `uuid`'s serde, MessagePack
/// would carry 16 raw bytes while JSON carries a string.
mod uuid_as_string {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub(super) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&id.hyphenated())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let text = String::deserialize(d)?;
        Uuid::try_parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Close codes. 4000-4099: the client may reconnect (see [`close::policy`]); 4100-4199: it must
/// not reconnect with the same credentials.
pub mod close {
    /// The node is draining; reconnect after the `draining` frame's delay.
    pub const DRAINING: u16 = 4000;
    /// No `ping` within the heartbeat timeout; reconnect with backoff.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// Too many messages per second; reconnect with backoff.
    pub const RATE_LIMITED: u16 = 4002;
    /// The client did not read fast enough and its outbound queue filled; reconnect with backoff.
    pub const SLOW_CONSUMER: u16 = 4003;
    /// The node is at its connection limit; reconnect with backoff (a load balancer may pick
    /// another node).
    pub const SERVER_FULL: u16 = 4004;
    /// Too many malformed frames, or a frame over the size limit; reconnect with backoff.
    pub const PROTOCOL_ERROR: u16 = 4005;
    /// No `auth` frame within the auth timeout; reconnect with backoff.
    pub const AUTH_TIMEOUT: u16 = 4006;
    /// The access token expired without a `refresh`; refresh over REST, then reconnect at once.
    pub const TOKEN_EXPIRED: u16 = 4007;
    /// The access token is invalid; do not reconnect with it (log in again).
    pub const AUTH_FAILED: u16 = 4100;
    /// The session was revoked; do not reconnect (log in again).
    pub const REVOKED: u16 = 4101;
    /// The session expired; do not reconnect (log in again).
    pub const SESSION_EXPIRED: u16 = 4102;
    /// A newer connection of the same session replaced this one; do not reconnect.
    pub const REPLACED: u16 = 4103;

    /// What a client should do after a close code.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Policy {
        /// Reconnect after the delay the server gave (`draining`).
        ReconnectAfterDelay,
        /// Reconnect with exponential backoff and jitter.
        ReconnectWithBackoff,
        /// Get a fresh access token (refresh over REST), then reconnect at once.
        RefreshThenReconnect,
        /// Do not reconnect with these credentials.
        Stop,
    }

    /// The policy for a close code; codes outside our range get backoff.
    pub fn policy(code: u16) -> Policy {
        match code {
            DRAINING => Policy::ReconnectAfterDelay,
            TOKEN_EXPIRED => Policy::RefreshThenReconnect,
            4100..=4199 => Policy::Stop,
            _ => Policy::ReconnectWithBackoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_read_from_json_and_msgpack() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping","id":7,"ts":1700000000000}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping { id: Some(7), ts: 1_700_000_000_000 });
        let bytes = rmp_serde::to_vec_named(&f).unwrap();
        assert_eq!(rmp_serde::from_slice::<ClientFrame>(&bytes).unwrap(), f);
        let auth: ClientFrame = serde_json::from_str(r#"{"type":"auth","token":"t"}"#).unwrap();
        assert_eq!(auth, ClientFrame::Auth { id: None, token: "t".into() });
    }

    #[test]
    fn malformed_client_frames_are_refused() {
        for bad in [
            r#"{"type":"pong","ts":1}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping","ts":"soon"}"#,
            r#"{"ts":1}"#,
            r#"{"type":"ping","ts":1,"extra":true}"#,
            r"[1,2]",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_frames_round_trip_in_both_encodings() {
        let frames = [
            ServerFrame::Revoked { reason: "logout".into() },
            ServerFrame::Draining { reconnect_after_ms: 1500 },
            ServerFrame::Error { id: None, code: "rate_limited".into(), message: "slow down".into(), close_code: None },
            ServerFrame::Pong { id: Some(1), ts: 5, server_time: 6 },
        ];
        for f in frames {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<ServerFrame>(&json).unwrap(), f);
            let bytes = rmp_serde::to_vec_named(&f).unwrap();
            assert_eq!(rmp_serde::from_slice::<ServerFrame>(&bytes).unwrap(), f);
        }
        let json = serde_json::to_value(ServerFrame::Revoked { reason: "logout".into() }).unwrap();
        assert_eq!(json, serde_json::json!({ "type": "revoked", "reason": "logout" }));
    }

    #[test]
    fn the_session_id_is_a_string_in_msgpack_too() {
        let id = Uuid::new_v4();
        let welcome = ServerFrame::Welcome {
            id: None,
            session_id: id,
            user_id: "u".into(),
            heartbeat_interval_ms: 1,
            heartbeat_timeout_ms: 2,
            server_time: 3,
            access_token_expires_at: 4,
        };
        let bytes = rmp_serde::to_vec_named(&welcome).unwrap();
        // Read without our types, as a client in another language would.
        let generic: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(generic["session_id"], serde_json::json!(id.to_string()));
        assert_eq!(rmp_serde::from_slice::<ServerFrame>(&bytes).unwrap(), welcome);
    }

    #[test]
    fn close_codes_split_into_reconnect_and_stop() {
        assert_eq!(close::policy(close::DRAINING), close::Policy::ReconnectAfterDelay);
        assert_eq!(close::policy(close::HEARTBEAT_TIMEOUT), close::Policy::ReconnectWithBackoff);
        assert_eq!(close::policy(close::TOKEN_EXPIRED), close::Policy::RefreshThenReconnect);
        for stop in [close::AUTH_FAILED, close::REVOKED, close::SESSION_EXPIRED, close::REPLACED] {
            assert_eq!(close::policy(stop), close::Policy::Stop);
        }
    }

    #[test]
    fn debug_output_hides_tokens() {
        let f = ClientFrame::Auth { id: None, token: "secret-token".into() };
        assert!(!format!("{f:?}").contains("secret-token"));
    }
}
