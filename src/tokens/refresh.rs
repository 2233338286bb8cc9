//! Refresh tokens: `rt1.<session id>.<generation>.<secret>`, the secret 256 bits in base64url.
//!
//! Generation 0 carries a random secret. Each successor's secret is derived:
//! `HMAC-SHA256(server key, "rt1" ‖ session id ‖ generation ‖ previous secret)`, so a retried
//! refresh can be answered with the very same successor without storing it, and a genuine older
//! token can be proven genuine by deriving forward to a stored hash. Only hashes are stored:
//! SHA-256 of the secret, or HMAC-SHA256 with a pepper when one is configured.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Length of a refresh secret in bytes.
pub const SECRET_LEN: usize = 32;

/// How many derivations a presented token older than the previous generation may cost to be
/// proven genuine: the work any token can cause is at most this many HMACs (~0.45 µs each on the
/// reference machine: ~0.23 ms, against ~1.5 ms for the whole request). A token further behind
/// than the previous generation plus this is refused as unknown rather than treated as reuse: it
/// does not revoke the session. 512 rotations is about 85 hours of continuous play with the
/// default 10-minute access token, weeks of ordinary play, so a stolen token replayed at any
/// realistic age is still detected.
pub const MAX_TRACE_GENERATIONS: i64 = 512;

/// A parsed refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub session_id: Uuid,
    pub generation: i64,
    pub secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("session_id", &self.session_id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// Parses the wire form; `None` for anything malformed (callers answer a generic 401).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let mut parts = s.split('.');
        let (prefix, sid, generation, secret) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if prefix != "rt1" || parts.next().is_some() {
            return None;
        }
        let session_id = Uuid::try_parse(sid).ok()?;
        if generation.is_empty() || generation.len() > 12 || !generation.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let generation = generation.parse().ok()?;
        let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
        let secret = bytes.try_into().ok()?;
        Some(Self { session_id, generation, secret })
    }

    pub fn encode(&self) -> String {
        format!("rt1.{}.{}.{}", self.session_id.as_hyphenated(), self.generation, URL_SAFE_NO_PAD.encode(self.secret))
    }
}

/// The server-side keys of refresh tokens: the derivation key and the optional hashing pepper.
#[derive(Clone)]
pub struct RefreshSecrets {
    derive_key: [u8; 32],
    pepper: Option<Vec<u8>>,
}

impl std::fmt::Debug for RefreshSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSecrets(<redacted>)")
    }
}

impl RefreshSecrets {
    pub fn new(derive_key: [u8; 32], pepper: Option<Vec<u8>>) -> Self {
        Self { derive_key, pepper }
    }

    /// A fresh generation-0 token for a new session.
    pub fn issue_initial(&self, session_id: Uuid) -> RefreshToken {
        let mut secret = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        RefreshToken { session_id, generation: 0, secret }
    }

    /// The successor of `token`: generation + 1 with a derived secret.
    pub fn successor(&self, token: &RefreshToken) -> RefreshToken {
        let generation = token.generation + 1;
        let mut mac = HmacSha256::new_from_slice(&self.derive_key).expect("HMAC accepts any key length");
        mac.update(b"rt1");
        mac.update(token.session_id.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.update(&token.secret);
        let secret = mac.finalize().into_bytes().into();
        RefreshToken { session_id: token.session_id, generation, secret }
    }

    /// The token `steps` generations after `token`.
    pub fn advance(&self, token: &RefreshToken, steps: i64) -> RefreshToken {
        let mut t = token.clone();
        for _ in 0..steps {
            t = self.successor(&t);
        }
        t
    }

    /// The stored form of a token's secret.
    pub fn hash(&self, token: &RefreshToken) -> Vec<u8> {
        match &self.pepper {
            Some(pepper) => {
                let mut mac = HmacSha256::new_from_slice(pepper).expect("HMAC accepts any key length");
                mac.update(&token.secret);
                mac.finalize().into_bytes().to_vec()
            }
            None => Sha256::digest(token.secret).to_vec(),
        }
    }

    /// Constant-time check that `token` hashes to `stored`.
    pub fn matches(&self, token: &RefreshToken, stored: &[u8]) -> bool {
        self.hash(token).ct_eq(stored).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> RefreshSecrets {
        RefreshSecrets::new([7u8; 32], None)
    }

    #[test]
    fn a_token_survives_encode_and_parse() {
        let t = secrets().issue_initial(Uuid::new_v4());
        let s = t.encode();
        assert!(s.starts_with("rt1."));
        assert_eq!(RefreshToken::parse(&s), Some(t));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let t = secrets().issue_initial(Uuid::new_v4()).encode();
        for bad in [
            "",
            "rt1",
            "rt2.x.0.y",
            &t.replacen("rt1", "rt0", 1),
            &format!("{t}.extra"),
            &t[..t.len() - 2],
            "rt1.00000000-0000-0000-0000-000000000000.-1.AAAA",
            "rt1.00000000-0000-0000-0000-000000000000.99999999999999999999.AAAA",
        ] {
            assert_eq!(RefreshToken::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn successors_are_deterministic_and_distinct() {
        let s = secrets();
        let t0 = s.issue_initial(Uuid::new_v4());
        let t1 = s.successor(&t0);
        assert_eq!(t1.generation, 1);
        assert_eq!(s.successor(&t0), t1);
        assert_ne!(t1.secret, t0.secret);
        assert_eq!(s.advance(&t0, 3), s.successor(&s.successor(&t1)));
        let other_key = RefreshSecrets::new([8u8; 32], None);
        assert_ne!(other_key.successor(&t0).secret, t1.secret);
    }

    #[test]
    fn hashes_match_only_their_own_secret_and_pepper_changes_them() {
        let s = secrets();
        let t = s.issue_initial(Uuid::new_v4());
        let h = s.hash(&t);
        assert!(s.matches(&t, &h));
        assert!(!s.matches(&s.successor(&t), &h));
        let peppered = RefreshSecrets::new([7u8; 32], Some(b"pepper".to_vec()));
        assert_ne!(peppered.hash(&t), h);
        assert!(peppered.matches(&t, &peppered.hash(&t)));
    }
}
