//! Access tokens already verified, by their exact text: a token presented again (every request
//! of a session presents the same one until it is refreshed) skips the Ed25519 verification,
//! which is most of the CPU a proxied request costs.
//!
//! What a hit still does: the time checks (`exp`, `nbf`, `iat`) against the current time, and,
//! in the caller, the revocation check. An entry is valid only for the key set that verified it
//! (a key reload empties the cache in effect). The key is the whole token, never a part of it, so
//! a different token can never be mistaken for a verified one. Memory is bounded: each shard
//! holds at most [`SHARD_CAPACITY`] entries, sweeping expired ones and then starting afresh
//! when full.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::jwt::{self, AccessClaims, Expect, TokenError};
use super::keys::KeySet;

const SHARDS: usize = 16;
const SHARD_CAPACITY: usize = 4096;

struct Entry {
    generation: u64,
    claims: Arc<AccessClaims>,
}

pub struct VerifiedTokens {
    shards: Vec<Mutex<HashMap<Box<str>, Entry>>>,
    hasher: std::collections::hash_map::RandomState,
    capacity: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_shard_capacity(SHARD_CAPACITY)
    }
}

impl VerifiedTokens {
    fn with_shard_capacity(capacity: usize) -> Self {
        VerifiedTokens {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            capacity,
        }
    }

    fn shard(&self, token: &str) -> Option<&Mutex<HashMap<Box<str>, Entry>>> {
        let i = usize::try_from(self.hasher.hash_one(token) % SHARDS as u64).unwrap_or(0);
        self.shards.get(i)
    }

    /// Verify `token` as an access token: from the cache when this key set verified it before
    /// (times checked again), otherwise in full (and remembered).
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        expect: &Expect<'_>,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        // Refused before it is even hashed; only verified tokens are ever stored, so garbage
        // cannot fill the cache.
        if token.len() > jwt::MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let shard = self.shard(token);
        if let Some(claims) = shard.and_then(|s| {
            let map = s.lock().ok()?;
            let e = map.get(token)?;
            (e.generation == keys.generation()).then(|| Arc::clone(&e.claims))
        }) {
            jwt::check_times(&claims, expect)?;
            return Ok(claims);
        }
        let claims = Arc::new(jwt::verify_access(token, keys, expect)?);
        if let Some(mut map) = shard.and_then(|s| s.lock().ok()) {
            if map.len() >= self.capacity {
                let horizon = expect.now.saturating_sub(expect.leeway);
                map.retain(|_, e| e.claims.exp > horizon && e.generation == keys.generation());
                if map.len() >= self.capacity {
                    map.clear();
                }
            }
            map.insert(
                token.into(),
                Entry {
                    generation: keys.generation(),
                    claims: Arc::clone(&claims),
                },
            );
        }
        Ok(claims)
    }

    /// How many verifications are remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn claims(now: i64, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "dashgate".into(),
            aud: "dashgate".into(),
            sub: "alice".into(),
            roles: vec!["viewer".into()],
            permissions: vec![],
            sid: "s1".into(),
            jti: "j1".into(),
            iat: now,
            nbf: now,
            exp,
        }
    }

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            typ: jwt::ACCESS_TYP,
            issuer: "dashgate",
            audience: "dashgate",
            now,
            leeway: 0,
        }
    }

    #[test]
    fn hits_recheck_time_and_keys_and_never_match_other_tokens() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let keys = KeySet::load_or_create(dir.path())?;
        let cache = VerifiedTokens::default();
        let now = 1_000_000;
        let token = jwt::sign(&keys, jwt::ACCESS_TYP, &claims(now, now + 60))?;
        assert_eq!(
            cache
                .verify(&token, &keys, &expect(now))
                .map(|c| c.sub.clone()),
            Ok("alice".into())
        );
        assert_eq!(cache.len(), 1);
        // A hit: same answer.
        assert!(cache.verify(&token, &keys, &expect(now + 1)).is_ok());
        // Expiry is checked on hits too.
        assert_eq!(
            cache.verify(&token, &keys, &expect(now + 60)).err(),
            Some(TokenError::Expired)
        );
        // A token differing in its signature only is verified, and refused.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(cache.verify(&forged, &keys, &expect(now)).is_err());
        // Another key set (a reload) does not trust what this one verified.
        let other = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let other_keys = KeySet::load_or_create(other.path())?;
        assert_eq!(
            cache.verify(&token, &other_keys, &expect(now)).err(),
            Some(TokenError::UnknownKey)
        );
        Ok(())
    }

    #[test]
    fn memory_is_bounded() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let keys = KeySet::load_or_create(dir.path())?;
        let cache = VerifiedTokens::with_shard_capacity(8);
        let now = 1_000_000;
        for i in 0..(SHARDS * 8 * 3) {
            let mut c = claims(now, now + 60);
            c.jti = format!("j{i}");
            let token = jwt::sign(&keys, jwt::ACCESS_TYP, &c)?;
            cache
                .verify(&token, &keys, &expect(now))
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        assert!(cache.len() <= SHARDS * 8, "{}", cache.len());
        Ok(())
    }
}
