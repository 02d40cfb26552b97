//! Opaque refresh tokens: 256 random bits, shown to the client once, stored only as a SHA-256
//! hash (a fast hash is right here: the input has full entropy, so there is nothing to brute
//! force, and lookups stay cheap).

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Prefix that marks a dashgate refresh token (helps secret scanners; never a JWT).
pub const PREFIX: &str = "dgr_";

/// Longest string we even try to hash as a refresh token.
pub const MAX_LEN: usize = 128;

/// A new refresh token and its storage hash.
pub fn generate() -> Result<(String, [u8; 32]), Error> {
    let token = format!("{PREFIX}{}", super::b64(&super::random_bytes::<32>()?));
    let hash = hash(&token);
    Ok((token, hash))
}

/// The storage hash of a presented token; `None` for anything that is not shaped like one of
/// ours, so garbage never reaches the store.
pub fn parse(presented: &str) -> Option<[u8; 32]> {
    let body = presented.strip_prefix(PREFIX)?;
    if presented.len() > MAX_LEN || super::unb64(body).is_none_or(|b| b.len() != 32) {
        return None;
    }
    Some(hash(presented))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_garbage_does_not() -> Result<(), Error> {
        let (t, h) = generate()?;
        assert_eq!(parse(&t), Some(h));
        assert!(t.len() >= PREFIX.len() + 43);
        let (t2, _) = generate()?;
        assert_ne!(t, t2);
        for bad in [
            "",
            "dgr_",
            "dgr_abc",
            "eyJ.eyJ.sig",
            &format!("{t}x"),
            &t[1..],
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        Ok(())
    }
}
