//! The state store in PostgreSQL, for deployments whose users already live there and that do
//! not run Redis: the same tables as SQLite (shared migrations), rotation in a transaction with
//! the token row locked, revocations polled by every replica.
//!
//! Transactions need a connection of their own, so the store keeps one, separate from the
//! directory's, and serialises its work on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{
    Family, RefreshPolicy, Revocation, RevocationKind, RevocationSet, Rotation, Step, TokenState,
    rotation_step,
};
use crate::error::Error;
use crate::token::refresh::{self, RefreshKey};

/// How often revocations written elsewhere are read.
const POLL: Duration = Duration::from_secs(1);

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("postgres: {e}"))
}

#[derive(Clone)]
pub struct PgStore {
    url: Arc<String>,
    timeout: Duration,
    conn: Arc<Mutex<Option<Client>>>,
}

/// Run a block with `&mut Client` (connected on demand) under the store deadline; a broken
/// connection is dropped so the next call reconnects.
macro_rules! with_client {
    ($self:ident, $c:ident => $body:expr) => {{
        let mut guard = $self.conn.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some($self.connect().await?);
        }
        let $c = guard.as_mut().ok_or_else(|| unavailable("no connection"))?;
        let result: Result<_, Error> =
            match tokio::time::timeout($self.timeout, async { $body }).await {
                Ok(r) => r,
                Err(_) => Err(unavailable("timed out")),
            };
        if result.is_err() && guard.as_ref().is_some_and(|c| c.is_closed()) {
            *guard = None;
        }
        result
    }};
}

