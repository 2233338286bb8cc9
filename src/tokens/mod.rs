//! Token machinery: EdDSA access tokens (JWT) and their JWKS, and opaque refresh tokens with
//! derived successors and hashed storage.

pub mod access;
pub mod keys;
pub mod refresh;

pub use access::{AccessClaims, AccessTokens, TokenError};
pub use keys::{KeyError, SigningKeyPair};
pub use refresh::{RefreshSecrets, RefreshToken};
