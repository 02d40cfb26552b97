//! Password sign-ins through the configured sources, in their order (`login.sources`): the
//! first source that knows the name decides; a wrong password there is final (no falling
//! through to a weaker source). A name known to an external source but held locally by
//! someone of another source is refused, so a directory account can never take over a local
//! one (or the other way round).

use zeroize::Zeroizing;

use crate::config::SourceKind;
use crate::directory::ldap::{self, Verdict};
use crate::directory::{self, ExternalUser, Provisioned, User};
use crate::error::Error;
use crate::state::Gateway;

/// The result of checking a password (throttling is the caller's).
pub enum Checked {
    Accepted(User),
    /// Refused; the reason is for the log only.
    Refused(&'static str),
}

/// Check `password` for the canonical `username` (`None`: not a valid name).
pub async fn check(
    gw: &Gateway,
    username: Option<&str>,
    password: Zeroizing<String>,
) -> Result<Checked, Error> {
    let local = gw.config.sources.contains(&SourceKind::Local);
    let Some(name) = username.filter(|_| !password.is_empty()) else {
        // Hash anyway, so that an invalid name or an empty password costs what a wrong
        // password does.
        if local {
            gw.hasher.verify(password, None).await?;
        }
        return Ok(Checked::Refused(if username.is_none() {
            "invalid_name"
        } else {
            "empty_password"
        }));
    };
    let record = gw.directory.credentials(name.to_owned()).await?;
    for source in &gw.config.sources {
        match source {
            SourceKind::Local => {
                let Some(c) = record
                    .as_ref()
                    .filter(|c| c.user.source == directory::LOCAL)
                else {
                    continue;
                };
                let verified = gw
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
                let Some(source) = &gw.ldap else { continue };
                match source.authenticate(name, &password).await? {
                    Verdict::Unknown => continue,
                    Verdict::Ambiguous => {
                        tracing::warn!(
                            user = name,
                            "the LDAP user filter finds several entries; refused"
                        );
                        return Ok(Checked::Refused("ambiguous"));
                    }
                    Verdict::Refused => {
                        // Cost what an unknown name costs (directory search + one hash).
                        if local {
                            gw.hasher.verify(password, None).await?;
                        }
                        return Ok(Checked::Refused("bad_password"));
                    }
                    Verdict::Accepted(found) => {
                        tracing::debug!(user = name, groups = ?found.groups, roles = ?found.roles, "ldap groups");
                        let external = ExternalUser {
                            source: ldap::SOURCE,
                            username: name.to_owned(),
                            external_id: found.dn,
                            id_is_stable: false,
                            roles: found.roles,
                        };
                        return provisioned(gw, external).await;
                    }
                }
            }
            // Not a password source: its users sign in through the button.
            SourceKind::Oidc => {}
        }
    }
    if local {
        gw.hasher.verify(password, None).await?;
    }
    Ok(Checked::Refused("unknown_user"))
}

/// Record a user an external source vouched for, unless the name belongs to someone else.
pub async fn provisioned(gw: &Gateway, external: ExternalUser) -> Result<Checked, Error> {
    let name = external.username.clone();
    let source = external.source;
    match gw.directory.provision(external).await? {
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
