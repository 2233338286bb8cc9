//! The SDK's error type: one enum for every way a call can fail.

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem (RFC 9457) carrying a stable `code`, e.g.
    /// `invalid_token`, `session_revoked`, `session_not_found`.
    #[error("the server answered {status} {code}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Api {
        /// HTTP status code.
        status: u16,
        /// The problem's stable machine-readable code.
        code: String,
        /// Human-readable explanation, when the server gave one.
        detail: Option<String>,
    },
    /// The request did not complete: connection refused or reset, timeout, invalid URL.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered with a body that is not what the protocol says (for an error status,
    /// a body that is not problem details).
    #[error("undecodable response body (HTTP {status}): {source}")]
    Decode {
        /// HTTP status code of the response.
        status: u16,
        /// What did not decode.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The HTTP status the server answered, if it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
        }
    }

    /// The problem's stable code, for [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_status_code_and_detail() {
        let e = Error::Api { status: 401, code: "session_revoked".into(), detail: None };
        assert_eq!(e.to_string(), "the server answered 401 session_revoked");
        assert_eq!((e.status(), e.code()), (Some(401), Some("session_revoked")));
        let e = Error::Api { status: 400, code: "invalid_field".into(), detail: Some("ip: bad".into()) };
        assert_eq!(e.to_string(), "the server answered 400 invalid_field: ip: bad");
    }
}
