//! Tokens: the access JWT (issue and verify), the gateway's signing keys and JWKS, and opaque
//! refresh tokens.

pub mod assertion;
pub mod jwt;
pub mod keys;
pub mod refresh;
pub mod verified;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use jwt::{AccessClaims, TokenError};
pub use keys::KeySet;

/// Base64url without padding (the JOSE encoding).
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding: no padding, no other alphabet, no trailing bits.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], crate::error::Error> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out)
        .map_err(|e| crate::error::Error::Internal(format!("rng: {e}")))?;
    Ok(out)
}

/// A random identifier (128 bits, base64url) for `jti`, `sid` and the like.
pub fn random_id() -> Result<String, crate::error::Error> {
    Ok(b64(&random_bytes::<16>()?))
}
