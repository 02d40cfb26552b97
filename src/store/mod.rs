//! Session state: refresh-token families (rotation, reuse detection, idle and absolute
//! lifetimes) and revocations — in the embedded database on one node, in Redis for many
//! replicas — plus the in-memory revocation set that the hot path consults without any I/O.

pub mod postgres;
pub mod redis;
pub mod revocation;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::error::Error;
use crate::token::refresh::RefreshKey;

pub use self::postgres::PgStore;
pub use self::redis::RedisStore;
pub use revocation::{Revocation, RevocationKind, RevocationSet};
pub use sqlite::SqliteStore;

/// A refresh family: one login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub id: String,
    pub user_id: i64,
    pub absolute_expires_at: i64,
}

/// Lifetimes applied to refresh tokens, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub idle: i64,
    pub absolute: i64,
    pub grace: i64,
}

/// The result of presenting a refresh token.
#[derive(Debug)]
pub enum Rotation {
    /// The token was current: it is now spent and `token` replaces it.
    Rotated { family: Family, token: String },
    /// The token was rotated moments ago by a concurrent request of the same client, and is the
    /// direct predecessor of a current token nobody has used yet: the session continues (a new
    /// access token may be issued) but no new refresh token is given.
    Grace { family: Family },
    /// The token had already been rotated before the grace window, or is older than the
    /// current token's predecessor, or its successor has been used: someone replays it, so the
    /// whole family has just been revoked.
    Reused { family_id: String, user_id: i64 },
    /// Unknown, expired or revoked.
    Invalid,
}

/// A presented token as the SQL stores find it.
pub(crate) struct TokenState {
    pub family: Family,
    pub idle_expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked: bool,
    /// Is this token the one the family's current token replaced? Only that one may be
    /// presented again within the grace window (RFC 9700 4.14.2); once the current token is
    /// rotated in turn, it is not the predecessor any more.
    pub is_predecessor: bool,
}

/// What to do with a presented refresh token.
pub(crate) enum Step {
    Invalid,
    /// Rotated moments ago by a concurrent request, and its successor is still unused: accept,
    /// issue no new refresh token.
    Grace(Family),
    /// Rotated before the grace window, or two generations back: a replay; revoke the family.
    Reuse(Family),
    /// Current: spend it and issue its successor.
    Rotate(Family),
}

/// The rotation rules, in one place for the SQL stores (the Redis script mirrors them in Lua).
pub(crate) fn rotation_step(t: TokenState, now: i64, policy: RefreshPolicy) -> Step {
    if t.revoked || t.family.absolute_expires_at <= now {
        return Step::Invalid;
    }
    match t.rotated_at {
        Some(rotated) if t.is_predecessor && now.saturating_sub(rotated) <= policy.grace => {
            Step::Grace(t.family)
        }
        Some(_) => Step::Reuse(t.family),
        None if t.idle_expires_at <= now => Step::Invalid,
        None => Step::Rotate(t.family),
    }
}

/// The state store in use: a real seam with two implementations.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    /// Boxed: the Redis client is large and the enum is cloned into tasks.
    Redis(Box<RedisStore>),
    Postgres(PgStore),
}

