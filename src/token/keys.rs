//! The gateway's key material, kept in a key directory (one file per key, mode 0600, the way a
//! Kubernetes Secret is mounted):
//! - `signing-<kid>.json`: an Ed25519 signing key; the newest signs, all verify, all are
//!   published in the JWKS;
//! - `csrf.key`: the HMAC key of the signed double-submit CSRF tokens.
//!
//! Missing keys are generated on first start. Running gateways re-read the directory every
//! second ([`KeyRing`]): a key added by `dashgate keys rotate` verifies at once on every replica
//! that shares the directory, and starts signing only after `keys.activation_delay`, by when every
//! replica knows it. A key that has been superseded for longer than any token it signed can live
//! is retired: it no longer verifies and leaves the JWKS.

use std::sync::{Arc, RwLock};

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
    /// Creation time in nanoseconds: orders keys made within the same second.
    #[serde(default)]
    created_ns: i64,
    /// Base64url of the 32-byte Ed25519 seed.
    seed: String,
}

/// When keys start signing and stop verifying, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct KeyTiming {
    /// A new key signs only this long after it was created.
    pub activation_delay: i64,
    /// A superseded key keeps verifying this long after its successor started signing.
    pub retire_after: i64,
}

impl Default for KeyTiming {
    /// Immediate activation, never retired: for the CLI and tests.
    fn default() -> Self {
        KeyTiming {
            activation_delay: 0,
            retire_after: i64::MAX,
        }
    }
}

/// Signing and verification keys plus the CSRF key.
pub struct KeySet {
    /// Distinct for every key set built in this process: caches of verified tokens are valid
    /// only for the key set that verified them.
    generation: u64,
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
        Self::load_timed(dir, KeyTiming::default(), crate::clock::now())
    }

    /// Like [`KeySet::load_or_create`], choosing the signing key and the live keys by `timing`.
    pub fn load_timed(dir: &Path, timing: KeyTiming, now: i64) -> Result<KeySet, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        restrict(dir, 0o700);
        let mut files = read_signing_keys(dir)?;
        if files.is_empty() {
            files.push(write_new_signing_key(dir)?);
        }
        let csrf = load_or_create_secret(&dir.join("csrf.key"))?;
        Self::from_files(files, csrf, timing, now)
    }

    fn from_files(
        mut files: Vec<KeyFile>,
        csrf: Zeroizing<[u8; 32]>,
        timing: KeyTiming,
        now: i64,
    ) -> Result<KeySet, Error> {
        files.sort_by(|a, b| {
            (a.created, a.created_ns, &a.kid).cmp(&(b.created, b.created_ns, &b.kid))
        });
        let activation = |f: &KeyFile| f.created.saturating_add(timing.activation_delay);
        // The signing key: the newest one whose activation time has come; when none has (a
        // fresh directory), the oldest, which every replica has had the longest.
        let active_index = files
            .iter()
            .rposition(|f| activation(f) <= now)
            .unwrap_or(0);
        // Retired: older than the signing key, and superseded for longer than `retire_after`.
        let live: Vec<bool> = (0..files.len())
            .map(|i| {
                i >= active_index
                    || files.get(i + 1).is_none_or(|next| {
                        activation(next).saturating_add(timing.retire_after) > now
                    })
            })
            .collect();
        let active_kid = files
            .get(active_index)
            .map(|f| f.kid.clone())
            .ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        let mut verifying = HashMap::new();
        let mut newest = None;
        for (f, live) in files.into_iter().zip(live) {
            if !live {
                continue;
            }
            let seed = Zeroizing::new(
                super::unb64(&f.seed)
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .ok_or_else(|| {
                        Error::Internal(format!("signing key {} is malformed", f.kid))
                    })?,
            );
            let sk = SigningKey::from_bytes(&seed);
            verifying.insert(f.kid.clone(), sk.verifying_key());
            if f.kid == active_kid {
                newest = Some(sk);
            }
        }
        let active = newest.ok_or_else(|| Error::Internal("no signing key".to_owned()))?;
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(KeySet {
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            active_kid,
            active,
            verifying,
            csrf,
        })
    }

    /// Add a new signing key with a fresh `kid`; it signs after the activation delay. Old keys
    /// stay until they retire.
    pub fn rotate(dir: &Path) -> Result<String, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        Ok(write_new_signing_key(dir)?.kid)
    }

    /// Which key set this is (see the field).
    pub fn generation(&self) -> u64 {
        self.generation
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

    /// `kid`s that verify, sorted, and the signing `kid`: what a reload compares.
    fn fingerprint(&self) -> (String, Vec<String>) {
        let mut kids: Vec<String> = self.verifying.keys().cloned().collect();
        kids.sort();
        (self.active_kid.clone(), kids)
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

/// The live key set of a running gateway, re-read from the key directory.
pub struct KeyRing {
    dir: PathBuf,
    timing: KeyTiming,
    current: RwLock<Arc<KeySet>>,
    csrf: Zeroizing<[u8; 32]>,
}

impl KeyRing {
    pub fn open(dir: &Path, timing: KeyTiming, now: i64) -> Result<KeyRing, Error> {
        let set = KeySet::load_timed(dir, timing, now)?;
        Ok(KeyRing {
            dir: dir.to_path_buf(),
            timing,
            csrf: Zeroizing::new(*set.csrf_key()),
            current: RwLock::new(Arc::new(set)),
        })
    }

    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn csrf_key(&self) -> &[u8; 32] {
        &self.csrf
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks()
    }

    /// Re-read the directory; returns the new signing `kid` and live `kid`s when they changed.
    pub fn reload(&self, now: i64) -> Result<Option<(String, Vec<String>)>, Error> {
        let files = read_signing_keys(&self.dir)?;
        if files.is_empty() {
            return Err(Error::Internal(format!(
                "key directory {} has no signing key",
                self.dir.display()
            )));
        }
        let set = KeySet::from_files(files, Zeroizing::new(*self.csrf), self.timing, now)?;
        let fresh = set.fingerprint();
        if fresh == self.current().fingerprint() {
            return Ok(None);
        }
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(set);
        }
        Ok(Some(fresh))
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
        created_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
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
    match write_secret(path, super::b64(secret.as_ref()).as_bytes()) {
        Ok(()) => Ok(secret),
        // Another replica sharing the directory wrote it first: use theirs.
        Err(_) if path.exists() => load_or_create_secret(path),
        Err(e) => Err(e),
    }
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
    fn activation_delay_and_retirement() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
        let timing = KeyTiming {
            activation_delay: 30,
            retire_after: 1000,
        };
        let now = crate::clock::now();
        let ring = KeyRing::open(dir.path(), timing, now)?;
        let first = ring.current().active().0.to_owned();
        let second = KeySet::rotate(dir.path())?;
        // Known (verifies) at once, signs only after the delay.
        let (active, kids) = ring
            .reload(now)?
            .ok_or(Error::Internal("no change seen".into()))?;
        assert_eq!(active, first);
        assert!(kids.contains(&second) && kids.contains(&first));
        assert!(ring.reload(now)?.is_none(), "nothing new");
        let (active, _) = ring
            .reload(now + 31)?
            .ok_or(Error::Internal("no switch".into()))?;
        assert_eq!(active, second);
        // The old key verifies until its successor has signed for `retire_after`.
        assert!(ring.current().verifying(&first).is_some());
        let (_, kids) = ring
            .reload(now + 31 + 1000)?
            .ok_or(Error::Internal("no retirement".into()))?;
        assert_eq!(kids, vec![second.clone()]);
        assert!(ring.current().verifying(&first).is_none());
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(1));
        Ok(())
    }

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
