//! Password policy and argon2id hashing, run on the hasher's own threads, a bounded number at
//! a time and (by default) at the lowest nice value, so a login storm can neither starve the
//! proxy of executor threads or memory nor keep proxied requests from a core.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::HashPriority;
use crate::error::Error;

/// OWASP Password Storage Cheat Sheet minimum for argon2id: m = 19 MiB, t = 2, p = 1.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

/// Shortest accepted password, in characters (ASVS 6.2.1).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in characters: far above ASVS's 64, never truncated, and bounded
/// so that hashing cost stays predictable.
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordPolicyError {
    #[error("password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("password must be at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
}

/// Length rules only: no composition rules (ASVS 6.2.5), characters counted as Unicode scalar
/// values so multi-byte passwords are not penalised.
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort);
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooLong);
    }
    Ok(())
}

fn argon2() -> Result<Argon2<'static>, Error> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn salt() -> Result<SaltString, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Internal(format!("rng: {e}")))?;
    SaltString::encode_b64(&bytes).map_err(|e| Error::Internal(format!("salt: {e}")))
}

/// Working memory of one hash, in 1 KiB blocks: always more than glibc's largest mmap threshold
/// (32 MiB), so it is mapped for the hash and unmapped right after. With argon2's own 19 MiB
/// allocation glibc raises its mmap threshold after the first hash, every later one lands in the
/// heap, and the process keeps 20 MB it no longer uses; this keeps idle memory at its size
/// before the first login. Pages past the 19 MiB argon2 touches are zeroed once and freed.
const WORK_BLOCKS: usize = 33 * 1024;

fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let mut memory = vec![Block::new(); argon.params().block_count().max(WORK_BLOCKS)];
    argon
        .hash_password_into_with_memory(password, salt, out, &mut memory)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

fn decode_salt<'a>(salt: Salt<'_>, buf: &'a mut [u8; 64]) -> Result<&'a [u8], Error> {
    salt.decode_b64(buf)
        .map_err(|e| Error::Internal(format!("salt: {e}")))
}

/// Hash synchronously (CLI use, and on the blocking pool): a PHC string
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
pub fn hash_blocking(password: &str) -> Result<String, Error> {
    let salt = salt()?;
    let argon = argon2()?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = decode_salt(salt.as_salt(), &mut salt_buf)?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    compute(&argon, password.as_bytes(), salt_bytes, out.as_mut_slice())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon
            .params()
            .try_into()
            .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(out.as_slice()).map_err(|e| Error::Internal(format!("hash: {e}")))?),
    };
    Ok(phc.to_string())
}

/// Verify synchronously, in constant time. A malformed stored hash counts as a mismatch (and
/// is logged).
pub fn verify_blocking(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::error!("stored password hash is malformed");
        return false;
    };
    // Verify with the parameters recorded in the hash, but never with a weaker algorithm.
    if parsed.algorithm.as_str() != "argon2id" {
        tracing::error!("stored password hash is not argon2id");
        return false;
    }
    let checked = (|| -> Result<bool, Error> {
        let params = Params::try_from(&parsed).map_err(|e| Error::Internal(e.to_string()))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| Error::Internal(e.to_string()))?,
            None => Version::default(),
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(Error::Internal("no salt or hash".to_owned()));
        };
        let mut salt_buf = [0u8; 64];
        let salt_bytes = decode_salt(salt, &mut salt_buf)?;
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let argon = Argon2::new(Algorithm::Argon2id, version, params);
        compute(&argon, password.as_bytes(), salt_bytes, &mut out)?;
        Ok(out.as_slice().ct_eq(expected.as_bytes()).into())
    })();
    checked.unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored password hash cannot be checked");
        false
    })
}

/// The nice value of hashing threads at [`HashPriority::Low`].
const LOW_NICE: i32 = 19;

type HashJob = Box<dyn FnOnce() + Send>;

/// Runs argon2id on `concurrency` threads of its own, at the configured CPU priority, one job
/// per thread at a time. Holds a hash of a random password so that a login for an unknown user
/// costs the same as a real one.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<HashJob>,
    dummy_hash: Arc<String>,
}

/// Put the calling thread at `priority`; a refusal is logged and the thread goes on as it is.
fn lower_own_priority(priority: HashPriority) {
    let lowered = match priority {
        HashPriority::Normal => return,
        HashPriority::Low => {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), LOW_NICE)
                .map_err(|e| e.to_string())
        }
        HashPriority::Idle => thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            thread_priority::ThreadPriority::Min,
            thread_priority::ThreadSchedulePolicy::Normal(
                thread_priority::NormalThreadSchedulePolicy::Idle,
            ),
        )
        .map_err(|e| format!("{e:?}")),
    };
    if let Err(e) = lowered {
        tracing::warn!(error = %e, ?priority, "password hashing runs at normal priority");
    }
}

