//! The embedded state store: refresh families and revocations in the SQLite database.

use rusqlite::{OptionalExtension, params};

use super::{
    Family, RefreshPolicy, Revocation, RevocationKind, Rotation, Step, TokenState, rotation_step,
};
use crate::db::Db;
use crate::error::Error;
use crate::token::refresh::{self, RefreshKey};

/// A server-mode session's idle expiry is pushed forward only when it would move by more than
/// this many seconds (so a busy session does not write on every request).
pub const TOUCH_EVERY: i64 = 60;

/// How often the revocations table is polled for entries written by other processes.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Revocations read from the database at a time.
const REVOCATION_BATCH: i64 = 10_000;

/// Refresh families and persisted revocations in SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub fn new(db: Db) -> SqliteStore {
        SqliteStore { db }
    }

    /// Start a new session for `user_id`; returns the family and its first refresh token.
    pub async fn create_family(
        &self,
        user_id: i64,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<(Family, String), Error> {
        let id = crate::token::random_id()?;
        let (token, key) = refresh::generate(&id)?;
        let hash = key.hash;
        let family = Family {
            id,
            user_id,
            absolute_expires_at: now.saturating_add(policy.absolute),
        };
        let f = family.clone();
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                tx.execute(
                    "INSERT INTO refresh_families (id, user_id, created_at, absolute_expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![f.id, f.user_id, now, f.absolute_expires_at],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![hash.as_slice(), f.id, now, now.saturating_add(policy.idle).min(f.absolute_expires_at)],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok((family, token))
    }

    /// Present a refresh token (by hash): rotate it, accept it within the grace window, or
    /// detect reuse and revoke its family. Runs in one immediate transaction, so two concurrent
    /// presentations of the same token are serialised: one rotates, the other sees `Grace`.
    pub async fn rotate(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Rotation, Error> {
        let (new_token, new_key) = refresh::generate(&key.family)?;
        let (hash, new_hash) = (key.hash, new_key.hash);
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let row = tx
                    .query_row(
                        "SELECT t.family_id, t.idle_expires_at, t.rotated_at, f.user_id, f.absolute_expires_at, f.revoked_at,
                                f.previous_hash IS NOT NULL AND f.previous_hash = t.hash
                         FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?1",
                        [hash.as_slice()],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<i64>>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, Option<i64>>(5)?,
                                r.get::<_, bool>(6)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((family_id, idle_expires_at, rotated_at, user_id, absolute_expires_at, revoked_at, is_predecessor)) = row else {
                    return Ok(Rotation::Invalid);
                };
                let state = TokenState {
                    family: Family { id: family_id, user_id, absolute_expires_at },
                    idle_expires_at,
                    rotated_at,
                    revoked: revoked_at.is_some(),
                    is_predecessor,
                };
                let family = match rotation_step(state, now, policy) {
                    Step::Invalid => return Ok(Rotation::Invalid),
                    Step::Grace(family) => return Ok(Rotation::Grace { family }),
                    Step::Reuse(family) => {
                        revoke_family_tx(&tx, &family.id, "refresh token reuse", now)?;
                        tx.commit()?;
                        return Ok(Rotation::Reused { family_id: family.id, user_id });
                    }
                    Step::Rotate(family) => family,
                };
                tx.execute(
                    "UPDATE refresh_tokens SET rotated_at = ?2 WHERE hash = ?1 AND rotated_at IS NULL",
                    params![hash.as_slice(), now],
                )?;
                tx.execute(
                    "UPDATE refresh_families SET previous_hash = ?2 WHERE id = ?1",
                    params![family.id, hash.as_slice()],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (hash, family_id, issued_at, idle_expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![new_hash.as_slice(), family.id, now, now.saturating_add(policy.idle).min(absolute_expires_at)],
                )?;
                tx.commit()?;
                Ok(Rotation::Rotated { family, token: new_token })
            })
            .await
    }

    /// A server-mode session: the family of a current (never rotated) token whose idle and
    /// absolute lifetimes have not run out. Extends the idle lifetime, writing at most once a
    /// minute per session.
    pub async fn touch(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Option<Family>, Error> {
        let hash = key.hash;
        self.db
            .call(move |c| {
                let row = c
                    .query_row(
                        "SELECT f.id, f.user_id, f.absolute_expires_at, t.idle_expires_at FROM refresh_tokens t
                         JOIN refresh_families f ON f.id = t.family_id
                         WHERE t.hash = ?1 AND t.rotated_at IS NULL AND f.revoked_at IS NULL
                           AND f.absolute_expires_at > ?2 AND t.idle_expires_at > ?2",
                        params![hash.as_slice(), now],
                        |r| Ok((Family { id: r.get(0)?, user_id: r.get(1)?, absolute_expires_at: r.get(2)? }, r.get::<_, i64>(3)?)),
                    )
                    .optional()?;
                let Some((family, idle)) = row else { return Ok(None) };
                let extended = now.saturating_add(policy.idle).min(family.absolute_expires_at);
                if extended - idle > TOUCH_EVERY {
                    c.execute("UPDATE refresh_tokens SET idle_expires_at = ?2 WHERE hash = ?1", params![hash.as_slice(), extended])?;
                }
                Ok(Some(family))
            })
            .await
    }

    /// The live family a refresh token belongs to, without rotating it.
    pub async fn family_of(&self, key: RefreshKey, now: i64) -> Result<Option<Family>, Error> {
        let hash = key.hash;
        self.db
            .call(move |c| {
                let f = c
                    .query_row(
                        "SELECT f.id, f.user_id, f.absolute_expires_at FROM refresh_tokens t
                         JOIN refresh_families f ON f.id = t.family_id
                         WHERE t.hash = ?1 AND f.revoked_at IS NULL AND f.absolute_expires_at > ?2",
                        params![hash.as_slice(), now],
                        |r| {
                            Ok(Family {
                                id: r.get(0)?,
                                user_id: r.get(1)?,
                                absolute_expires_at: r.get(2)?,
                            })
                        },
                    )
                    .optional()?;
                Ok(f)
            })
            .await
    }

    /// Revoke one family (logout).
    pub async fn revoke_family(
        &self,
        family_id: String,
        reason: &'static str,
        now: i64,
    ) -> Result<(), Error> {
        self.db
            .call(move |c| {
                revoke_family_tx(c, &family_id, reason, now)?;
                Ok(())
            })
            .await
    }

    /// Revoke every family of a user (disable, remove, password reset). Returns their ids.
    pub async fn revoke_user(
        &self,
        user_id: i64,
        reason: &'static str,
        now: i64,
    ) -> Result<Vec<String>, Error> {
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let ids = {
                    let mut stmt = tx.prepare(
                        "SELECT id FROM refresh_families WHERE user_id = ?1 AND revoked_at IS NULL",
                    )?;
                    stmt.query_map([user_id], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()?
                };
                for id in &ids {
                    revoke_family_tx(&tx, id, reason, now)?;
                }
                tx.commit()?;
                Ok(ids)
            })
            .await
    }

    /// Persist a revocation so other processes (and a restart) see it.
    pub async fn add_revocation(&self, r: Revocation) -> Result<(), Error> {
        self.db
            .call(move |c| {
                c.execute(
                    "INSERT INTO revocations (kind, value, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, value) DO UPDATE SET created_at = excluded.created_at,
                     expires_at = MAX(revocations.expires_at, excluded.expires_at)",
                    params![r.kind.as_str(), r.value, r.created_at, r.expires_at],
                )?;
                Ok(())
            })
            .await
    }

    /// Revocations still in force, with a cursor (`rowid`) for incremental polling: those after `after_rowid` that still matter at `now`, at most `limit`, and the
    /// row id to go on from.
    pub async fn revocations_since(
        &self,
        after_rowid: i64,
        now: i64,
        limit: i64,
    ) -> Result<(Vec<Revocation>, i64), Error> {
        self.db
            .call(move |c| {
                let mut stmt = c.prepare(
                    "SELECT rowid, kind, value, created_at, expires_at FROM revocations
                     WHERE rowid > ?1 AND expires_at > ?2 ORDER BY rowid LIMIT ?3",
                )?;
                let mut cursor = after_rowid;
                let mut out = Vec::new();
                let mut read = 0;
                let rows = stmt.query_map(params![after_rowid, now, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?;
                for row in rows {
                    let (rowid, kind, value, created_at, expires_at) = row?;
                    read += 1;
                    cursor = cursor.max(rowid);
                    if let Some(kind) = RevocationKind::parse(&kind) {
                        out.push(Revocation {
                            kind,
                            value,
                            created_at,
                            expires_at,
                        });
                    }
                }
                if read == limit {
                    // More may follow this batch: go on from the last row read.
                    return Ok((out, cursor));
                }
                let max: Option<i64> =
                    c.query_row("SELECT MAX(rowid) FROM revocations", [], |r| r.get(0))?;
                Ok((out, cursor.max(max.unwrap_or(0))))
            })
            .await
    }

    /// Failed-login counters: (failures, time of the last one in milliseconds) per key, 0 when
    /// none.
    pub async fn attempts(&self, keys: Vec<String>, now: i64) -> Result<Vec<(i64, i64)>, Error> {
        self.db
            .call(move |c| {
                let mut stmt = c.prepare_cached("SELECT failures, last_at FROM login_attempts WHERE key = ?1 AND expires_at > ?2")?;
                keys.iter()
                    .map(|k| Ok(stmt.query_row(params![k, now], |r| Ok((r.get(0)?, r.get(1)?))).optional()?.unwrap_or((0, 0))))
                    .collect()
            })
            .await
    }

    /// Count one failure for each key; a counter lives `window` seconds after its last failure.
    pub async fn record_failure(
        &self,
        keys: Vec<String>,
        at_ms: i64,
        window: i64,
    ) -> Result<(), Error> {
        let now = at_ms / 1000;
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                for k in &keys {
                    tx.execute(
                        "INSERT INTO login_attempts (key, failures, last_at, expires_at) VALUES (?1, 1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET
                           failures = CASE WHEN login_attempts.expires_at > ?4 THEN login_attempts.failures + 1 ELSE 1 END,
                           last_at = ?2, expires_at = ?3",
                        params![k, at_ms, now.saturating_add(window), now],
                    )?;
                }
                tx.execute("DELETE FROM login_attempts WHERE expires_at <= ?1", [now])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    /// Forget the counters (after a successful login).
    pub async fn reset_attempts(&self, keys: Vec<String>) -> Result<(), Error> {
        self.db
            .call(move |c| {
                for k in &keys {
                    c.execute("DELETE FROM login_attempts WHERE key = ?1", [k])?;
                }
                Ok(())
            })
            .await
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await
    }

    /// Poll the revocations table (other processes write to it: the CLI) and purge what
    /// expired, forever.
    pub async fn follow(self, set: std::sync::Arc<super::RevocationSet>) {
        let mut cursor = 0;
        let mut ticks: u64 = 0;
        loop {
            let now = crate::clock::now();
            // In batches, so that loading a million revocations at start never holds their
            // strings all at once (the set keeps 16 bytes of each).
            loop {
                match self.revocations_since(cursor, now, REVOCATION_BATCH).await {
                    Ok((entries, next)) => {
                        let full = entries.len() == REVOCATION_BATCH as usize;
                        for r in entries {
                            set.insert(r);
                        }
                        cursor = next;
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not load revocations");
                        break;
                    }
                }
            }
            if ticks % 600 == 0 {
                set.purge(now);
                if let Err(e) = self.purge(now).await {
                    tracing::warn!(error = %e, "could not purge expired state");
                }
            }
            ticks = ticks.wrapping_add(1);
            tokio::time::sleep(POLL).await;
        }
    }

    /// Delete what can no longer matter: expired revocations and families past their absolute
    /// lifetime (their tokens go with them).
    pub async fn purge(&self, now: i64) -> Result<(), Error> {
        self.db
            .call(move |c| {
                c.execute("DELETE FROM revocations WHERE expires_at <= ?1", [now])?;
                c.execute(
                    "DELETE FROM refresh_families WHERE absolute_expires_at <= ?1",
                    [now],
                )?;
                Ok(())
            })
            .await
    }
}

fn revoke_family_tx(
    c: &rusqlite::Connection,
    family_id: &str,
    reason: &str,
    now: i64,
) -> Result<(), Error> {
    c.execute(
        "UPDATE refresh_families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        params![family_id, now, reason],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
