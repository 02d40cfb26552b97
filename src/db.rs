//! The embedded SQLite database: opening, migrations, and running queries off the async
//! executor. Users, roles and the session state store all live here in the default setup.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::Error;

/// Ordered migrations; each runs once, inside a transaction, and is recorded in
/// `schema_migrations`. Written in the SQL subset SQLite and PostgreSQL share.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r"
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);
CREATE TABLE refresh_tokens (
    hash BLOB PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    issued_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE TABLE revocations (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
",
    ),
    (
        2,
        r"
CREATE TABLE permissions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE role_permissions (
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission_id INTEGER NOT NULL REFERENCES permissions(id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);
",
    ),
];

/// A handle to the database, cheap to clone. SQLite serialises writers anyway, so one
/// connection behind a mutex, used from the blocking pool, is both simple and sufficient for
/// the login/refresh/logout traffic that reaches it (the proxied hot path never does).
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Db, Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Internal(format!("create {}: {e}", parent.display())))?;
        }
        let existed = path.exists();
        let mut conn = Connection::open(path)?;
        if !existed {
            restrict_permissions(path);
        }
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut conn)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| Error::Internal("database mutex poisoned".to_owned()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::Internal(format!("database task: {e}")))?
    }

    /// Is the database answering? Used by `/auth/readyz`.
    pub async fn ping(&self) -> Result<(), Error> {
        self.call(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )?;
    for (version, sql) in MIGRATIONS {
        let tx = write_tx(conn)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![version, crate::clock::now()],
            )?;
            tracing::info!(version, "applied database migration");
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict database file permissions");
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Start a transaction that writes. IMMEDIATE takes the write lock up front, so a busy
/// database makes it wait (busy timeout) instead of failing when a read turns into a write
/// while another process (the CLI, another gateway) has written in between.
pub fn write_tx(c: &mut Connection) -> Result<rusqlite::Transaction<'_>, rusqlite::Error> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}
