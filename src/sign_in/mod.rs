//! Sign-in sources, in one place: local users (passwords hashed here), an LDAP / Active
//! Directory server ([`ldap`]) and an OpenID Connect provider ([`oidc`]). [`SignIn`] holds the
//! configured ones in their order (`login.sources`) and is the one way a password sign-in goes
//! through them: the first source that knows the name decides; a wrong password there is final
//! (no falling through to a weaker source). A name known to an external source but held
//! locally by someone of another source is refused, so a directory account can never take over
//! a local one (or the other way round). Adding a source touches this folder and its settings
//! in `config` (its [`SourceKind`] and table).

pub mod ldap;
pub mod oidc;

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::{Config, SourceKind};
use crate::directory::password::Hasher;
use crate::directory::{self, Directory, ExternalUser, Provisioned, User};
use crate::error::Error;
use ldap::{BindOutcome, LdapSource};

/// The configured sign-in sources.
pub struct SignIn {
    /// `login.sources`: where password sign-ins look, in order.
    pub order: Vec<SourceKind>,
    pub directory: Directory,
    /// Hashes and verifies local passwords (argon2id, bounded concurrency).
    pub hasher: Hasher,
    /// The LDAP / Active Directory source, when `[ldap]` is configured.
    pub ldap: Option<LdapSource>,
    /// The OpenID provider, when `[oidc]` is configured.
    pub oidc: Option<Arc<oidc::Provider>>,
}

impl SignIn {
    /// The sources `config` names, over the user `directory`.
    pub fn new(config: &Config, directory: Directory) -> Result<SignIn, Error> {
        Ok(SignIn {
            order: config.sources.clone(),
            directory,
            hasher: Hasher::new(
                config.limits.password_hash_concurrency,
                config.limits.password_hash_priority,
            )?,
            ldap: config.ldap.clone().map(LdapSource::new).transpose()?,
            oidc: config
                .oidc
                .clone()
                .map(|c| oidc::Provider::new(c).map(Arc::new))
                .transpose()?,
        })
    }

    /// The OpenID provider, when users may sign in with it.
    pub fn provider(&self) -> Option<&oidc::Provider> {
        self.oidc
            .as_deref()
            .filter(|_| self.order.contains(&SourceKind::Oidc))
    }

    /// Does any source take a password (the login form)?
    pub fn takes_passwords(&self) -> bool {
        self.order
            .iter()
            .any(|s| matches!(s, SourceKind::Local | SourceKind::Ldap))
    }
}

/// The result of checking a password (throttling is the caller's).
pub enum Checked {
    Accepted(User),
    /// Refused; the reason is for the log only.
    Refused(&'static str),
}

impl SignIn {
    /// Check `password` for the canonical `username` (`None`: not a valid name).
    pub async fn check_password(
        &self,
        username: Option<&str>,
        password: Zeroizing<String>,
    ) -> Result<Checked, Error> {
        let local = self.order.contains(&SourceKind::Local);
        let Some(name) = username.filter(|_| !password.is_empty()) else {
            // Hash anyway, so that an invalid name or an empty password costs what a wrong
            // password does.
            if local {
                self.hasher.verify(password, None).await?;
            }
            return Ok(Checked::Refused(if username.is_none() {
                "invalid_name"
            } else {
                "empty_password"
            }));
        };
        let record = self.directory.credentials(name.to_owned()).await?;
        for source in &self.order {
            match source {
                SourceKind::Local => {
                    let Some(c) = record
                        .as_ref()
                        .filter(|c| c.user.source == directory::LOCAL)
                    else {
                        continue;
                    };
                    let verified = self
                        .hasher
                        .verify(password, Some(c.password_hash.clone()))
                        .await?;
                    return Ok(match (verified, c.user.disabled) {
                        (true, false) => Checked::Accepted(c.user.clone()),
                        (true, true) => Checked::Refused("disabled"),
                        (false, _) => Checked::Refused("bad_password"),
                    });
                }
                SourceKind::Ldap => {
                    let Some(source) = &self.ldap else { continue };
                    match source.authenticate(name, &password).await? {
                        BindOutcome::Unknown => continue,
                        BindOutcome::Ambiguous => {
                            tracing::warn!(
                                user = name,
                                "the LDAP user filter finds several entries; refused"
                            );
                            return Ok(Checked::Refused("ambiguous"));
                        }
                        BindOutcome::Refused => {
                            // Cost what an unknown name costs (directory search + one hash).
                            if local {
                                self.hasher.verify(password, None).await?;
                            }
                            return Ok(Checked::Refused("bad_password"));
                        }
                        BindOutcome::Accepted(found) => {
                            tracing::debug!(user = name, groups = ?found.groups, roles = ?found.roles, "ldap groups");
                            let external = ExternalUser {
                                source: ldap::SOURCE,
                                username: name.to_owned(),
                                external_id: found.dn,
                                id_is_stable: false,
                                roles: found.roles,
                            };
                            return self.provisioned(external).await;
                        }
                    }
                }
                // Not a password source: its users sign in through the button.
                SourceKind::Oidc => {}
            }
        }
        if local {
            self.hasher.verify(password, None).await?;
        }
        Ok(Checked::Refused("unknown_user"))
    }

    /// Record a user an external source vouched for, unless the name belongs to someone else.
    pub async fn provisioned(&self, external: ExternalUser) -> Result<Checked, Error> {
        let name = external.username.clone();
        let source = external.source;
        match self.directory.provision(external).await? {
            Provisioned::User(u) if u.disabled => Ok(Checked::Refused("disabled")),
            Provisioned::User(u) => Ok(Checked::Accepted(u)),
            Provisioned::Conflict { existing_source } => {
                tracing::warn!(
                    event = "source_conflict",
                    user = %name,
                    source,
                    existing_source = %existing_source,
                    "the name belongs to another user here; sign-in refused"
                );
                Ok(Checked::Refused("source_conflict"))
            }
        }
    }
}