impl Store {
    /// `url`: `redis://…`/`rediss://…`, or `None` for the embedded database `db`.
    /// The store `config` asks for: `store` if set, otherwise the user database (SQLite or
    /// PostgreSQL; `db` is the SQLite handle when that is the database).
    pub fn for_config(config: &crate::config::Config, db: Option<&Db>) -> Result<Store, Error> {
        let timeout = config.limits.store_timeout;
        let ca = match &config.store_ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| Error::Internal(format!("store_ca_file {}: {e}", p.display())))?,
            ),
            None => None,
        };
        match (config.store.as_deref(), db, ca) {
            (Some(url), _, Some(ca)) if url.starts_with("rediss://") => Ok(Store::Redis(Box::new(
                RedisStore::open_tls(url, ca, timeout)?,
            ))),
            (Some(url), _, _) => Self::open_url(url, timeout),
            (None, Some(db), _) => Ok(Store::Sqlite(SqliteStore::new(db.clone()))),
            (None, None, _) => Self::open_url(&config.database, timeout),
        }
    }

    fn open_url(url: &str, timeout: Duration) -> Result<Store, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Store::Postgres(PgStore::new(url, timeout)));
        }
        if [
            "redis://",
            "rediss://",
            "redis+sentinel://",
            "redis+cluster://",
        ]
        .iter()
        .any(|p| url.starts_with(p))
        {
            return Ok(Store::Redis(Box::new(RedisStore::open(url, timeout)?)));
        }
        // Config validation only lets redis URLs through; never echo a URL (it may hold a password).
        Err(Error::Internal(
            "unsupported store URL (expected redis:// or rediss://)".to_owned(),
        ))
    }

    pub async fn create_family(
        &self,
        user_id: i64,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<(Family, String), Error> {
        match self {
            Store::Sqlite(s) => s.create_family(user_id, now, policy).await,
            Store::Redis(r) => r.create_family(user_id, now, policy).await,
            Store::Postgres(p) => p.create_family(user_id, now, policy).await,
        }
    }

    pub async fn rotate(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Rotation, Error> {
        match self {
            Store::Sqlite(s) => s.rotate(key, now, policy).await,
            Store::Redis(r) => r.rotate(key, now, policy).await,
            Store::Postgres(p) => p.rotate(key, now, policy).await,
        }
    }

    /// Look up (and keep alive) a server-mode session.
    pub async fn touch(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Option<Family>, Error> {
        match self {
            Store::Sqlite(s) => s.touch(key, now, policy).await,
            Store::Redis(r) => r.touch(key, now, policy).await,
            Store::Postgres(p) => p.touch(key, now, policy).await,
        }
    }

    pub async fn family_of(&self, key: RefreshKey, now: i64) -> Result<Option<Family>, Error> {
        match self {
            Store::Sqlite(s) => s.family_of(key, now).await,
            Store::Redis(r) => r.family_of(key, now).await,
            Store::Postgres(p) => p.family_of(key, now).await,
        }
    }

    pub async fn revoke_family(
        &self,
        family_id: String,
        reason: &'static str,
        now: i64,
    ) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.revoke_family(family_id, reason, now).await,
            Store::Redis(r) => r.revoke_family(family_id).await,
            Store::Postgres(p) => p.revoke_family(family_id, reason, now).await,
        }
    }

    /// Revoke every live family of a user; returns their ids.
    pub async fn revoke_user(
        &self,
        user_id: i64,
        reason: &'static str,
        now: i64,
    ) -> Result<Vec<String>, Error> {
        match self {
            Store::Sqlite(s) => s.revoke_user(user_id, reason, now).await,
            Store::Redis(r) => r.revoke_user(user_id).await,
            Store::Postgres(p) => p.revoke_user(user_id, reason, now).await,
        }
    }

    /// End every session of a user: revoke their refresh families, and revoke their access
    /// tokens with one revocation per session plus a user-wide one (tokens issued before this
    /// second) for any family created meanwhile. Returns the revocations made.
    pub async fn end_user_sessions(
        &self,
        user_id: i64,
        username: &str,
        reason: &'static str,
        now: i64,
        expires_at: i64,
    ) -> Result<Vec<Revocation>, Error> {
        let families = self.revoke_user(user_id, reason, now).await?;
        let mut made: Vec<Revocation> = families
            .into_iter()
            .map(|sid| Revocation {
                kind: RevocationKind::Session,
                value: sid,
                created_at: now,
                expires_at,
            })
            .collect();
        made.push(Revocation {
            kind: RevocationKind::User,
            value: username.to_owned(),
            created_at: now - 1,
            expires_at,
        });
        for r in &made {
            self.add_revocation(r.clone()).await?;
        }
        Ok(made)
    }

    /// Persist (and, with Redis, publish) a revocation.
    pub async fn add_revocation(&self, r: Revocation) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.add_revocation(r).await,
            Store::Redis(x) => x.add_revocation(r).await,
            Store::Postgres(p) => p.add_revocation(r).await,
        }
    }

    /// Failed-login counters per key: (failures, time of the last failure).
    pub async fn attempts(&self, keys: Vec<String>, now: i64) -> Result<Vec<(i64, i64)>, Error> {
        match self {
            Store::Sqlite(s) => s.attempts(keys, now).await,
            Store::Redis(r) => r.attempts(keys).await,
            Store::Postgres(p) => p.attempts(keys, now).await,
        }
    }

    pub async fn record_failure(
        &self,
        keys: Vec<String>,
        at_ms: i64,
        window: i64,
    ) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.record_failure(keys, at_ms, window).await,
            Store::Redis(r) => r.record_failure(keys, at_ms, window).await,
            Store::Postgres(p) => p.record_failure(keys, at_ms, window).await,
        }
    }

    pub async fn reset_attempts(&self, keys: Vec<String>) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.reset_attempts(keys).await,
            Store::Redis(r) => r.reset_attempts(keys).await,
            Store::Postgres(p) => p.reset_attempts(keys).await,
        }
    }

    /// Is the store answering? (`/auth/readyz`)
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Redis(r) => r.ping().await,
            Store::Postgres(p) => p.ping().await,
        }
    }

    /// Keep `set` current with revocations made anywhere (other replicas, the CLI) until the
    /// process ends.
    pub async fn follow_revocations(self, set: Arc<RevocationSet>) {
        match self {
            Store::Sqlite(s) => s.follow(set).await,
            Store::Redis(r) => r.follow(set).await,
            Store::Postgres(p) => p.follow(set).await,
        }
    }
}
