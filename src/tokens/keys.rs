//! Ed25519 signing keys: generation, PEM loading and saving, and the RFC 7638 thumbprint used as
//! the `kid`.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 key in PEM (PKCS#8 private key or SPKI public key)")]
    BadPem,
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// A public key that verifies access tokens, with its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    pub kid: String,
    pub public: [u8; 32],
}

impl VerificationKey {
    pub fn new(public: [u8; 32]) -> Self {
        Self { kid: thumbprint(&public), public }
    }

    /// Accepts a public key (SPKI PEM) or a private key (PKCS#8 PEM), whose public half is used.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(k) = VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::new(k.to_bytes()));
        }
        Ok(SigningKeyPair::from_pem(pem)?.verification_key())
    }

    /// The public key in base64url, as the JWK `x` member.
    pub fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }
}

/// The current signing key.
#[derive(Clone)]
pub struct SigningKeyPair {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKeyPair {
    pub fn generate() -> Self {
        Self::from_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    fn from_key(key: SigningKey) -> Self {
        let kid = thumbprint(&key.verifying_key().to_bytes());
        Self { key, kid }
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem).map(Self::from_key).map_err(|_| KeyError::BadPem)
    }

    pub fn to_pem(&self) -> String {
        self.key.to_pkcs8_pem(Default::default()).expect("an Ed25519 key always encodes").to_string()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey::new(self.key.verifying_key().to_bytes())
    }

    /// Loads the key at `path`, or generates one and writes it there (owner-only permissions).
    /// Returns the key and whether it was generated now.
    pub fn load_or_generate(path: &Path) -> Result<(Self, bool), KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(pem) => Ok((Self::from_pem(&pem)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, key.to_pem().as_bytes()).map_err(io)?;
                Ok((key, true))
            }
            Err(e) => Err(io(e)),
        }
    }
}

/// Writes a secret file readable by its owner only, atomically (temp file + rename), so a crash
/// never leaves a half-written key behind.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key.
fn thumbprint(public: &[u8; 32]) -> String {
    let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public));
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_pem_with_the_same_kid() {
        let k = SigningKeyPair::generate();
        let again = SigningKeyPair::from_pem(&k.to_pem()).unwrap();
        assert_eq!(again.kid(), k.kid());
        assert_eq!(VerificationKey::from_pem(&k.to_pem()).unwrap(), k.verification_key());
        assert_ne!(SigningKeyPair::generate().kid(), k.kid());
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKeyPair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(VerificationKey::from_pem("hello").is_err());
    }

    #[test]
    fn load_or_generate_keeps_the_key_it_generated() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("signing.pem");
        let (k1, generated) = SigningKeyPair::load_or_generate(&path).unwrap();
        assert!(generated);
        let (k2, generated) = SigningKeyPair::load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(k1.kid(), k2.kid());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
