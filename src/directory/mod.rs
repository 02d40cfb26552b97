//! The user directory: local users with argon2id password hashes and their roles, stored in
//! the embedded database or PostgreSQL, plus the users that sign in through an LDAP / Active
//! Directory server or an OpenID provider. Those are provisioned into the same tables on their
//! first sign-in (marked with their source), so sessions, refresh, `users disable` and locally
//! granted roles work the same for everyone.

pub mod password;

pub mod postgres;
pub mod sqlite;

use crate::db::Db;
use crate::error::Error;

/// Longest accepted username, in bytes.
pub use crate::names::MAX_USERNAME_LEN;

/// A user as stored, with roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub disabled: bool,
    pub roles: Vec<String>,
    /// Effective permissions: the union of the roles' permissions, sorted.
    pub permissions: Vec<String>,
    pub created_at: i64,
    /// Where the user signs in: [`LOCAL`], `ldap` or `oidc` (the names of [`crate::config::SourceKind`]).
    pub source: String,
    /// Who the user is at that source: the LDAP entry's DN, the provider's `sub`.
    pub external_id: Option<String>,
    /// Roles granted here (`users add --role`, `roles grant`); kept across sign-ins.
    pub granted_roles: Vec<String>,
    /// Roles mapped from the source's groups at the last sign-in (replaced at every sign-in).
    /// `roles` is the union of both.
    pub mapped_roles: Vec<String>,
}

/// The union of granted and mapped roles, sorted.
pub fn union(granted: &[String], mapped: &[String]) -> Vec<String> {
    let mut all: Vec<String> = granted.iter().chain(mapped).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// The `source` of users created with `users add`, who sign in with a password stored here.
pub const LOCAL: &str = crate::config::SourceKind::Local.name();

/// What provisioning a user from an external source found.
#[derive(Debug)]
pub enum Provisioned {
    /// Created or updated, with the mapped roles replaced.
    User(User),
    /// The name belongs to someone else: a local user, a user of another source, or (for
    /// OpenID) another subject of the same provider. Nothing was changed.
    Conflict { existing_source: String },
}

/// A user signing in through an external source, as that source describes them.
#[derive(Debug, Clone)]
pub struct ExternalUser {
    pub source: &'static str,
    pub username: String,
    pub external_id: String,
    /// Must this `external_id` match the stored one? (OpenID `sub` is the stable identity of a
    /// provider's user; an LDAP DN changes when an entry moves, so it is only recorded.)
    pub id_is_stable: bool,
    pub roles: Vec<String>,
}

/// A role with its permissions and how many users hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub permissions: Vec<String>,
    pub members: i64,
}

/// A user with the stored hash, for login only.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// Where users and roles live: the embedded SQLite database, or PostgreSQL when several
/// replicas share one directory. Both run the same migrations and behave the same.
#[derive(Clone)]
pub enum Directory {
    Sqlite(sqlite::SqliteDirectory),
    Postgres(postgres::PgDirectory),
}

macro_rules! dispatch {
    ($self:ident, $d:ident => $call:expr) => {
        match $self {
            Directory::Sqlite($d) => $call,
            Directory::Postgres($d) => $call,
        }
    };
}

impl Directory {
    /// Open the directory `config.database` names. Returns the SQLite handle too when the
    /// database is SQLite (the default state store lives there).
    pub async fn open(config: &crate::config::Config) -> Result<(Directory, Option<Db>), Error> {
        if config.database_is_postgres() {
            let pg =
                postgres::PgDirectory::open(&config.database, config.limits.store_timeout).await?;
            return Ok((Directory::Postgres(pg), None));
        }
        let db = Db::open(&config.sqlite_path())?;
        Ok((Directory::new(db.clone()), Some(db)))
    }

    /// The embedded directory in `db`.
    pub fn new(db: Db) -> Directory {
        Directory::Sqlite(sqlite::SqliteDirectory::new(db))
    }

    /// Is the directory answering? (`/auth/readyz`)
    pub async fn ping(&self) -> Result<(), Error> {
        dispatch!(self, d => d.ping().await)
    }

    pub async fn credentials(&self, username: String) -> Result<Option<Credentials>, Error> {
        dispatch!(self, d => d.credentials(username).await)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, Error> {
        dispatch!(self, d => d.user_by_id(id).await)
    }

    pub async fn user(&self, username: String) -> Result<Option<User>, Error> {
        dispatch!(self, d => d.user(username).await)
    }

    pub async fn list(&self) -> Result<Vec<User>, Error> {
        dispatch!(self, d => d.list().await)
    }

    /// Create a user. Fails with `BadRequest` if the name is taken.
    pub async fn add(
        &self,
        username: String,
        password_hash: String,
        roles: Vec<String>,
    ) -> Result<User, Error> {
        dispatch!(self, d => d.add(username, password_hash, roles).await)
    }

    /// Replace the password hash. Returns false if there is no such user.
    pub async fn set_password(
        &self,
        username: String,
        password_hash: String,
    ) -> Result<bool, Error> {
        dispatch!(self, d => d.set_password(username, password_hash).await)
    }

    /// Enable or disable. Returns false if there is no such user.
    pub async fn set_disabled(&self, username: String, disabled: bool) -> Result<bool, Error> {
        dispatch!(self, d => d.set_disabled(username, disabled).await)
    }

    /// Create a role (if new) and add permissions to it.
    pub async fn add_role(&self, role: String, permissions: Vec<String>) -> Result<Role, Error> {
        dispatch!(self, d => d.add_role(role, permissions).await)
    }

    /// Every role with its permissions and member count.
    pub async fn roles(&self) -> Result<Vec<Role>, Error> {
        dispatch!(self, d => d.roles().await)
    }

    /// Give `username` the existing role `role`.
    pub async fn grant(&self, username: String, role: String) -> Result<(), Error> {
        dispatch!(self, d => d.grant(username, role).await)
    }

    /// Take `role` away from `username`. Returns false if the user did not hold it.
    pub async fn revoke(&self, username: String, role: String) -> Result<bool, Error> {
        dispatch!(self, d => d.revoke(username, role).await)
    }

    /// Delete a user. Returns false if absent.
    pub async fn remove(&self, username: String) -> Result<bool, Error> {
        dispatch!(self, d => d.remove(username).await)
    }

    /// Create or update a user of an external source after it authenticated them, replacing
    /// the roles mapped from their groups. A name held by anyone else is a conflict.
    pub async fn provision(&self, user: ExternalUser) -> Result<Provisioned, Error> {
        dispatch!(self, d => d.provision(user).await)
    }
}

/// The stored hash of users who do not sign in with a local password: not a PHC string, so it
/// can never verify (and the local source never tries it: it only handles `source = local`).
pub const NO_PASSWORD: &str = "!external";

/// Does `existing` (source, external id) let `incoming` take the name?
pub fn provision_conflict(
    existing_source: &str,
    existing_id: Option<&str>,
    incoming: &ExternalUser,
) -> bool {
    existing_source != incoming.source
        || (incoming.id_is_stable && existing_id.is_some_and(|id| id != incoming.external_id))
}
