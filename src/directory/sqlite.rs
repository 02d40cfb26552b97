//! Users and roles in the embedded SQLite database.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Credentials, ExternalUser, Provisioned, Role, User};
use crate::clock;
use crate::db::Db;
use crate::error::Error;

/// Users and roles in the embedded database.
#[derive(Clone)]
pub struct SqliteDirectory {
    db: Db,
}

impl SqliteDirectory {
    pub fn new(db: Db) -> SqliteDirectory {
        SqliteDirectory { db }
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await
    }

    pub async fn credentials(&self, username: String) -> Result<Option<Credentials>, Error> {
        self.db
            .call(move |c| {
                let row = c
                    .query_row(
                        &format!(
                            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?1"
                        ),
                        [&username],
                        |r| Ok((user_row(r)?, r.get::<_, String>(6)?)),
                    )
                    .optional()?;
                let Some((mut user, password_hash)) = row else {
                    return Ok(None);
                };
                fill_access(c, &mut user)?;
                Ok(Some(Credentials {
                    user,
                    password_hash,
                }))
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
                let tx = crate::db::write_tx(c)?;
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

    /// Create a role (if new) and add permissions to it.
    pub async fn add_role(&self, role: String, permissions: Vec<String>) -> Result<Role, Error> {
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let now = clock::now();
                tx.execute(
                    "INSERT INTO roles (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    params![role, now],
                )?;
                for p in &permissions {
                    tx.execute("INSERT INTO permissions (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", [p])?;
                    tx.execute(
                        "INSERT INTO role_permissions (role_id, permission_id)
                         SELECT r.id, p.id FROM roles r, permissions p WHERE r.name = ?1 AND p.name = ?2
                         ON CONFLICT DO NOTHING",
                        params![role, p],
                    )?;
                }
                let r = roles(&tx, Some(&role))?
                    .pop()
                    .ok_or_else(|| Error::Internal("role vanished after insert".to_owned()))?;
                tx.commit()?;
                Ok(r)
            })
            .await
    }

    /// Every role with its permissions and member count.
    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        self.db.call(|c| roles(c, None)).await
    }

    /// Give `username` the existing role `role`. Errors name what is missing.
    pub async fn grant(&self, username: String, role: String) -> Result<(), Error> {
        self.db
            .call(move |c| {
                let (uid, rid) = user_and_role(c, &username, &role)?;
                c.execute(
                    "INSERT INTO user_roles (user_id, role_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![uid, rid],
                )?;
                Ok(())
            })
            .await
    }

