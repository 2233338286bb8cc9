//! Ed25519 signing keys: generation, PEM loading and saving, and the RFC 7638 thumbprint used as
//! the `kid`.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, KeypairBytes};
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

    /// Reads a PKCS#8 `PRIVATE KEY` PEM, v1 (what OpenSSL and [`Self::to_pem`] write) or v2 with
    /// the public key (what earlier releases of this service generated).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem).map(Self::from_key).map_err(|_| KeyError::BadPem)
    }

    /// The key as a PKCS#8 v1 `PRIVATE KEY` PEM (RFC 8410, no public key), the form
    /// `openssl genpkey -algorithm ed25519` writes. ed25519-dalek's own encoder writes v2 with the
    /// public key attached, which OpenSSL 3.0 refuses (`openssl pkey`: "unsupported").
    pub fn to_pem(&self) -> String {
        let v1 = KeypairBytes { secret_key: self.key.to_bytes(), public_key: None };
        v1.to_pkcs8_pem(LineEnding::default()).expect("an Ed25519 key always encodes").to_string()
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

/// Writes a secret file readable by its owner only (0600), atomically (temp file + rename), so a
/// crash never leaves a half-written key behind. A missing directory is created owner-only (0700):
/// it is the data directory, which also holds the embedded database.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    // The mode above applies only when the file is created; a temp file left behind by a crash
    // keeps whatever it had, so set it again before the secret goes in.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Creates `dir` and any missing parents with owner-only permissions (0700). An existing directory
/// is left as it is: its permissions are the operator's choice.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
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

    /// The DER inside a PEM.
    fn der(pem: &str) -> Vec<u8> {
        use base64::engine::general_purpose::STANDARD;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    #[test]
    fn a_generated_key_is_written_as_pkcs8_v1_without_the_public_key() {
        let k = SigningKeyPair::generate();
        let pem = k.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        // RFC 8410 section 10.3: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 },
        // OCTET STRING { OCTET STRING (32 bytes) } } and nothing else.
        let der = der(&pem);
        let prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        assert_eq!((der.len(), &der[..16]), (48, &prefix[..]), "{der:02x?}");
        assert_eq!(&der[16..], k.key.to_bytes());
    }

    #[test]
    fn a_key_written_by_an_earlier_release_still_loads() {
        // Earlier releases saved ed25519-dalek's own encoding: PKCS#8 v2 with the public key.
        let k = SigningKeyPair::generate();
        let v2 = k.key.to_pkcs8_pem(LineEnding::default()).unwrap().to_string();
        assert_eq!(der(&v2)[4], 0x01, "the fixture is version 2 (v2 = 1)");
        assert_eq!(SigningKeyPair::from_pem(&v2).unwrap().kid(), k.kid());
        assert_eq!(VerificationKey::from_pem(&v2).unwrap(), k.verification_key());
    }

    /// Runs `openssl` with `args`; `None` (and a note) when the binary is not installed.
    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        match std::process::Command::new("openssl").args(args).output() {
            Ok(out) => Some(out),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("note: `openssl` is not on PATH; skipping the OpenSSL interoperability check");
                None
            }
            Err(e) => panic!("running openssl: {e}"),
        }
    }

    #[test]
    fn openssl_reads_a_generated_key_and_we_read_one_openssl_generated() {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        let path = dir.join("signing-key.pem");
        let (k, _) = SigningKeyPair::load_or_generate(&path).unwrap();
        let file = path.to_str().unwrap();
        let Some(check) = openssl(&["pkey", "-in", file, "-noout"]) else { return };
        assert!(check.status.success(), "openssl pkey -noout: {}", String::from_utf8_lossy(&check.stderr));
        let public = openssl(&["pkey", "-in", file, "-pubout"]).unwrap();
        assert!(public.status.success(), "openssl pkey -pubout: {}", String::from_utf8_lossy(&public.stderr));
        let public = String::from_utf8(public.stdout).unwrap();
        assert_eq!(VerificationKey::from_pem(&public).unwrap(), k.verification_key(), "the same public key");

        let theirs = dir.join("openssl.pem");
        let made = openssl(&["genpkey", "-algorithm", "ed25519", "-out", theirs.to_str().unwrap()]).unwrap();
        assert!(made.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&made.stderr));
        let pem = std::fs::read_to_string(&theirs).unwrap();
        let loaded = SigningKeyPair::from_pem(&pem).unwrap();
        assert_eq!(loaded.to_pem(), pem, "we write exactly what OpenSSL writes");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_and_the_directories_made_for_them_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        let path = root.join("data").join("refresh-key");
        // A temp file left by a crash, readable by everyone: the secret must not inherit that.
        create_private_dir(path.parent().unwrap()).unwrap();
        std::fs::write(path.with_extension("tmp"), b"stale").unwrap();
        std::fs::set_permissions(path.with_extension("tmp"), std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"secret").unwrap();
        assert_eq!((mode(&root), mode(&root.join("data")), mode(&path)), (0o700, 0o700, 0o600));
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        let fresh = root.join("fresh").join("signing-key.pem");
        SigningKeyPair::load_or_generate(&fresh).unwrap();
        assert_eq!((mode(fresh.parent().unwrap()), mode(&fresh)), (0o700, 0o600));
        std::fs::remove_dir_all(root).unwrap();
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
