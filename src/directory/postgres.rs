//! Users and roles in PostgreSQL, for replicas that share one directory: the same migrations
//! (see [`crate::db::MIGRATIONS`]), the same behaviour and the same CLI as on SQLite.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls, Row};

use super::{Credentials, ExternalUser, Provisioned, Role, User};
use crate::clock;
use crate::db::{Dialect, MIGRATIONS};
use crate::error::Error;

/// Migrations from several replicas starting at once take turns on this advisory lock.
const MIGRATION_LOCK: i64 = 0x6461_7368_6761_7465; // "dashgate"

const USER_COLUMNS: &str = "id, username, disabled, created_at, source, external_id";

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("postgres: {e}"))
}

/// A connection that is re-established when it breaks.
#[derive(Clone)]
pub struct PgDirectory {
    url: Arc<String>,
    timeout: Duration,
    client: Arc<Mutex<Option<Arc<Client>>>>,
}

impl PgDirectory {
    /// Connect and migrate.
    pub async fn open(url: &str, timeout: Duration) -> Result<PgDirectory, Error> {
        let dir = PgDirectory {
            url: Arc::new(url.to_owned()),
            timeout,
            client: Arc::new(Mutex::new(None)),
        };
        let client = dir.client().await?;
        migrate(&client).await?;
        Ok(dir)
    }

