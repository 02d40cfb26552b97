//! The gateway's key material, kept in a key directory (one file per key, mode 0600, the way a
//! Kubernetes Secret is mounted):
//! - `signing-<kid>.json`: an Ed25519 signing key; the newest signs, all verify, all are
//!   published in the JWKS;
//! - `csrf.key`: the HMAC key of the signed double-submit CSRF tokens.
//!
//! Missing keys are generated on first start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;

/// The only JWS algorithm dashgate signs or accepts (RFC 8725 3.1: one key, one algorithm).
pub const ALG: &str = "EdDSA";

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    created: i64,
    /// Base64url of the 32-byte Ed25519 seed.
    seed: String,
}

/// Signing and verification keys plus the CSRF key.
pub struct KeySet {
    active_kid: String,
    active: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
    csrf: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("active_kid", &self.active_kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("key directory {}: {e}", path.display()))
}

impl KeySet {
    /// Load every key in `dir`, generating the directory, a signing key and the CSRF key if
    /// they do not exist yet.
    pub fn load_or_create(dir: &Path) -> Result<KeySet, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        restrict(dir, 0o700);
        let mut files = read_signing_keys(dir)?;
        if files.is_empty() {
            files.push(write_new_signing_key(dir)?);
        }
        let csrf = load_or_create_secret(&dir.join("csrf.key"))?;
        Self::from_files(files, csrf)
    }

    fn from_files(mut files: Vec<KeyFile>, csrf: Zeroizing<[u8; 32]>) -> Result<KeySet, Error> {
        files.sort_by(|a, b| (a.created, &a.kid).cmp(&(b.created, &b.kid)));
        let mut verifying = HashMap::new();
        let mut newest = None;
        for f in files {
            let seed = Zeroizing::new(
                super::unb64(&f.seed)
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| {
                        Error::Internal(format!("signing key {} is malformed", f.kid))
                    })?,
            );
            let sk = SigningKey::from_bytes(&seed);
            verifying.insert(f.kid.clone(), sk.verifying_key());
            newest = Some((f.kid, sk));
        }
        let (active_kid, active) =
            newest.ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        Ok(KeySet {
            active_kid,
            active,
            verifying,
            csrf,
        })
    }

    /// Add a new signing key with a fresh `kid`; it becomes the active one. Old keys stay.
    pub fn rotate(dir: &Path) -> Result<String, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        Ok(write_new_signing_key(dir)?.kid)
    }

    pub fn active(&self) -> (&str, &SigningKey) {
        (&self.active_kid, &self.active)
    }

    /// The verification key for a `kid`, if we have one.
    pub fn verifying(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    pub fn csrf_key(&self) -> &[u8; 32] {
        &self.csrf
    }

    /// The JSON Web Key Set (RFC 7517, OKP keys per RFC 8037).
    pub fn jwks(&self) -> serde_json::Value {
        let mut kids: Vec<&String> = self.verifying.keys().collect();
        kids.sort();
        let keys: Vec<serde_json::Value> = kids
            .into_iter()
            .filter_map(|kid| {
                let vk = self.verifying.get(kid)?;
                Some(serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "use": "sig",
                    "alg": ALG,
                    "kid": kid,
                    "x": super::b64(vk.as_bytes()),
                }))
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn read_signing_keys(dir: &Path) -> Result<Vec<KeyFile>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("signing-") && name.ends_with(".json")) {
            continue;
        }
        let path = entry.path();
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?);
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("signing key {}: {e}", path.display())))?;
        out.push(file);
    }
    Ok(out)
}

fn write_new_signing_key(dir: &Path) -> Result<KeyFile, Error> {
    let seed = Zeroizing::new(super::random_bytes::<32>()?);
    let vk = SigningKey::from_bytes(&seed).verifying_key();
    // kid: a short thumbprint of the public key; unique, opaque, and safe in any header.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(vk.as_bytes());
    let kid = super::b64(&digest[..12]);
    let file = KeyFile {
        kid: kid.clone(),
        created: crate::clock::now(),
        seed: super::b64(seed.as_ref()),
    };
    let text = Zeroizing::new(
        serde_json::to_string(&file).map_err(|e| Error::Internal(format!("key json: {e}")))?,
    );
    write_secret(&dir.join(format!("signing-{kid}.json")), text.as_bytes())?;
    tracing::info!(kid = %kid, "generated a new signing key");
    Ok(file)
}

fn load_or_create_secret(path: &PathBuf) -> Result<Zeroizing<[u8; 32]>, Error> {
    if path.exists() {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io_err(path, e))?);
        let bytes = super::unb64(text.trim())
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| Error::Internal(format!("{} is malformed", path.display())))?;
        return Ok(Zeroizing::new(bytes));
    }
    let secret = Zeroizing::new(super::random_bytes::<32>()?);
    write_secret(path, super::b64(secret.as_ref()).as_bytes())?;
    Ok(secret)
}

/// Write a new secret file that only the owner can read; never overwrite an existing one.
fn write_secret(path: &Path, data: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(data).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict permissions");
    }
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_rotate() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let a = KeySet::load_or_create(dir.path())?;
        let b = KeySet::load_or_create(dir.path())?;
        assert_eq!(a.active().0, b.active().0);
        assert_eq!(a.csrf_key(), b.csrf_key());
        let new_kid = KeySet::rotate(dir.path())?;
        let c = KeySet::load_or_create(dir.path())?;
        assert_eq!(c.jwks()["keys"].as_array().map(Vec::len), Some(2));
        assert!(c.verifying(a.active().0).is_some());
        // Same-second creation ties break by kid; either way both keys verify.
        assert!(c.verifying(&new_kid).is_some());
        Ok(())
    }
}