/// One hashing thread: lowers its own priority, then runs jobs until every `Hasher` is gone.
fn hashing_thread(jobs: Arc<Mutex<mpsc::Receiver<HashJob>>>, priority: HashPriority) {
    lower_own_priority(priority);
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

impl Hasher {
    pub fn new(concurrency: usize, priority: HashPriority) -> Result<Hasher, Error> {
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| Error::Internal(format!("rng: {e}")))?;
        let dummy = hash_blocking(&crate::token::b64(&random))?;
        let concurrency = concurrency.max(1);
        let (jobs, queue) = mpsc::channel::<HashJob>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("dashgate-hash-{n}"))
                .spawn(move || hashing_thread(queue, priority))
                .map_err(|e| Error::Internal(format!("hashing thread: {e}")))?;
        }
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
            dummy_hash: Arc::new(dummy),
        })
    }

    /// Run `work` on a hashing thread once a permit is free. Waiting for the permit is where a
    /// storm queues; a caller that gives up while waiting costs nothing.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("hasher closed".to_owned()))?;
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| Error::Internal("hashing threads are gone".to_owned()))?;
        answer
            .await
            .map_err(|_| Error::Internal("hash job lost".to_owned()))
    }

    /// Hash a new password (on the same bounded threads as verification).
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, Error> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Verify `password` against `stored`, or against the dummy hash when there is no user,
    /// so both paths take the same time. Returns false for the dummy path.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool, Error> {
        let real = stored.is_some();
        let hash = stored.unwrap_or_else(|| (*self.dummy_hash).clone());
        let ok = self.run(move || verify_blocking(&password, &hash)).await?;
        Ok(real && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(check_policy("ééééééé"), Err(PasswordPolicyError::TooShort));
        assert!(check_policy("éééééééé").is_ok());
        assert!(check_policy(&"x".repeat(64)).is_ok());
        assert!(check_policy(&"x".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert_eq!(
            check_policy(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Err(PasswordPolicyError::TooLong)
        );
    }

    #[test]
    fn hash_uses_argon2id_with_owasp_parameters_and_no_truncation() -> Result<(), Error> {
        let long = "p".repeat(100);
        let h = hash_blocking(&long)?;
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(&long, &h));
        // A password that differs only after character 72 (bcrypt's cut-off) must fail.
        let mut other = long.clone();
        other.push('q');
        assert!(!verify_blocking(&other, &h));
        assert!(!verify_blocking("wrong", &h));
        assert!(!verify_blocking(&long, "not a hash"));
        Ok(())
    }

    #[test]
    fn hashes_interoperate_with_the_argon2_crate() -> Result<(), Error> {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Hashes stored before the own-memory path (made by the crate) still verify, and ours
        // verify with the crate.
        let theirs = argon2()?
            .hash_password(b"correct horse battery", &salt()?)
            .map_err(|e| Error::Internal(e.to_string()))?
            .to_string();
        assert!(verify_blocking("correct horse battery", &theirs));
        assert!(!verify_blocking("correct horse batterz", &theirs));
        let ours = hash_blocking("correct horse battery")?;
        let parsed = PasswordHash::new(&ours).map_err(|e| Error::Internal(e.to_string()))?;
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        Ok(())
    }

    #[tokio::test]
    async fn hashing_runs_at_the_configured_priority_and_answers() -> Result<(), Error> {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let nice = || rustix::process::getpriority_process(Some(rustix::thread::gettid()));
        let policy = || thread_priority::thread_schedule_policy().ok();
        let idle = Hasher::new(1, HashPriority::Idle)?;
        assert_eq!(
            idle.run(policy).await?,
            Some(ThreadSchedulePolicy::Normal(
                NormalThreadSchedulePolicy::Idle
            ))
        );
        let low = Hasher::new(1, HashPriority::Low)?;
        assert_eq!(low.run(nice).await?.ok(), Some(LOW_NICE));
        assert_eq!(
            low.run(policy).await?,
            Some(ThreadSchedulePolicy::Normal(
                NormalThreadSchedulePolicy::Other
            ))
        );
        let normal = Hasher::new(1, HashPriority::Normal)?;
        assert_eq!(normal.run(nice).await?.ok(), nice().ok());

        let stored = idle
            .hash(Zeroizing::new("correct horse battery".to_owned()))
            .await?;
        let right = Zeroizing::new("correct horse battery".to_owned());
        let wrong = Zeroizing::new("incorrect horse battery".to_owned());
        assert!(idle.verify(right.clone(), Some(stored.clone())).await?);
        assert!(!idle.verify(wrong, Some(stored)).await?);
        assert!(!idle.verify(right, None).await?, "no user: never true");
        Ok(())
    }
}