    async fn client(&self) -> Result<Arc<Client>, Error> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let connect = tokio_postgres::connect(&self.url, NoTls);
        let (client, connection) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| unavailable("connect timed out"))?
            .map_err(unavailable)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Run `f` with a live client under the deadline.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let client = self.client().await?;
        tokio::time::timeout(self.timeout, f(client))
            .await
            .map_err(|_| unavailable("timed out"))?
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.with(|c| async move {
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }

    pub async fn credentials(&self, username: String) -> Result<Option<Credentials>, Error> {
        self.with(|c| async move {
            let sql =
                format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1");
            let Some(row) = c.query_opt(&sql, &[&username]).await.map_err(unavailable)? else {
                return Ok(None);
            };
            let password_hash: String = row.try_get(6).map_err(unavailable)?;
            let user = filled(&*c, user_row(&row)?).await?;
            Ok(Some(Credentials {
                user,
                password_hash,
            }))
        })
        .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, Error> {
        self.with(|c| async move { user_where(&*c, "id = $1", &id).await })
            .await
    }

    pub async fn user(&self, username: String) -> Result<Option<User>, Error> {
        self.with(|c| async move { user_where(&*c, "username = $1", &username).await })
            .await
    }

    pub async fn list(&self) -> Result<Vec<User>, Error> {
        self.with(|c| async move {
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
            let rows = c.query(&sql, &[]).await.map_err(unavailable)?;
            let mut users = Vec::with_capacity(rows.len());
            for r in &rows {
                users.push(filled(&*c, user_row(r)?).await?);
            }
            Ok(users)
        })
        .await
    }

    pub async fn add(
        &self,
        username: String,
        password_hash: String,
        roles: Vec<String>,
    ) -> Result<User, Error> {
        self.with(|c| async move {
            let now = clock::now();
            let taken = || Error::BadRequest("a user with that name already exists");
            if c.query_opt("SELECT 1 FROM users WHERE username = $1", &[&username]).await.map_err(unavailable)?.is_some() {
                return Err(taken());
            }
            c.execute(
                "INSERT INTO roles (name, created_at) SELECT unnest($1::TEXT[]), $2 ON CONFLICT (name) DO NOTHING",
                &[&roles, &now],
            )
            .await
            .map_err(unavailable)?;
            // One statement: the user and their roles appear together or not at all (the client
            // is shared by concurrent requests, so no session-level BEGIN here).
            c.execute(
                "WITH u AS (
                    INSERT INTO users (username, password_hash, disabled, created_at, updated_at)
                    VALUES ($1, $2, 0, $3, $3) RETURNING id)
                 INSERT INTO user_roles (user_id, role_id)
                 SELECT u.id, r.id FROM u CROSS JOIN roles r WHERE r.name = ANY($4)",
                &[&username, &password_hash, &now, &roles],
            )
            .await
            .map_err(|e| if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) { taken() } else { unavailable(e) })?;
            user_where(&*c, "username = $1", &username)
                .await?
                .ok_or_else(|| Error::Internal("user vanished after insert".to_owned()))
        })
        .await
    }

    pub async fn set_password(
        &self,
        username: String,
        password_hash: String,
    ) -> Result<bool, Error> {
        self.with(|c| async move {
            let n = c
                .execute(
                    "UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1",
                    &[&username, &password_hash, &clock::now()],
                )
                .await
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn set_disabled(&self, username: String, disabled: bool) -> Result<bool, Error> {
        self.with(|c| async move {
            let n = c
                .execute(
                    "UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1",
                    &[&username, &i64::from(disabled), &clock::now()],
                )
                .await
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn add_role(&self, role: String, permissions: Vec<String>) -> Result<Role, Error> {
        self.with(|c| async move {
            c.execute(
                "INSERT INTO roles (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&role, &clock::now()],
            )
            .await
            .map_err(unavailable)?;
            for p in &permissions {
                c.execute("INSERT INTO permissions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[p])
                    .await
                    .map_err(unavailable)?;
                c.execute(
                    "INSERT INTO role_permissions (role_id, permission_id)
                     SELECT r.id, p.id FROM roles r, permissions p WHERE r.name = $1 AND p.name = $2
                     ON CONFLICT DO NOTHING",
                    &[&role, p],
                )
                .await
                .map_err(unavailable)?;
            }
            roles(&*c, Some(&role))
                .await?
                .pop()
                .ok_or_else(|| Error::Internal("role vanished after insert".to_owned()))
        })
        .await
    }

    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        self.with(|c| async move { roles(&*c, None).await }).await
    }

    pub async fn grant(&self, username: String, role: String) -> Result<(), Error> {
        self.with(|c| async move {
            let (uid, rid) = user_and_role(&*c, &username, &role).await?;
            c.execute(
                "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&uid, &rid],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    pub async fn revoke(&self, username: String, role: String) -> Result<bool, Error> {
        self.with(|c| async move {
            let (uid, rid) = user_and_role(&*c, &username, &role).await?;
            let n = c
                .execute(
                    "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2",
                    &[&uid, &rid],
                )
                .await
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    /// Create or update a user of an external source; see [`super::Directory::provision`].
    /// One transaction on a connection of its own (the shared client carries concurrent
    /// requests, so it cannot hold a BEGIN), with the user's row locked.
    pub async fn provision(&self, incoming: ExternalUser) -> Result<Provisioned, Error> {
        let connect = tokio_postgres::connect(&self.url, NoTls);
        let (mut client, connection) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| unavailable("connect timed out"))?
            .map_err(unavailable)?;
        let task = tokio::spawn(connection);
        let work = async {
            let tx = client.transaction().await.map_err(unavailable)?;
            let now = clock::now();
            tx.execute(
                "INSERT INTO users (username, password_hash, disabled, created_at, updated_at, source, external_id, synced_at)
                 VALUES ($1, $2, 0, $3, $3, $4, $5, $3) ON CONFLICT (username) DO NOTHING",
                &[&incoming.username, &super::NO_PASSWORD, &now, &incoming.source, &incoming.external_id],
            )
            .await
            .map_err(unavailable)?;
            let row = tx
                .query_one(
                    "SELECT id, source, external_id FROM users WHERE username = $1 FOR UPDATE",
                    &[&incoming.username],
                )
                .await
                .map_err(unavailable)?;
            let id: i64 = row.try_get(0).map_err(unavailable)?;
            let source: String = row.try_get(1).map_err(unavailable)?;
            let external: Option<String> = row.try_get(2).map_err(unavailable)?;
            if super::provision_conflict(&source, external.as_deref(), &incoming) {
                return Ok(Provisioned::Conflict {
                    existing_source: source,
                });
            }
            tx.execute(
                "UPDATE users SET external_id = $2, synced_at = $3, updated_at = $3 WHERE id = $1",
                &[&id, &incoming.external_id, &now],
            )
            .await
            .map_err(unavailable)?;
            tx.execute("DELETE FROM user_mapped_roles WHERE user_id = $1", &[&id])
                .await
                .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO roles (name, created_at) SELECT unnest($1::TEXT[]), $2 ON CONFLICT (name) DO NOTHING",
                &[&incoming.roles, &now],
            )
            .await
            .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO user_mapped_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = ANY($2)",
                &[&id, &incoming.roles],
            )
            .await
            .map_err(unavailable)?;
            let user = user_where(&tx, "id = $1", &id)
                .await?
                .ok_or_else(|| Error::Internal("user vanished after provisioning".to_owned()))?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Provisioned::User(user))
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| unavailable("timed out"));
        drop(client);
        task.abort();
        result?
    }

    pub async fn remove(&self, username: String) -> Result<bool, Error> {
        self.with(|c| async move {
            let n = c
                .execute("DELETE FROM users WHERE username = $1", &[&username])
                .await
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }
}

pub(crate) async fn migrate(c: &Client) -> Result<(), Error> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(unavailable)?;
    for (version, sql) in MIGRATIONS {
        c.batch_execute("BEGIN").await.map_err(unavailable)?;
        let step = async {
            c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let done = c
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
            if !done {
                c.batch_execute(&Dialect::Postgres.sql(sql)).await?;
                c.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &clock::now()],
                )
                .await?;
                tracing::info!(version, "applied database migration (postgres)");
            }
            Ok::<(), tokio_postgres::Error>(())
        }
        .await;
        match step {
            Ok(()) => c.batch_execute("COMMIT").await.map_err(unavailable)?,
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                return Err(unavailable(e));
            }
        }
    }
    Ok(())
}

fn user_row(r: &Row) -> Result<User, Error> {
    Ok(User {
        id: r.try_get(0).map_err(unavailable)?,
        username: r.try_get(1).map_err(unavailable)?,
        disabled: r.try_get::<_, i64>(2).map_err(unavailable)? != 0,
        roles: Vec::new(),
        permissions: Vec::new(),
        created_at: r.try_get(3).map_err(unavailable)?,
        source: r.try_get(4).map_err(unavailable)?,
        external_id: r.try_get(5).map_err(unavailable)?,
        granted_roles: Vec::new(),
        mapped_roles: Vec::new(),
    })
}

async fn user_where<C: GenericClient>(
    c: &C,
    condition: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {condition}");
    match c.query_opt(&sql, &[value]).await.map_err(unavailable)? {
        Some(row) => Ok(Some(filled(c, user_row(&row)?).await?)),
        None => Ok(None),
    }
}

/// Role ids of a user: granted locally or mapped from their source's groups.
const ROLE_IDS: &str = "SELECT role_id FROM user_roles WHERE user_id = $1 UNION SELECT role_id FROM user_mapped_roles WHERE user_id = $1";

/// Add roles (local and mapped) and effective permissions.
async fn filled<C: GenericClient>(c: &C, mut user: User) -> Result<User, Error> {
    let names = async |sql: &str| -> Result<Vec<String>, Error> {
        let rows = c.query(sql, &[&user.id]).await.map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    };
    let granted = names(
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = $1 ORDER BY r.name",
    )
    .await?;
    let mapped = names(
        "SELECT r.name FROM roles r JOIN user_mapped_roles m ON m.role_id = r.id WHERE m.user_id = $1 ORDER BY r.name",
    )
    .await?;
    let permissions = names(&format!(
        "SELECT DISTINCT p.name FROM permissions p
         JOIN role_permissions rp ON rp.permission_id = p.id
         WHERE rp.role_id IN ({ROLE_IDS}) ORDER BY p.name"
    ))
    .await?;
    user.roles = super::union(&granted, &mapped);
    user.granted_roles = granted;
    user.mapped_roles = mapped;
    user.permissions = permissions;
    Ok(user)
}

async fn user_and_role<C: GenericClient>(
    c: &C,
    username: &str,
    role: &str,
) -> Result<(i64, i64), Error> {
    let uid = c
        .query_opt("SELECT id FROM users WHERE username = $1", &[&username])
        .await
        .map_err(unavailable)?;
    let rid = c
        .query_opt("SELECT id FROM roles WHERE name = $1", &[&role])
        .await
        .map_err(unavailable)?;
    match (uid, rid) {
        (None, _) => Err(Error::BadRequest("no such user")),
        (_, None) => Err(Error::BadRequest(
            "no such role (create it with `roles add`)",
        )),
        (Some(u), Some(r)) => Ok((
            u.try_get(0).map_err(unavailable)?,
            r.try_get(0).map_err(unavailable)?,
        )),
    }
}

async fn roles<C: GenericClient>(c: &C, only: Option<&str>) -> Result<Vec<Role>, Error> {
    let rows = c
        .query(
            "SELECT r.name,
                    (SELECT COUNT(*) FROM (SELECT user_id FROM user_roles WHERE role_id = r.id
                        UNION SELECT user_id FROM user_mapped_roles WHERE role_id = r.id) m),
                    (SELECT string_agg(p.name, ',' ORDER BY p.name) FROM permissions p
                        JOIN role_permissions rp ON rp.permission_id = p.id WHERE rp.role_id = r.id)
             FROM roles r WHERE ($1::TEXT IS NULL OR r.name = $1) ORDER BY r.name",
            &[&only],
        )
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|r| {
            let perms: Option<String> = r.try_get(2).map_err(unavailable)?;
            Ok(Role {
                name: r.try_get(0).map_err(unavailable)?,
                members: r.try_get(1).map_err(unavailable)?,
                permissions: perms
                    .map(|p| p.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}
