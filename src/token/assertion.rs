//! `X-Dashgate-Assertion`: a short-lived JWT the gateway signs for the upstream, so an app can
//! verify who the user is with `/auth/jwks.json` instead of trusting plain headers. Signed once
//! per access token and reused until it nears expiry, not on every request.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{AccessClaims, KeySet, jwt};
use crate::error::Error;

/// `typ` of assertions; never accepted as an access token (and the reverse).
pub const ASSERTION_TYP: &str = "dashgate-assertion+jwt";

/// Re-sign when less than this many seconds are left.
const MIN_REMAINING: i64 = 30;
/// Above this many cached entries, expired ones are swept out on insert.
const SWEEP_AT: usize = 10_000;

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    roles: &'a [String],
    permissions: &'a [String],
    sid: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Assertions by access-token `jti`.
#[derive(Default)]
pub struct AssertionCache {
    entries: Mutex<HashMap<String, (String, i64)>>,
}

impl AssertionCache {
    /// The assertion for this access token: cached, or freshly signed.
    pub fn get(
        &self,
        keys: &KeySet,
        claims: &AccessClaims,
        audience: &str,
        ttl: i64,
        now: i64,
    ) -> Result<String, Error> {
        if let Ok(map) = self.entries.lock() {
            if let Some((token, exp)) = map.get(&claims.jti) {
                if *exp > now && (exp - now > MIN_REMAINING || *exp >= claims.exp) {
                    return Ok(token.clone());
                }
            }
        }
        let exp = now.saturating_add(ttl).min(claims.exp);
        let token = jwt::sign(
            keys,
            ASSERTION_TYP,
            &AssertionClaims {
                iss: &claims.iss,
                aud: audience,
                sub: &claims.sub,
                roles: &claims.roles,
                permissions: &claims.permissions,
                sid: &claims.sid,
                iat: now,
                nbf: now,
                exp,
            },
        )?;
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= SWEEP_AT {
                map.retain(|_, (_, e)| *e > now);
            }
            map.insert(claims.jti.clone(), (token.clone(), exp));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_per_access_token_and_typed() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let keys = KeySet::load_or_create(dir.path())?;
        let claims = AccessClaims {
            iss: "dashgate".into(),
            aud: "dashgate".into(),
            sub: "alice".into(),
            roles: vec!["admin".into()],
            permissions: vec!["salaries:read".into()],
            sid: "s".into(),
            jti: "j".into(),
            iat: 1000,
            nbf: 1000,
            exp: 1900,
        };
        let cache = AssertionCache::default();
        let a = cache.get(&keys, &claims, "dashgate-app", 300, 1000)?;
        assert_eq!(
            cache.get(&keys, &claims, "dashgate-app", 300, 1200)?,
            a,
            "reused"
        );
        assert_ne!(
            cache.get(&keys, &claims, "dashgate-app", 300, 1280)?,
            a,
            "re-signed near expiry"
        );
        // It verifies as an assertion, never as an access token.
        assert!(jwt::verify_signature(&a, &keys, ASSERTION_TYP).is_ok());
        let expect = jwt::Expect {
            typ: jwt::ACCESS_TYP,
            issuer: "dashgate",
            audience: "dashgate",
            now: 1000,
            leeway: 0,
        };
        assert_eq!(
            jwt::verify_access(&a, &keys, &expect),
            Err(jwt::TokenError::BadType)
        );
        Ok(())
    }
}
