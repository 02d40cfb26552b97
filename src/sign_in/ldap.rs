//! Password sign-in against an LDAP directory or Active Directory: bind as the service account,
//! find the user with the configured filter, read their groups (`memberOf` on the entry, or a
//! group search), then bind as the user with the password they gave. Over LDAPS or StartTLS;
//! every step under a deadline. A directory that cannot be reached is an outage (503), never a
//! wrong password.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use zeroize::Zeroizing;

use crate::config::LdapConfig;
use crate::error::Error;

/// The `source` recorded for users who sign in through LDAP.
pub const SOURCE: &str = crate::config::SourceKind::Ldap.name();

/// LDAP result codes that matter here (RFC 4511 4.1.9).
const INVALID_CREDENTIALS: u32 = 49;
const NO_SUCH_OBJECT: u32 = 32;
const BUSY: u32 = 51;
const UNAVAILABLE: u32 = 52;
const UNWILLING: u32 = 53;
const OTHER: u32 = 80;

/// What the directory said about a username and password.
#[derive(Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// The filter finds nobody: another source may know the name.
    Unknown,
    /// The filter finds more than one entry: refused (which one would it be?).
    Ambiguous,
    /// The user exists and the directory refused the bind (wrong password, and in Active
    /// Directory also disabled, locked or expired accounts).
    Refused,
    /// The user exists and the password is right.
    Accepted(LdapUser),
}

#[derive(Debug, PartialEq, Eq)]
pub struct LdapUser {
    pub dn: String,
    /// Group DNs, as the directory spelled them.
    pub groups: Vec<String>,
    /// Roles mapped from those groups, sorted.
    pub roles: Vec<String>,
}

/// The configured directory. Cheap to clone.
#[derive(Clone)]
pub struct LdapSource {
    config: Arc<LdapConfig>,
    tls: Arc<rustls::ClientConfig>,
}

fn outage(what: &str, e: impl std::fmt::Display) -> Error {
    Error::DirectoryUnavailable {
        service: SOURCE,
        detail: format!("{what}: {e}"),
    }
}

fn result_code(e: &LdapError) -> Option<u32> {
    match e {
        LdapError::LdapResult { result } => Some(result.rc),
        _ => None,
    }
}

