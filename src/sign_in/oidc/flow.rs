//! One sign-in in progress, between the redirect to the provider and its callback. `state`,
//! `nonce` and the PKCE verifier are 256-bit random values; they travel in one HttpOnly cookie
//! signed with the gateway's secret (so any replica can finish the flow, and nothing is
//! stored), bound to this browser: a callback whose `state` is not the cookie's is refused,
//! which is what stops login CSRF and code injection (RFC 9700 4.7).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// How long a sign-in at the provider may take.
pub const FLOW_TTL: i64 = 600;

/// What the redirect to the provider carries.
pub struct Start {
    pub state: String,
    pub nonce: String,
    /// `BASE64URL(SHA256(verifier))` (RFC 7636 S256).
    pub challenge: String,
    pub pending: Pending,
}

/// What the cookie keeps until the callback.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub verifier: String,
    /// Where to go after signing in (already made safe).
    #[serde(rename = "x")]
    pub next: String,
    #[serde(rename = "e")]
    pub expires: i64,
}

fn random() -> Result<String, Error> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

pub fn start(next: String, now: i64) -> Result<Start, Error> {
    let verifier = random()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let pending = Pending {
        state: random()?,
        nonce: random()?,
        verifier,
        next,
        expires: now + FLOW_TTL,
    };
    Ok(Start {
        state: pending.state.clone(),
        nonce: pending.nonce.clone(),
        challenge,
        pending,
    })
}

fn mac(key: &[u8; 32], payload: &str) -> Result<Hmac<Sha256>, Error> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| Error::Internal(format!("hmac: {e}")))?;
    // Domain separation from the CSRF tokens signed with the same secret.
    m.update(b"dashgate oidc flow v1\0");
    m.update(payload.as_bytes());
    Ok(m)
}

/// The cookie value: `payload.signature`, both base64url.
pub fn seal(key: &[u8; 32], pending: &Pending) -> Result<String, Error> {
    let json = serde_json::to_vec(pending).map_err(|e| Error::Internal(e.to_string()))?;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let sig = URL_SAFE_NO_PAD.encode(mac(key, &payload)?.finalize().into_bytes());
    Ok(format!("{payload}.{sig}"))
}

/// Why a callback does not belong to a sign-in this browser started.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("no sign-in in progress in this browser")]
    Missing,
    #[error("the sign-in cookie is not ours")]
    Forged,
    #[error("the sign-in took too long")]
    Expired,
    #[error("state does not match")]
    StateMismatch,
}

/// Open the cookie and check the callback's `state` against it (constant time).
pub fn open(
    key: &[u8; 32],
    cookie: Option<&str>,
    state: &str,
    now: i64,
) -> Result<Pending, FlowError> {
    let cookie = cookie.ok_or(FlowError::Missing)?;
    let (payload, sig) = cookie.split_once('.').ok_or(FlowError::Forged)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| FlowError::Forged)?;
    mac(key, payload)
        .map_err(|_| FlowError::Forged)?
        .verify_slice(&sig)
        .map_err(|_| FlowError::Forged)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| FlowError::Forged)?;
    let pending: Pending = serde_json::from_slice(&json).map_err(|_| FlowError::Forged)?;
    if now > pending.expires {
        return Err(FlowError::Expired);
    }
    if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
        return Err(FlowError::StateMismatch);
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_sealed_flow_opens_only_with_its_state_key_and_time() -> Result<(), Error> {
        let s = start("/reports?x=1".to_owned(), 1000)?;
        assert_eq!(s.pending.state, s.state);
        assert_ne!(s.state, s.nonce);
        assert_ne!(s.challenge, s.pending.verifier);
        let sealed = seal(&KEY, &s.pending)?;
        assert_eq!(open(&KEY, Some(&sealed), &s.state, 1000), Ok(s.pending));
        assert_eq!(
            open(&KEY, Some(&sealed), "other", 1000),
            Err(FlowError::StateMismatch)
        );
        assert_eq!(
            open(&KEY, Some(&sealed), &s.state, 1000 + FLOW_TTL + 1),
            Err(FlowError::Expired)
        );
        assert_eq!(
            open(&[8; 32], Some(&sealed), &s.state, 1000),
            Err(FlowError::Forged)
        );
        assert_eq!(open(&KEY, None, &s.state, 1000), Err(FlowError::Missing));
        // A payload changed by the client (say, its `next`) no longer matches the signature.
        let (_, sig) = sealed.split_once('.').unwrap_or_default();
        let mut other = start("//evil.example".to_owned(), 1000)?.pending;
        other.state = s.state.clone();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap_or_default());
        assert_eq!(
            open(
                &KEY,
                Some(&format!("{forged_payload}.{sig}")),
                &s.state,
                1000
            ),
            Err(FlowError::Forged)
        );
        Ok(())
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() -> Result<(), Error> {
        // Known answer from an independent implementation:
        // printf VERIFIER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gXFcFNkSo";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, "5zyfLwEBKf2FPtNe_eg-dDJoH26U1UnFuCc4Ly34WXw");
        let s = start("/".to_owned(), 0)?;
        assert_eq!(
            s.challenge,
            URL_SAFE_NO_PAD.encode(Sha256::digest(s.pending.verifier.as_bytes()))
        );
        Ok(())
    }
}
