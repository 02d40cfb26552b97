//! Compact JWS with exactly one algorithm (EdDSA/Ed25519), written out in full so that every
//! rule of RFC 8725 is visible in one place:
//! - the header may hold only `alg`, `typ` and `kid`; `alg` must be `EdDSA`, `typ` must be the
//!   one expected for this kind of token, `kid` must name one of our keys; anything else
//!   (`jku`, `jwk`, `x5u`, `crit`, …) rejects the token, so no key is ever taken from a token and
//!   no URL in it is ever fetched;
//! - the signature is checked (strict Ed25519) before any claim is looked at;
//! - claims must have the right JSON types (an `exp` sent as a string is a rejection, not a
//!   skipped check), and `iss`, `aud`, `exp`, `nbf` are always enforced.

use serde::{Deserialize, Serialize};

use super::keys::{ALG, KeySet};
use super::{b64, unb64};

/// `typ` of access tokens (RFC 9068). Other token kinds use other values and are never
/// accepted where an access token is expected.
pub const ACCESS_TYP: &str = "at+jwt";

/// Longest token we parse at all; larger ones are rejected before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Longest accepted `kid`.
const MAX_KID_LEN: usize = 64;

/// Why a token was refused. Deliberately coarse towards the client (all map to 401), precise
/// in logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is too large")]
    TooLarge,
    #[error("token is malformed")]
    Malformed,
    #[error("token header is not acceptable")]
    BadHeader,
    #[error("token algorithm is not allowed")]
    BadAlgorithm,
    #[error("token type is not acceptable")]
    BadType,
    #[error("token key id is unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token claims are invalid")]
    BadClaims,
    #[error("token issuer or audience is wrong")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Claims of an access token. Types are strict: numbers must be JSON numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub roles: Vec<String>,
    /// Effective permissions of the roles, so authorization needs no database lookup.
    pub permissions: Vec<String>,
    /// Session (refresh family) id; binds CSRF tokens and revocation.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// What verification expects besides a valid signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub typ: &'a str,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: i64,
    pub leeway: i64,
}

/// Sign `claims` as a compact JWS with the active key.
pub fn sign<T: Serialize>(
    keys: &KeySet,
    typ: &str,
    claims: &T,
) -> Result<String, crate::error::Error> {
    let (kid, key) = keys.active();
    let header = Header {
        alg: ALG.to_owned(),
        typ: typ.to_owned(),
        kid: kid.to_owned(),
    };
    let signing_input = format!("{}.{}", enc(&header)?, enc(claims)?);
    let sig = ed25519_dalek::Signer::sign(key, signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", b64(&sig.to_bytes())))
}

fn enc<T: Serialize + ?Sized>(value: &T) -> Result<String, crate::error::Error> {
    serde_json::to_vec(value)
        .map(|bytes| b64(&bytes))
        .map_err(|e| crate::error::Error::Internal(format!("token json: {e}")))
}

/// Check header and signature; return the decoded payload bytes.
pub fn verify_signature(token: &str, keys: &KeySet, typ: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_bytes = unb64(h).ok_or(TokenError::Malformed)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::BadHeader)?;
    if header.alg != ALG {
        return Err(TokenError::BadAlgorithm);
    }
    if header.typ != typ {
        return Err(TokenError::BadType);
    }
    if header.kid.is_empty()
        || header.kid.len() > MAX_KID_LEN
        || !header
            .kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(TokenError::UnknownKey);
    }
    let key = keys.verifying(&header.kid).ok_or(TokenError::UnknownKey)?;
    let sig_bytes = unb64(s).ok_or(TokenError::BadSignature)?;
    let sig =
        ed25519_dalek::Signature::from_slice(&sig_bytes).map_err(|_| TokenError::BadSignature)?;
    let signing_input_len = h.len() + 1 + p.len();
    let signing_input = token
        .get(..signing_input_len)
        .ok_or(TokenError::Malformed)?;
    key.verify_strict(signing_input.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
    unb64(p).ok_or(TokenError::Malformed)
}

/// Verify an access token completely: header, signature, then claims.
pub fn verify_access(
    token: &str,
    keys: &KeySet,
    expect: &Expect<'_>,
) -> Result<AccessClaims, TokenError> {
    let payload = verify_signature(token, keys, expect.typ)?;
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::BadClaims)?;
    if claims.iss != expect.issuer || claims.aud != expect.audience {
        return Err(TokenError::WrongAudience);
    }
    if claims.sub.is_empty() || claims.sid.is_empty() || claims.jti.is_empty() {
        return Err(TokenError::BadClaims);
    }
    check_times(&claims, expect)?;
    Ok(claims)
}

/// The time-dependent part of verification: `exp`, `nbf` and `iat` against now, with leeway.
/// Done again on every use of a cached verification.
pub fn check_times(claims: &AccessClaims, expect: &Expect<'_>) -> Result<(), TokenError> {
    if claims.exp <= expect.now.saturating_sub(expect.leeway) {
        return Err(TokenError::Expired);
    }
    if claims.nbf > expect.now.saturating_add(expect.leeway)
        || claims.iat > expect.now.saturating_add(expect.leeway)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