impl PgStore {
    pub fn new(url: &str, timeout: Duration) -> PgStore {
        PgStore {
            url: Arc::new(url.to_owned()),
            timeout,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    async fn connect(&self) -> Result<Client, Error> {
        let (client, connection) =
            tokio::time::timeout(self.timeout, tokio_postgres::connect(&self.url, NoTls))
                .await
                .map_err(|_| unavailable("connect timed out"))?
                .map_err(unavailable)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres store connection ended");
            }
        });
        // The store may be another database than the directory: make sure its tables exist.
        crate::directory::postgres::migrate(&client).await?;
        Ok(client)
    }

    pub async fn ping(&self) -> Result<(), Error> {
        with_client!(self, c => c.simple_query("SELECT 1").await.map(|_| ()).map_err(unavailable))
    }

    pub async fn create_family(
        &self,
        user_id: i64,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<(Family, String), Error> {
        let id = crate::token::random_id()?;
        let (token, key) = refresh::generate(&id)?;
        let family = Family {
            id,
            user_id,
            absolute_expires_at: now.saturating_add(policy.absolute),
        };
        let idle = now
            .saturating_add(policy.idle)
            .min(family.absolute_expires_at);
        with_client!(self, c => {
            let tx = c.transaction().await.map_err(unavailable)?;
            tx.execute(
                "INSERT INTO refresh_families (id, user_id, created_at, absolute_expires_at) VALUES ($1, $2, $3, $4)",
                &[&family.id, &user_id, &now, &family.absolute_expires_at],
            )
            .await
            .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at) VALUES ($1, $2, $3, $4)",
                &[&key.hash.as_slice(), &family.id, &now, &idle],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        })?;
        Ok((family, token))
    }

    pub async fn rotate(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Rotation, Error> {
        let (new_token, new_key) = refresh::generate(&key.family)?;
        with_client!(self, c => {
            let tx = c.transaction().await.map_err(unavailable)?;
            // The token and family rows stay locked until commit: a concurrent presentation
            // waits, then sees it rotated (grace) instead of rotating it twice, and two tokens
            // of one family are never rotated at once.
            let row = tx
                .query_opt(
                    "SELECT t.family_id, t.idle_expires_at, t.rotated_at, f.user_id, f.absolute_expires_at, f.revoked_at,
                            f.previous_hash IS NOT NULL AND f.previous_hash = t.hash
                     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
                     WHERE t.hash = $1 FOR UPDATE OF t, f",
                    &[&key.hash.as_slice()],
                )
                .await
                .map_err(unavailable)?;
            let Some(row) = row else { return Ok(Rotation::Invalid) };
            let get = |i: usize| row.try_get::<_, Option<i64>>(i).map_err(unavailable);
            let family_id: String = row.try_get(0).map_err(unavailable)?;
            let (idle, rotated, user_id, abs, revoked) = (get(1)?, get(2)?, get(3)?, get(4)?, get(5)?);
            let (Some(idle), Some(user_id), Some(abs)) = (idle, user_id, abs) else { return Ok(Rotation::Invalid) };
            let is_predecessor: bool = row.try_get(6).map_err(unavailable)?;
            let state = TokenState {
                family: Family { id: family_id, user_id, absolute_expires_at: abs },
                idle_expires_at: idle,
                rotated_at: rotated,
                revoked: revoked.is_some(),
                is_predecessor,
            };
            let family = match rotation_step(state, now, policy) {
                Step::Invalid => return Ok(Rotation::Invalid),
                Step::Grace(family) => return Ok(Rotation::Grace { family }),
                Step::Reuse(family) => {
                    tx.execute(
                        "UPDATE refresh_families SET revoked_at = $2, revoked_reason = 'refresh token reuse' WHERE id = $1 AND revoked_at IS NULL",
                        &[&family.id, &now],
                    )
                    .await
                    .map_err(unavailable)?;
                    tx.commit().await.map_err(unavailable)?;
                    return Ok(Rotation::Reused { family_id: family.id, user_id });
                }
                Step::Rotate(family) => family,
            };
            tx.execute("UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1", &[&key.hash.as_slice(), &now])
                .await
                .map_err(unavailable)?;
            tx.execute("UPDATE refresh_families SET previous_hash = $2 WHERE id = $1", &[&family.id, &key.hash.as_slice()])
                .await
                .map_err(unavailable)?;
            let new_idle = now.saturating_add(policy.idle).min(abs);
            tx.execute(
                "INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at) VALUES ($1, $2, $3, $4)",
                &[&new_key.hash.as_slice(), &family.id, &now, &new_idle],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Rotation::Rotated { family, token: new_token })
        })
    }

    pub async fn touch(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Option<Family>, Error> {
        with_client!(self, c => {
            let row = c
                .query_opt(
                    "SELECT f.id, f.user_id, f.absolute_expires_at, t.idle_expires_at FROM refresh_tokens t
                     JOIN refresh_families f ON f.id = t.family_id
                     WHERE t.hash = $1 AND t.rotated_at IS NULL AND f.revoked_at IS NULL
                       AND f.absolute_expires_at > $2 AND t.idle_expires_at > $2",
                    &[&key.hash.as_slice(), &now],
                )
                .await
                .map_err(unavailable)?;
            let Some(row) = row else { return Ok(None) };
            let family = Family {
                id: row.try_get(0).map_err(unavailable)?,
                user_id: row.try_get(1).map_err(unavailable)?,
                absolute_expires_at: row.try_get(2).map_err(unavailable)?,
            };
            let idle: i64 = row.try_get(3).map_err(unavailable)?;
            let extended = now.saturating_add(policy.idle).min(family.absolute_expires_at);
            if extended - idle > super::sqlite::TOUCH_EVERY {
                c.execute("UPDATE refresh_tokens SET idle_expires_at = $2 WHERE hash = $1", &[&key.hash.as_slice(), &extended])
                    .await
                    .map_err(unavailable)?;
            }
            Ok(Some(family))
        })
    }

    pub async fn family_of(&self, key: RefreshKey, now: i64) -> Result<Option<Family>, Error> {
        with_client!(self, c => {
            let row = c
                .query_opt(
                    "SELECT f.id, f.user_id, f.absolute_expires_at FROM refresh_tokens t
                     JOIN refresh_families f ON f.id = t.family_id
                     WHERE t.hash = $1 AND f.revoked_at IS NULL AND f.absolute_expires_at > $2",
                    &[&key.hash.as_slice(), &now],
                )
                .await
                .map_err(unavailable)?;
            match row {
                None => Ok(None),
                Some(r) => Ok(Some(Family {
                    id: r.try_get(0).map_err(unavailable)?,
                    user_id: r.try_get(1).map_err(unavailable)?,
                    absolute_expires_at: r.try_get(2).map_err(unavailable)?,
                })),
            }
        })
    }

    pub async fn revoke_family(
        &self,
        family_id: String,
        reason: &'static str,
        now: i64,
    ) -> Result<(), Error> {
        with_client!(self, c => {
            c.execute(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
                &[&family_id, &now, &reason],
            )
            .await
            .map(|_| ())
            .map_err(unavailable)
        })
    }

    pub async fn revoke_user(
        &self,
        user_id: i64,
        reason: &'static str,
        now: i64,
    ) -> Result<Vec<String>, Error> {
        with_client!(self, c => {
            let rows = c
                .query(
                    "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3
                     WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                    &[&user_id, &now, &reason],
                )
                .await
                .map_err(unavailable)?;
            rows.iter().map(|r| r.try_get(0).map_err(unavailable)).collect()
        })
    }

    pub async fn add_revocation(&self, r: Revocation) -> Result<(), Error> {
        with_client!(self, c => {
            c.execute(
                "INSERT INTO revocations (kind, value, created_at, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (kind, value) DO UPDATE SET created_at = excluded.created_at,
                 expires_at = GREATEST(revocations.expires_at, excluded.expires_at)",
                &[&r.kind.as_str(), &r.value, &r.created_at, &r.expires_at],
            )
            .await
            .map(|_| ())
            .map_err(unavailable)
        })
    }

    /// Revocations still in force made at or after `since` (seconds).
    async fn revocations_since(&self, since: i64, now: i64) -> Result<Vec<Revocation>, Error> {
        with_client!(self, c => {
            let rows = c
                .query(
                    "SELECT kind, value, created_at, expires_at FROM revocations WHERE created_at >= $1 AND expires_at > $2",
                    &[&since, &now],
                )
                .await
                .map_err(unavailable)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let kind: String = r.try_get(0).map_err(unavailable)?;
                if let Some(kind) = RevocationKind::parse(&kind) {
                    out.push(Revocation {
                        kind,
                        value: r.try_get(1).map_err(unavailable)?,
                        created_at: r.try_get(2).map_err(unavailable)?,
                        expires_at: r.try_get(3).map_err(unavailable)?,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Poll for revocations made anywhere (inserting is idempotent, so the overlap of a few
    /// seconds between polls only repeats work) and sweep what expired.
    pub async fn follow(self, set: Arc<RevocationSet>) {
        let mut since = 0;
        let mut ticks: u64 = 0;
        loop {
            let now = crate::clock::now();
            match self.revocations_since(since, now).await {
                Ok(entries) => {
                    for r in entries {
                        set.insert(r);
                    }
                    since = now.saturating_sub(5);
                }
                Err(e) => tracing::warn!(error = %e, "could not load revocations"),
            }
            if ticks % 600 == 0 {
                set.purge(now);
                if let Err(e) = self.sweep(now).await {
                    tracing::warn!(error = %e, "could not purge expired state");
                }
            }
            ticks = ticks.wrapping_add(1);
            tokio::time::sleep(POLL).await;
        }
    }

    /// Delete what can no longer matter.
    async fn sweep(&self, now: i64) -> Result<(), Error> {
        with_client!(self, c => {
            for table in ["DELETE FROM revocations WHERE expires_at <= $1", "DELETE FROM refresh_families WHERE absolute_expires_at <= $1", "DELETE FROM login_attempts WHERE expires_at <= $1"] {
                c.execute(table, &[&now]).await.map_err(unavailable)?;
            }
            Ok(())
        })
    }

    pub async fn attempts(&self, keys: Vec<String>, now: i64) -> Result<Vec<(i64, i64)>, Error> {
        with_client!(self, c => {
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                let row = c
                    .query_opt("SELECT failures, last_at FROM login_attempts WHERE key = $1 AND expires_at > $2", &[k, &now])
                    .await
                    .map_err(unavailable)?;
                out.push(match row {
                    Some(r) => (r.try_get(0).map_err(unavailable)?, r.try_get(1).map_err(unavailable)?),
                    None => (0, 0),
                });
            }
            Ok(out)
        })
    }

    pub async fn record_failure(
        &self,
        keys: Vec<String>,
        at_ms: i64,
        window: i64,
    ) -> Result<(), Error> {
        let now = at_ms / 1000;
        let expires = now.saturating_add(window);
        with_client!(self, c => {
            for k in &keys {
                c.execute(
                    "INSERT INTO login_attempts (key, failures, last_at, expires_at) VALUES ($1, 1, $2, $3)
                     ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN login_attempts.expires_at > $4 THEN login_attempts.failures + 1 ELSE 1 END,
                       last_at = $2, expires_at = $3",
                    &[k, &at_ms, &expires, &now],
                )
                .await
                .map_err(unavailable)?;
            }
            Ok(())
        })
    }

    pub async fn reset_attempts(&self, keys: Vec<String>) -> Result<(), Error> {
        with_client!(self, c => {
            c.execute("DELETE FROM login_attempts WHERE key = ANY($1)", &[&keys])
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }
}
