//! The in-memory revocation set: what the hot path checks for every authenticated request,
//! with no I/O. Entries expire when the tokens they could match have expired anyway.
//!
//! An entry is a fixed-size digest of its value, in its kind's map (a 64-bit SipHash under a
//! key drawn at start, so nobody outside the process can aim two values at one digest), and
//! the two times as seconds in a `u32`: 16 bytes however long the token's strings are. A
//! digest shared by two values can only make the set answer "revoked" for a token that is
//! not: the set can end a session too early, never let a revoked one through.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
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

/// The key an entry is filed under: a keyed digest of its kind and value.
type Digest = u64;

/// When an entry was made and until when it matters, in seconds since 1970. A `u32` holds
/// them until 2106; a later time is held as the largest it can.
#[derive(Debug, Clone, Copy)]
struct Window {
    created_at: u32,
    expires_at: u32,
}

fn seconds(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

/// The map's own hasher. Its keys are already uniform keyed digests, so the key is the hash.
#[derive(Default)]
struct AlreadyDigested(u64);

impl Hasher for AlreadyDigested {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type DigestMap = HashMap<Digest, Window, BuildHasherDefault<AlreadyDigested>>;

/// One map per kind, so a kind nobody has revoked costs no hashing at all.
#[derive(Default)]
struct Entries {
    sessions: DigestMap,
    tokens: DigestMap,
    users: DigestMap,
}

impl Entries {
    fn of(&mut self, kind: RevocationKind) -> &mut DigestMap {
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

pub struct RevocationSet {
    /// The SipHash key, drawn when the set is made.
    key: RandomState,
    entries: RwLock<Entries>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        RevocationSet {
            key: RandomState::new(),
            entries: RwLock::new(Entries::default()),
        }
    }
}

impl RevocationSet {
    fn digest(&self, value: &str) -> Digest {
        self.key.hash_one(value)
    }

    /// The entry `value` is filed under in `map`; an empty map answers without hashing.
    fn find<'m>(&self, map: &'m DigestMap, value: &str) -> Option<&'m Window> {
        if map.is_empty() {
            return None;
        }
        map.get(&self.digest(value))
    }

    pub fn insert(&self, r: Revocation) {
        let digest = self.digest(&r.value);
        let (created_at, expires_at) = (seconds(r.created_at), seconds(r.expires_at));
        let Ok(mut map) = self.entries.write() else {
            return;
        };
        let slot = map.of(r.kind).entry(digest).or_insert(Window {
            created_at,
            expires_at,
        });
        slot.created_at = slot.created_at.max(created_at);
        slot.expires_at = slot.expires_at.max(expires_at);
    }

    /// Is this access token revoked? Fails closed: a poisoned lock means "revoked".
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let Ok(map) = self.entries.read() else {
            return true;
        };
        self.find(&map.sessions, &claims.sid).is_some()
            || self.find(&map.tokens, &claims.jti).is_some()
            || self
                .find(&map.users, &claims.sub)
                .is_some_and(|w| claims.iat <= i64::from(w.created_at))
    }

    /// Drop entries whose tokens can no longer be valid.
    pub fn purge(&self, now: i64) {
        if let Ok(mut map) = self.entries.write() {
            for kind in [
                RevocationKind::Session,
                RevocationKind::Token,
                RevocationKind::User,
            ] {
                map.of(kind).retain(|_, w| i64::from(w.expires_at) > now);
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

    #[test]
    fn a_value_revokes_only_under_its_own_kind() {
        let set = RevocationSet::default();
        for (kind, value) in [
            (RevocationKind::Token, "s1"),
            (RevocationKind::Session, "j1"),
            (RevocationKind::Session, "bob"),
            (RevocationKind::User, "s1"),
        ] {
            set.insert(Revocation {
                kind,
                value: value.into(),
                created_at: 100,
                expires_at: 2000,
            });
        }
        assert_eq!(set.len(), 4);
        assert!(!set.is_revoked(&claims(50)));
        set.insert(Revocation {
            kind: RevocationKind::Token,
            value: "j1".into(),
            created_at: 0,
            expires_at: 2000,
        });
        assert!(set.is_revoked(&claims(50)));
    }

    #[test]
    fn an_entry_is_sixteen_bytes_however_long_its_value() {
        assert_eq!(std::mem::size_of::<(Digest, Window)>(), 16);
        let set = RevocationSet::default();
        let mut long = claims(100);
        long.jti = "j".repeat(64 * 1024);
        set.insert(Revocation {
            kind: RevocationKind::Token,
            value: long.jti.clone(),
            created_at: 100,
            expires_at: 2000,
        });
        assert!(set.is_revoked(&long));
        assert!(!set.is_revoked(&claims(100)));
    }

    #[test]
    fn times_outside_u32_are_held_at_its_ends_and_still_revoke() {
        let set = RevocationSet::default();
        set.insert(Revocation {
            kind: RevocationKind::User,
            value: "bob".into(),
            created_at: i64::MAX,
            expires_at: i64::MAX,
        });
        assert!(set.is_revoked(&claims(i64::from(u32::MAX))));
        set.purge(i64::from(u32::MAX) - 1);
        assert_eq!(set.len(), 1, "an expiry past 2106 is kept");
        set.insert(Revocation {
            kind: RevocationKind::Session,
            value: "other".into(),
            created_at: -5,
            expires_at: -5,
        });
        set.purge(0);
        assert_eq!(set.len(), 1, "an expiry before 1970 is dropped at once");
    }
}
