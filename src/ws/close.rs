//! [`CloseReason`]: every reason the server closes a connection with an `error` frame, each with
//! its stable code, close code and message (docs/protocol.md lists them), in one place.

use session_client::proto::ws::{close, ServerFrame};

use crate::session::SessionError;

/// Why the server closes a connection.
#[derive(Debug)]
pub enum CloseReason {
    /// A message over the size limit.
    FrameTooLarge,
    /// More messages than the per-connection rate allows.
    RateLimited,
    /// Too many malformed frames in a row.
    Abusive,
    /// No `auth` frame within the auth timeout.
    AuthTimeout,
    /// Newer sockets needed this one's place among those waiting to authenticate.
    TooManyWaiting,
    /// The node holds its maximum of authenticated connections.
    AtConnectionLimit,
    /// The connection could not take a push (its client does not read).
    SlowConsumer,
    /// A newer connection of the same session took over.
    Replaced,
    /// No activity within the heartbeat timeout.
    HeartbeatTimeout,
    /// The access token expired and no refresh came within the grace time.
    AccessTokenLapsed,
    /// Authentication was refused, or the session ended while connecting.
    Refused(SessionError),
}

impl CloseReason {
    /// The stable code of the `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            Self::FrameTooLarge => "frame_too_large",
            Self::RateLimited => "rate_limited",
            Self::Abusive => "protocol_error",
            Self::AuthTimeout => "auth_timeout",
            Self::TooManyWaiting | Self::AtConnectionLimit => "server_full",
            Self::SlowConsumer => "slow_consumer",
            Self::Replaced => "replaced",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::AccessTokenLapsed => "token_expired",
            Self::Refused(e) => e.code(),
        }
    }

    /// The WebSocket close code (4000-4099: the client may reconnect; 4100-4199: it must not).
    pub fn close_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge | Self::Abusive => close::PROTOCOL_ERROR,
            Self::RateLimited => close::RATE_LIMITED,
            Self::AuthTimeout => close::AUTH_TIMEOUT,
            Self::TooManyWaiting | Self::AtConnectionLimit => close::SERVER_FULL,
            Self::SlowConsumer => close::SLOW_CONSUMER,
            Self::Replaced => close::REPLACED,
            Self::HeartbeatTimeout => close::HEARTBEAT_TIMEOUT,
            Self::AccessTokenLapsed => close::TOKEN_EXPIRED,
            Self::Refused(e) => refusal_close_code(e),
        }
    }

    /// The human-readable message of the `error` frame.
    pub fn message(&self) -> String {
        let text = match self {
            Self::FrameTooLarge => "message over the size limit",
            Self::RateLimited => "too many messages per second",
            Self::Abusive => "too many malformed frames in a row",
            Self::AuthTimeout => "no auth frame within the auth timeout",
            Self::TooManyWaiting => "too many connections are waiting to authenticate",
            Self::AtConnectionLimit => "this node is at its connection limit",
            Self::SlowConsumer => "the connection did not keep up with its messages",
            Self::Replaced => "a newer connection of this session replaced this one",
            Self::HeartbeatTimeout => "no activity within the heartbeat timeout",
            Self::AccessTokenLapsed => "the access token expired without a refresh",
            Self::Refused(e) => return e.public_message(),
        };
        text.to_owned()
    }

    /// The `error` frame that announces the close; `id` answers the request that caused it.
    pub fn frame(&self, id: Option<u64>) -> ServerFrame {
        ServerFrame::Error {
            id,
            code: self.code().to_owned(),
            message: self.message(),
            close_code: Some(self.close_code()),
        }
    }
}

/// The close code for a refused authentication.
fn refusal_close_code(e: &SessionError) -> u16 {
    match e {
        SessionError::InvalidToken | SessionError::Invalid(_) | SessionError::NotFound => close::AUTH_FAILED,
        SessionError::TokenExpired => close::TOKEN_EXPIRED,
        SessionError::Revoked => close::REVOKED,
        SessionError::Expired => close::SESSION_EXPIRED,
        // Internal error (RFC 6455): the client backs off and retries.
        SessionError::Store(_) => 1011,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnectable_reasons_use_the_4000_range_and_terminal_ones_the_4100_range() {
        let reconnectable = [
            CloseReason::RateLimited,
            CloseReason::AuthTimeout,
            CloseReason::TooManyWaiting,
            CloseReason::SlowConsumer,
            CloseReason::HeartbeatTimeout,
            CloseReason::AccessTokenLapsed,
        ];
        for reason in reconnectable {
            assert!((4000..4100).contains(&reason.close_code()), "{reason:?}");
        }
        let terminal = [
            CloseReason::Replaced,
            CloseReason::Refused(SessionError::Revoked),
            CloseReason::Refused(SessionError::Expired),
            CloseReason::Refused(SessionError::InvalidToken),
        ];
        for reason in terminal {
            assert!((4100..4200).contains(&reason.close_code()), "{reason:?}");
        }
    }

    #[test]
    fn a_frame_carries_the_reason_s_code_message_and_close_code() {
        let frame = CloseReason::Refused(SessionError::Revoked).frame(Some(7));
        let expected = ServerFrame::Error {
            id: Some(7),
            code: "session_revoked".into(),
            message: "the session has been revoked".into(),
            close_code: Some(close::REVOKED),
        };
        assert_eq!(frame, expected);
    }
}