impl LdapSource {
    pub fn new(config: LdapConfig) -> Result<LdapSource, Error> {
        let tls = crate::tls::client_config(config.ca_file.as_deref())
            .map_err(|e| Error::Internal(format!("ldap.ca_file: {e}")))?;
        let source = LdapSource {
            config: Arc::new(config),
            tls,
        };
        // A missing secret is a deployment mistake: say so at start, not at the first sign-in.
        if !source.config.bind_dn.is_empty() {
            source.bind_password().map_err(|e| match e {
                Error::DirectoryUnavailable { detail, .. } => Error::Internal(detail),
                other => other,
            })?;
        }
        Ok(source)
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Check `password` for `username` (already canonical). The password must not be empty: an
    /// LDAP simple bind with a DN and no password is an *unauthenticated* bind that servers
    /// answer with success (RFC 4513 5.1.2), so the caller refuses empty passwords first; this
    /// function refuses them again.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Zeroizing<String>,
    ) -> Result<BindOutcome, Error> {
        let c = &*self.config;
        let timeout = c.timeout;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(c.start_tls)
            .set_config(Arc::clone(&self.tls));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &c.url)
            .await
            .map_err(|e| outage("connect", e))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "ldap connection ended");
            }
        });
        let verdict = self.converse(&mut ldap, username, password, timeout).await;
        let _ = tokio::time::timeout(timeout, ldap.unbind()).await;
        driver.abort();
        verdict
    }

    async fn converse(
        &self,
        ldap: &mut ldap3::Ldap,
        username: &str,
        password: &Zeroizing<String>,
        timeout: Duration,
    ) -> Result<BindOutcome, Error> {
        let c = &*self.config;
        if !c.bind_dn.is_empty() {
            let secret = self.bind_password()?;
            let bound = ldap
                .with_timeout(timeout)
                .simple_bind(&c.bind_dn, &secret)
                .await
                .and_then(|r| r.success());
            if let Err(e) = bound {
                return Err(match result_code(&e) {
                    Some(INVALID_CREDENTIALS) => outage(
                        "the service account's bind was refused (check ldap.bind_dn and ldap.bind_password_file)",
                        e,
                    ),
                    _ => outage("service account bind", e),
                });
            }
        }

        let filter = c.user_filter.replace("{username}", &ldap_escape(username));
        let attrs: Vec<&str> = if c.group_base.is_some() {
            vec!["1.1"]
        } else {
            vec![c.group_attribute.as_str()]
        };
        let found = ldap
            .with_timeout(timeout)
            .search(&c.user_base, Scope::Subtree, &filter, attrs)
            .await
            .and_then(|r| r.success());
        let (entries, _) = match found {
            Ok(found) => found,
            Err(e) if result_code(&e) == Some(NO_SUCH_OBJECT) => {
                return Err(outage("ldap.user_base does not exist", e));
            }
            Err(e) => return Err(outage("user search", e)),
        };
        // Active Directory adds continuation references (other partitions) to the results.
        let mut entries: Vec<SearchEntry> = entries
            .into_iter()
            .filter(|e| !e.is_ref())
            .map(SearchEntry::construct)
            .collect();
        let entry = match entries.len() {
            0 => return Ok(BindOutcome::Unknown),
            1 => entries.remove(0),
            _ => return Ok(BindOutcome::Ambiguous),
        };
        if password.is_empty() {
            return Ok(BindOutcome::Refused);
        }

        let groups = match &c.group_base {
            None => entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&c.group_attribute))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            Some(base) => {
                let filter = c.group_filter.replace("{dn}", &ldap_escape(&entry.dn));
                let (found, _) = ldap
                    .with_timeout(timeout)
                    .search(base, Scope::Subtree, &filter, vec!["1.1"])
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| outage("group search", e))?;
                found
                    .into_iter()
                    .filter(|e| !e.is_ref())
                    .map(|e| SearchEntry::construct(e).dn)
                    .collect()
            }
        };

        let bound = ldap
            .with_timeout(timeout)
            .simple_bind(&entry.dn, password)
            .await
            .and_then(|r| r.success());
        match bound {
            Ok(_) => {}
            Err(e) => {
                return match result_code(&e) {
                    Some(INVALID_CREDENTIALS | UNWILLING) => {
                        tracing::debug!(error = %e, "ldap refused the user's bind");
                        Ok(BindOutcome::Refused)
                    }
                    Some(BUSY | UNAVAILABLE | OTHER) | None => Err(outage("user bind", e)),
                    Some(_) => {
                        tracing::info!(error = %e, "ldap refused the user's bind");
                        Ok(BindOutcome::Refused)
                    }
                };
            }
        }
        let roles = map_groups(&c.group_roles, &groups);
        Ok(BindOutcome::Accepted(LdapUser {
            dn: entry.dn,
            groups,
            roles,
        }))
    }

    fn bind_password(&self) -> Result<Zeroizing<String>, Error> {
        let path = &self.config.bind_password_file;
        let raw = std::fs::read_to_string(path).map_err(|e| {
            outage(
                &format!("cannot read ldap.bind_password_file {}", path.display()),
                e,
            )
        })?;
        let raw = Zeroizing::new(raw);
        Ok(Zeroizing::new(
            raw.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    }
}

/// Roles for a user in `groups`, from `(normalised group DN, roles)` pairs; sorted, unique.
pub fn map_groups(mapping: &[(String, Vec<String>)], groups: &[String]) -> Vec<String> {
    let groups: Vec<String> = groups
        .iter()
        .map(|g| crate::names::normalize_dn(g))
        .collect();
    let mut roles: Vec<String> = mapping
        .iter()
        .filter(|(dn, _)| groups.contains(dn))
        .flat_map(|(_, r)| r.iter().cloned())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::normalize_dn;

    #[test]
    fn dns_compare_in_one_spelling() {
        assert_eq!(
            normalize_dn("CN=Dash Admins, OU=Groups ,DC=corp,DC=example,DC=com"),
            "cn=dash admins,ou=groups,dc=corp,dc=example,dc=com"
        );
        // An escaped comma is part of the value, not a separator.
        assert_eq!(
            normalize_dn("cn=Doe\\, Jane ,ou=People"),
            "cn=doe\\, jane,ou=people"
        );
    }

    #[test]
    fn groups_map_to_roles() {
        let mapping = vec![
            (
                normalize_dn("cn=dash-admins,ou=groups,dc=example,dc=com"),
                vec!["admin".to_owned(), "viewer".to_owned()],
            ),
            (
                normalize_dn("cn=dash-viewers,ou=groups,dc=example,dc=com"),
                vec!["viewer".to_owned()],
            ),
        ];
        let groups = vec![
            "CN=dash-viewers,OU=groups,DC=example,DC=com".to_owned(),
            "cn=dash-admins, ou=groups, dc=example, dc=com".to_owned(),
            "cn=unmapped,ou=groups,dc=example,dc=com".to_owned(),
        ];
        assert_eq!(map_groups(&mapping, &groups), vec!["admin", "viewer"]);
        assert!(map_groups(&mapping, &[]).is_empty());
        // A group in another OU with the same CN is a different group.
        let other = vec!["cn=dash-admins,ou=contractors,dc=example,dc=com".to_owned()];
        assert!(map_groups(&mapping, &other).is_empty());
    }
}
