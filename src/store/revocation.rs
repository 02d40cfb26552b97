//! The in-memory revocation set: what the hot path checks for every authenticated request,
//! with no I/O. Entries expire when the tokens they could match have expired anyway.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::token::AccessClaims;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// A whole session (refresh family): every access token carrying this `sid`.
    Session,
    /// One access token by `jti`.
    Token,
    /// Every token of a user issued at or before `created_at` (disable, remove, password reset).
    User,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Session => "sid",
            RevocationKind::Token => "jti",
            RevocationKind::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<RevocationKind> {
        match s {
            "sid" => Some(RevocationKind::Session),
            "jti" => Some(RevocationKind::Token),
            "user" => Some(RevocationKind::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub value: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One map per kind, value → (created_at, expires_at), so a lookup borrows the token's own
/// strings instead of building a key.
#[derive(Default)]
struct Entries {
    sessions: HashMap<String, (i64, i64)>,
    tokens: HashMap<String, (i64, i64)>,
    users: HashMap<String, (i64, i64)>,
}

impl Entries {
    fn of(&mut self, kind: RevocationKind) -> &mut HashMap<String, (i64, i64)> {
        match kind {
            RevocationKind::Session => &mut self.sessions,
            RevocationKind::Token => &mut self.tokens,
            RevocationKind::User => &mut self.users,
        }
    }

    fn len(&self) -> usize {
        self.sessions.len() + self.tokens.len() + self.users.len()
    }
}

#[derive(Default)]
pub struct RevocationSet {
    entries: RwLock<Entries>,
}

impl RevocationSet {
    pub fn insert(&self, r: Revocation) {
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        let slot = map
            .of(r.kind)
            .entry(r.value)
            .or_insert((r.created_at, r.expires_at));
        slot.0 = slot.0.max(r.created_at);
        slot.1 = slot.1.max(r.expires_at);
    }

    /// Is this access token revoked? Fails closed: a poisoned lock means "revoked".
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let Ok(map) = self.entries.read() else {
            return true;
        };
        map.sessions.contains_key(&claims.sid)
            || map.tokens.contains_key(&claims.jti)
            || map
                .users
                .get(&claims.sub)
                .is_some_and(|(created, _)| claims.iat <= *created)
    }

    /// Drop entries whose tokens can no longer be valid.
    pub fn purge(&self, now: i64) {
        if let Ok(mut map) = self.entries.write() {
            for kind in [
                RevocationKind::Session,
                RevocationKind::Token,
                RevocationKind::User,
            ] {
                map.of(kind).retain(|_, (_, expires)| *expires > now);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "bob".into(),
            roles: vec![],
            permissions: vec![],
            sid: "s1".into(),
            jti: "j1".into(),
            iat,
            nbf: iat,
            exp: iat + 900,
        }
    }

    #[test]
    fn session_token_and_user_revocations() {
        let set = RevocationSet::default();
        assert!(!set.is_revoked(&claims(100)));
        set.insert(Revocation {
            kind: RevocationKind::User,
            value: "bob".into(),
            created_at: 100,
            expires_at: 2000,
        });
        assert!(
            set.is_revoked(&claims(100)),
            "issued at the revocation second"
        );
        assert!(
            !set.is_revoked(&claims(101)),
            "issued after: a new login works"
        );
        set.insert(Revocation {
            kind: RevocationKind::Session,
            value: "s1".into(),
            created_at: 5,
            expires_at: 1000,
        });
        assert!(set.is_revoked(&claims(101)));
        set.purge(1000);
        assert!(!set.is_revoked(&claims(101)));
        assert_eq!(set.len(), 1);
        set.purge(2000);
        assert!(set.is_empty());
    }
}
