//! `[tokens]`: how access tokens are labelled, and the keys behind access and refresh tokens.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Secret;

/// `[tokens]`: access-token claims and the keys behind access and refresh tokens.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// `iss` of access tokens.
    #[arg(id = "tokens.issuer", long = "issuer", env = "JWT_ISSUER")]
    pub issuer: String,
    /// `aud` of access tokens.
    #[arg(id = "tokens.audience", long = "audience", env = "JWT_AUDIENCE")]
    pub audience: String,
    /// Ed25519 private key (PKCS#8 PEM) signing access tokens; must exist when set. Unset:
    /// generated into `<data_dir>/signing-key.pem` on first start.
    #[arg(id = "tokens.signing_key_file", long = "signing-key-file", env = "SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Earlier signing keys (PEM, public or private) still accepted and published in the JWKS
    /// (comma-separated in the environment).
    #[arg(
        id = "tokens.previous_key_files",
        long = "previous-key-files",
        env = "PREVIOUS_KEY_FILES",
        value_delimiter = ','
    )]
    pub previous_key_files: Vec<PathBuf>,
    /// 32-byte key (base64url in a file) deriving refresh-token successors, shared by every node;
    /// must exist when set. Unset: generated into `<data_dir>/refresh-key` on first start.
    #[arg(id = "tokens.refresh_key_file", long = "refresh-key-file", env = "REFRESH_KEY_FILE")]
    pub refresh_key_file: Option<PathBuf>,
    /// Optional pepper mixed into stored refresh-token hashes.
    #[arg(id = "tokens.refresh_pepper", long = "refresh-pepper", env = "REFRESH_PEPPER", hide_env_values = true)]
    pub refresh_pepper: Option<Secret>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "session-service".into(),
            audience: "game-platform".into(),
            signing_key_file: None,
            previous_key_files: Vec::new(),
            refresh_key_file: None,
            refresh_pepper: None,
        }
    }
}

/// Where a key comes from: an operator-supplied file that must exist, or the embedded default
/// that is generated on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Generated(PathBuf),
}

impl KeySource {
    /// `configured`, or the file named `default` in the data directory.
    pub(super) fn of(configured: Option<&PathBuf>, data_dir: &Path, default: &str) -> Self {
        match configured {
            Some(path) => Self::File(path.clone()),
            None => Self::Generated(data_dir.join(default)),
        }
    }
}