    /// Take `role` away from `username`. Returns false if the user did not hold it.
    pub async fn revoke(&self, username: String, role: String) -> Result<bool, Error> {
        self.db
            .call(move |c| {
                let (uid, rid) = user_and_role(c, &username, &role)?;
                let n = c.execute(
                    "DELETE FROM user_roles WHERE user_id = ?1 AND role_id = ?2",
                    params![uid, rid],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Create or update a user of an external source; see [`super::Directory::provision`].
    pub async fn provision(&self, incoming: ExternalUser) -> Result<Provisioned, Error> {
        self.db
            .call(move |c| {
                let tx = crate::db::write_tx(c)?;
                let now = clock::now();
                let existing: Option<(i64, String, Option<String>)> = tx
                    .query_row(
                        "SELECT id, source, external_id FROM users WHERE username = ?1",
                        [&incoming.username],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let id = match existing {
                    Some((_, source, id))
                        if super::provision_conflict(&source, id.as_deref(), &incoming) =>
                    {
                        return Ok(Provisioned::Conflict {
                            existing_source: source,
                        });
                    }
                    Some((id, ..)) => {
                        tx.execute(
                            "UPDATE users SET external_id = ?2, synced_at = ?3, updated_at = ?3 WHERE id = ?1",
                            params![id, incoming.external_id, now],
                        )?;
                        id
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO users (username, password_hash, disabled, created_at, updated_at, source, external_id, synced_at)
                             VALUES (?1, ?2, 0, ?3, ?3, ?4, ?5, ?3)",
                            params![incoming.username, super::NO_PASSWORD, now, incoming.source, incoming.external_id],
                        )?;
                        tx.last_insert_rowid()
                    }
                };
                tx.execute("DELETE FROM user_mapped_roles WHERE user_id = ?1", [id])?;
                for role in &incoming.roles {
                    tx.execute(
                        "INSERT INTO roles (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                        params![role, now],
                    )?;
                    tx.execute(
                        "INSERT INTO user_mapped_roles (user_id, role_id) SELECT ?1, id FROM roles WHERE name = ?2 ON CONFLICT DO NOTHING",
                        params![id, role],
                    )?;
                }
                let user = user_where(&tx, "id = ?1", id)?
                    .ok_or_else(|| Error::Internal("user vanished after provisioning".to_owned()))?;
                tx.commit()?;
                Ok(Provisioned::User(user))
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

/// Columns read by [`user_row`], in order.
const USER_COLUMNS: &str = "id, username, disabled, created_at, source, external_id";

/// A user from a row starting with [`USER_COLUMNS`]; roles and permissions are filled later.
fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        disabled: r.get::<_, i64>(2)? != 0,
        roles: Vec::new(),
        permissions: Vec::new(),
        created_at: r.get(3)?,
        source: r.get(4)?,
        external_id: r.get(5)?,
        granted_roles: Vec::new(),
        mapped_roles: Vec::new(),
    })
}

fn user_where<P: rusqlite::ToSql>(
    c: &Connection,
    condition: &str,
    value: P,
) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {condition}");
    let user = c.query_row(&sql, [value], user_row).optional()?;
    let Some(mut user) = user else {
        return Ok(None);
    };
    fill_access(c, &mut user)?;
    Ok(Some(user))
}

/// Role ids of a user: granted locally or mapped from their source's groups.
const ROLE_IDS: &str = "SELECT role_id FROM user_roles WHERE user_id = ?1 UNION SELECT role_id FROM user_mapped_roles WHERE user_id = ?1";

fn fill_access(c: &Connection, user: &mut User) -> Result<(), Error> {
    let names = |sql: &str| -> Result<Vec<String>, Error> {
        let mut stmt = c.prepare_cached(sql)?;
        let rows = stmt
            .query_map([user.id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    };
    user.granted_roles = names(
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ?1 ORDER BY r.name",
    )?;
    user.mapped_roles = names(
        "SELECT r.name FROM roles r JOIN user_mapped_roles m ON m.role_id = r.id WHERE m.user_id = ?1 ORDER BY r.name",
    )?;
    user.permissions = names(&format!(
        "SELECT DISTINCT p.name FROM permissions p
         JOIN role_permissions rp ON rp.permission_id = p.id
         WHERE rp.role_id IN ({ROLE_IDS}) ORDER BY p.name"
    ))?;
    user.roles = super::union(&user.granted_roles, &user.mapped_roles);
    Ok(())
}

fn user_and_role(c: &Connection, username: &str, role: &str) -> Result<(i64, i64), Error> {
    let uid: Option<i64> = c
        .query_row(
            "SELECT id FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?;
    let rid: Option<i64> = c
        .query_row("SELECT id FROM roles WHERE name = ?1", [role], |r| r.get(0))
        .optional()?;
    match (uid, rid) {
        (None, _) => Err(Error::BadRequest("no such user")),
        (_, None) => Err(Error::BadRequest(
            "no such role (create it with `roles add`)",
        )),
        (Some(u), Some(r)) => Ok((u, r)),
    }
}

fn roles(c: &Connection, only: Option<&str>) -> Result<Vec<Role>, Error> {
    let mut stmt = c.prepare(
        "SELECT r.name,
                (SELECT COUNT(*) FROM (SELECT user_id FROM user_roles WHERE role_id = r.id
                    UNION SELECT user_id FROM user_mapped_roles WHERE role_id = r.id)),
                (SELECT GROUP_CONCAT(name, ',') FROM (SELECT p.name AS name FROM permissions p
                    JOIN role_permissions rp ON rp.permission_id = p.id
                    WHERE rp.role_id = r.id ORDER BY p.name))
         FROM roles r WHERE (?1 IS NULL OR r.name = ?1) ORDER BY r.name",
    )?;
    let rows = stmt.query_map([only], |r| {
        let perms: Option<String> = r.get(2)?;
        Ok(Role {
            name: r.get(0)?,
            members: r.get(1)?,
            permissions: perms
                .map(|p| p.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
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
