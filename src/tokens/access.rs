//! Access tokens: short-lived EdDSA JWTs that every service verifies locally with our JWKS.
//!
//! Expiry and not-before are checked here against the injected clock rather than by the JWT
//! library (which reads the system clock), so tests can drive time.
//!
//! Signing is done here with the parsed Ed25519 key: the JWT library re-reads the PKCS#8 key
//! (recomputing the public key) on every call, which doubled the cost of each token
//! (benches/tokens.rs). Verification stays with the library, and the tests decode our tokens with
//! it, so the two stay interoperable.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::{SigningKeyPair, VerificationKey};
use crate::session::SessionRecord;

/// Allowed clock skew for `nbf` between the issuer and a verifier.
const NBF_LEEWAY_SECS: i64 = 5;
/// Longest string accepted as a token before any parsing.
const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or its signature does not verify")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// Claims of an access token (docs/tokens.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Device id.
    pub did: String,
    /// Platform.
    pub plat: String,
}

/// Signs with the current key, verifies with the current and previous keys, serves the JWKS.
pub struct AccessTokens {
    issuer: String,
    audience: String,
    kid: String,
    signing: SigningKeyPair,
    /// base64url of the fixed JOSE header `{"alg":"EdDSA","typ":"JWT","kid":...}`.
    header_b64: String,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    jwks: Value,
}

impl AccessTokens {
    pub fn new(issuer: &str, audience: &str, signing: &SigningKeyPair, previous: &[VerificationKey]) -> Self {
        let current = signing.verification_key();
        let keys: Vec<&VerificationKey> =
            std::iter::once(&current).chain(previous.iter().filter(|k| k.kid != current.kid)).collect();
        let decoding = keys
            .iter()
            .map(|k| {
                let key = DecodingKey::from_ed_components(&k.x()).expect("a 32-byte key is valid");
                (k.kid.clone(), key)
            })
            .collect();
        let jwks = json!({ "keys": keys.iter().map(|k| json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.x(),
        })).collect::<Vec<_>>() });
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signing.kid().to_owned());
        let header_json = serde_json::to_vec(&header).expect("a JOSE header always serializes");
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid: signing.kid().to_owned(),
            signing: signing.clone(),
            header_b64: URL_SAFE_NO_PAD.encode(header_json),
            decoding,
            validation,
            jwks,
        }
    }

    /// Issues an access token for `session`, valid from `now` for `ttl`.
    pub fn sign(&self, session: &SessionRecord, now: DateTime<Utc>, ttl: Duration) -> (String, DateTime<Utc>) {
        let exp = now + ttl;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: session.user_id.clone(),
            sid: session.id,
            jti: Uuid::new_v4(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: exp.timestamp(),
            did: session.device.id.clone(),
            plat: session.device.platform.clone(),
        };
        let claims_json = serde_json::to_vec(&claims).expect("claims always serialize");
        let mut token = String::with_capacity(self.header_b64.len() + claims_json.len() * 4 / 3 + 90);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        let signature = self.signing.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        (token, DateTime::from_timestamp(claims.exp, 0).unwrap_or(exp))
    }

    /// Verifies signature (EdDSA only, known `kid`), issuer, audience, `nbf` and `exp` at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = header.kid.as_deref().and_then(|kid| self.decoding.get(kid)).ok_or(TokenError::Invalid)?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.nbf > now + NBF_LEEWAY_SECS {
            return Err(TokenError::Invalid);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The JSON Web Key Set: the current key first, then previous ones still accepted.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    pub fn current_kid(&self) -> &str {
        &self.kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Device, SessionStatus};

    pub(crate) fn record() -> SessionRecord {
        let now = Utc::now();
        SessionRecord {
            id: Uuid::new_v4(),
            user_id: "user-1".into(),
            status: SessionStatus::Active,
            device: Device {
                id: "dev-1".into(),
                platform: "ios".into(),
                name: None,
                model: None,
                app_version: None,
                fingerprint: None,
            },
            first_ip: None,
            last_ip: None,
            user_agent: None,
            metadata: json!({}),
            created_at: now,
            last_used_at: now,
            expires_at: now + Duration::days(1),
            absolute_expires_at: now + Duration::days(2),
            revoked_at: None,
            revoke_reason: None,
            last_seen_at: None,
            refresh_generation: 0,
            refresh_hash: vec![],
            prev_refresh_hash: None,
            rotated_at: None,
        }
    }

    fn tokens(key: &SigningKeyPair, previous: &[VerificationKey]) -> AccessTokens {
        AccessTokens::new("iss", "aud", key, previous)
    }

    #[test]
    fn a_signed_token_verifies_with_all_claims() {
        let key = SigningKeyPair::generate();
        let t = tokens(&key, &[]);
        let s = record();
        let now = Utc::now();
        let (jwt, exp) = t.sign(&s, now, Duration::minutes(10));
        let c = t.verify(&jwt, now).unwrap();
        assert_eq!((c.sub.as_str(), c.sid, c.did.as_str(), c.plat.as_str()), ("user-1", s.id, "dev-1", "ios"));
        assert_eq!((c.iss.as_str(), c.aud.as_str()), ("iss", "aud"));
        assert_eq!(c.exp, exp.timestamp());
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
    }

    #[test]
    fn expiry_is_judged_by_the_given_clock() {
        let key = SigningKeyPair::generate();
        let t = tokens(&key, &[]);
        let now = Utc::now();
        let (jwt, _) = t.sign(&record(), now, Duration::minutes(10));
        assert!(t.verify(&jwt, now + Duration::minutes(9)).is_ok());
        assert_eq!(t.verify(&jwt, now + Duration::minutes(10)), Err(TokenError::Expired));
        assert_eq!(t.verify(&jwt, now - Duration::minutes(1)), Err(TokenError::Invalid));
    }

    #[test]
    fn a_previous_key_keeps_verifying_and_an_unknown_one_does_not() {
        let old = SigningKeyPair::generate();
        let new = SigningKeyPair::generate();
        let now = Utc::now();
        let (old_jwt, _) = tokens(&old, &[]).sign(&record(), now, Duration::minutes(10));
        let rotated = tokens(&new, &[old.verification_key()]);
        assert!(rotated.verify(&old_jwt, now).is_ok());
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        assert_eq!(rotated.jwks()["keys"][0]["kid"], new.kid());
        assert_eq!(tokens(&new, &[]).verify(&old_jwt, now), Err(TokenError::Invalid));
    }

    #[test]
    fn tampered_or_other_algorithm_tokens_are_rejected() {
        let key = SigningKeyPair::generate();
        let t = tokens(&key, &[]);
        let now = Utc::now();
        let (jwt, _) = t.sign(&record(), now, Duration::minutes(10));
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged_claims = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"iss","aud":"aud","sub":"admin"}"#,
        );
        parts[1] = &forged_claims;
        assert_eq!(t.verify(&parts.join("."), now), Err(TokenError::Invalid));
        let hs = jsonwebtoken::encode(
            &Header { kid: Some(key.kid().to_owned()), ..Header::new(Algorithm::HS256) },
            &json!({"iss":"iss","aud":"aud"}),
            &jsonwebtoken::EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert_eq!(t.verify(&hs, now), Err(TokenError::Invalid));
        assert_eq!(t.verify("not a jwt", now), Err(TokenError::Invalid));
        assert_eq!(AccessTokens::new("other", "aud", &key, &[]).verify(&jwt, now), Err(TokenError::Invalid));
    }
}
