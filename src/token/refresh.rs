//! Opaque refresh tokens (and server-mode session ids): `dgr_<family>.<secret>` with 256 random
//! bits of secret, shown to the client once, stored only as a SHA-256 hash (a fast hash is
//! right here: the input has full entropy, so there is nothing to brute force, and lookups stay
//! cheap). The family id in the clear lets a clustered store keep all of a session's keys in
//! one hash slot; it is not a secret and proves nothing by itself.

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Prefix that marks a dashgate refresh token (helps secret scanners; never a JWT).
pub const PREFIX: &str = "dgr_";

/// Longest string we even try to hash as a refresh token.
pub const MAX_LEN: usize = 160;

/// Longest family id accepted in a token.
const MAX_FAMILY_LEN: usize = 43;

/// What the store needs to find a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshKey {
    pub family: String,
    pub hash: [u8; 32],
}

/// A new refresh token of `family` and its key.
pub fn generate(family: &str) -> Result<(String, RefreshKey), Error> {
    let token = format!(
        "{PREFIX}{family}.{}",
        super::b64(&super::random_bytes::<32>()?)
    );
    let key = RefreshKey {
        family: family.to_owned(),
        hash: hash(&token),
    };
    Ok((token, key))
}

/// The key of a presented token; `None` for anything that is not shaped like one of ours, so
/// garbage never reaches the store.
pub fn parse(presented: &str) -> Option<RefreshKey> {
    if presented.len() > MAX_LEN {
        return None;
    }
    let (family, secret) = presented.strip_prefix(PREFIX)?.split_once('.')?;
    let family_ok = !family.is_empty()
        && family.len() <= MAX_FAMILY_LEN
        && family
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !family_ok || super::unb64(secret).is_none_or(|b| b.len() != 32) {
        return None;
    }
    Some(RefreshKey {
        family: family.to_owned(),
        hash: hash(presented),
    })
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_garbage_does_not() -> Result<(), Error> {
        let (t, k) = generate("fam1")?;
        assert_eq!(parse(&t), Some(k.clone()));
        assert_eq!(k.family, "fam1");
        let (t2, k2) = generate("fam1")?;
        assert_ne!(t, t2);
        assert_ne!(k.hash, k2.hash);
        for bad in [
            "",
            "dgr_",
            "dgr_abc",
            "dgr_fam1",
            "dgr_.x",
            "dgr_fam1.short",
            "eyJ.eyJ.sig",
            &format!("{t}x"),
            &t[1..],
            &t.replace("fam1", "fa m1"),
            &t.replace("fam1", "../x"),
            &t.replace("fam1", &"f".repeat(44)),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        // Another family's name on a token changes its hash: it cannot be moved between families.
        let moved = t.replace("fam1", "fam2");
        assert_ne!(parse(&moved).map(|k| k.hash), Some(k.hash));
        Ok(())
    }
}
