//! The user directory: local users with argon2id password hashes and their roles, stored in
//! the embedded database. (LDAP and OIDC sources plug in beside it later.)

pub mod password;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock;
use crate::db::Db;
use crate::error::Error;

/// Longest accepted username, in bytes.
pub const MAX_USERNAME_LEN: usize = 64;

/// A user as stored, with roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub disabled: bool,
    pub roles: Vec<String>,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "names are 1 to 64 characters of a-z, 0-9, '.', '_', '-' and '@', starting with a letter or digit"
    )]
    Invalid,
}

/// Canonical form of a username or role name: lower-cased and restricted to a safe alphabet,
/// so that `Admin`, `admin` and look-alikes cannot be distinct accounts and a name can travel in
/// a header unescaped. Login applies the same function, so lookups are case-insensitive.
pub fn canonical_name(raw: &str) -> Result<String, NameError> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@')
        })
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(name)
    } else {
        Err(NameError::Invalid)
    }
}

/// Users and roles in the embedded database.
#[derive(Clone)]
pub struct Directory {
    db: Db,
}

/// A user with the stored hash, for login only.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

impl Directory {
    pub fn new(db: Db) -> Directory {
        Directory { db }
    }

    pub async fn credentials(&self, username: String) -> Result<Option<Credentials>, Error> {
        self.db
            .call(move |c| {
                let row = c
                    .query_row(
                        "SELECT id, username, disabled, created_at, password_hash FROM users WHERE username = ?1",
                        [&username],
                        |r| {
                            Ok((
                                User {
                                    id: r.get(0)?,
                                    username: r.get(1)?,
                                    disabled: r.get::<_, i64>(2)? != 0,
                                    roles: Vec::new(),
                                    created_at: r.get(3)?,
                                },
                                r.get::<_, String>(4)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((mut user, password_hash)) = row else {
                    return Ok(None);
                };
                user.roles = roles_of(c, user.id)?;
                Ok(Some(Credentials { user, password_hash }))
            })
            .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, Error> {
        self.db.call(move |c| user_where(c, "id = ?1", id)).await
    }

    pub async fn user(&self, username: String) -> Result<Option<User>, Error> {
        self.db
            .call(move |c| user_where(c, "username = ?1", username))
            .await
    }

    pub async fn list(&self) -> Result<Vec<User>, Error> {
        self.db
            .call(|c| {
                let mut stmt = c.prepare("SELECT id FROM users ORDER BY username")?;
                let ids = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut users = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(u) = user_where(c, "id = ?1", id)? {
                        users.push(u);
                    }
                }
                Ok(users)
            })
            .await
    }

    /// Create a user. Fails with `BadRequest` if the name is taken.
    pub async fn add(
        &self,
        username: String,
        password_hash: String,
        roles: Vec<String>,
    ) -> Result<User, Error> {
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                let now = clock::now();
                let exists: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?1)",
                    [&username],
                    |r| r.get(0),
                )?;
                if exists {
                    return Err(Error::BadRequest("a user with that name already exists"));
                }
                tx.execute(
                    "INSERT INTO users (username, password_hash, disabled, created_at, updated_at) VALUES (?1, ?2, 0, ?3, ?3)",
                    params![username, password_hash, now],
                )?;
                let id = tx.last_insert_rowid();
                for role in &roles {
                    grant(&tx, id, role, now)?;
                }
                let user = user_where(&tx, "id = ?1", id)?
                    .ok_or_else(|| Error::Internal("user vanished after insert".to_owned()))?;
                tx.commit()?;
                Ok(user)
            })
            .await
    }

    /// Replace the password hash. Returns false if there is no such user.
    pub async fn set_password(
        &self,
        username: String,
        password_hash: String,
    ) -> Result<bool, Error> {
        self.db
            .call(move |c| {
                let n = c.execute(
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE username = ?1",
                    params![username, password_hash, clock::now()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Enable or disable. Returns false if there is no such user.
    pub async fn set_disabled(&self, username: String, disabled: bool) -> Result<bool, Error> {
        self.db
            .call(move |c| {
                let n = c.execute(
                    "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE username = ?1",
                    params![username, i64::from(disabled), clock::now()],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Delete a user (their refresh families go with them). Returns false if absent.
    pub async fn remove(&self, username: String) -> Result<bool, Error> {
        self.db
            .call(move |c| {
                let n = c.execute("DELETE FROM users WHERE username = ?1", [&username])?;
                Ok(n == 1)
            })
            .await
    }
}

fn user_where<P: rusqlite::ToSql>(
    c: &Connection,
    condition: &str,
    value: P,
) -> Result<Option<User>, Error> {
    let sql = format!("SELECT id, username, disabled, created_at FROM users WHERE {condition}");
    let user = c
        .query_row(&sql, [value], |r| {
            Ok(User {
                id: r.get(0)?,
                username: r.get(1)?,
                disabled: r.get::<_, i64>(2)? != 0,
                roles: Vec::new(),
                created_at: r.get(3)?,
            })
        })
        .optional()?;
    let Some(mut user) = user else {
        return Ok(None);
    };
    user.roles = roles_of(c, user.id)?;
    Ok(Some(user))
}

fn roles_of(c: &Connection, user_id: i64) -> Result<Vec<String>, Error> {
    let mut stmt = c.prepare_cached(
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ?1 ORDER BY r.name",
    )?;
    let roles = stmt
        .query_map([user_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(roles)
}

fn grant(c: &Connection, user_id: i64, role: &str, now: i64) -> Result<(), Error> {
    c.execute(
        "INSERT INTO roles (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![role, now],
    )?;
    c.execute(
        "INSERT INTO user_roles (user_id, role_id) SELECT ?1, id FROM roles WHERE name = ?2 ON CONFLICT DO NOTHING",
        params![user_id, role],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name(" Admin "), Ok("admin".to_owned()));
        assert_eq!(canonical_name("a.b_c-d@e"), Ok("a.b_c-d@e".to_owned()));
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a,b",
            "a\nb",
            "ädmin",
            "a\"b",
            &"x".repeat(65),
        ] {
            assert_eq!(canonical_name(bad), Err(NameError::Invalid), "{bad:?}");
        }
    }
}
