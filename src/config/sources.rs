//! Configuration of the sign-in sources: local users, an LDAP / Active Directory server, an
//! OpenID Connect provider, and the order password sign-ins try them in.

use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::{ConfigError, Validator};
use crate::names::canonical_name;

/// A place users sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Users created with `dashgate users add`, passwords hashed here.
    Local,
    /// The `[ldap]` directory.
    Ldap,
    /// The `[oidc]` provider ("Sign in with …").
    Oidc,
}

impl SourceKind {
    /// Every kind of source.
    pub const ALL: [SourceKind; 3] = [SourceKind::Local, SourceKind::Ldap, SourceKind::Oidc];

    /// The name in `login.sources`, and the `source` stored with each user: the one spelling.
    pub const fn name(self) -> &'static str {
        match self {
            SourceKind::Local => "local",
            SourceKind::Ldap => "ldap",
            SourceKind::Oidc => "oidc",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]` (with `start_tls`).
    pub url: String,
    pub start_tls: bool,
    /// CA (PEM) of the directory's certificate, when it is not in the system trust store.
    pub ca_file: Option<PathBuf>,
    /// Service account that searches for users; empty: search anonymously.
    pub bind_dn: String,
    /// File holding the service account's password (read at every sign-in, so a rotated
    /// Kubernetes secret takes effect without a restart).
    pub bind_password_file: PathBuf,
    pub user_base: String,
    /// Search filter with `{username}` (RFC 4515-escaped before it is put in).
    pub user_filter: String,
    /// Attribute of the user entry listing group DNs (`memberOf`), used without `group_base`.
    pub group_attribute: String,
    /// When set, groups are found by searching here with `group_filter` instead.
    pub group_base: Option<String>,
    /// Group search filter with `{dn}`, the user's DN (escaped).
    pub group_filter: String,
    /// Normalised group DN → roles.
    pub group_roles: Vec<(String, Vec<String>)>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer identifier, exactly as its discovery document and tokens say it.
    pub issuer: String,
    pub client_id: String,
    /// File holding the client secret; `None`: a public client (PKCE only).
    pub client_secret_file: Option<PathBuf>,
    /// The absolute callback URL registered at the provider (`…/auth/oidc/callback`).
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// Shown on the button: "Sign in with {display_name}".
    pub display_name: String,
    /// Claim that becomes the dashgate username.
    pub username_claim: String,
    /// Claim holding the user's groups (a list of strings, or one string).
    pub roles_claim: String,
    /// Claim value (group) → roles.
    pub claim_roles: Vec<(String, Vec<String>)>,
    /// Also end the provider's session at logout (RP-initiated logout).
    pub end_session: bool,
    /// Where the provider sends the browser after its logout; default: the login page.
    pub post_logout_redirect_url: String,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl Validator<'_> {
    fn opt_path(&self, name: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(match self.str(name)? {
            p if p.trim().is_empty() => None,
            p => Some(PathBuf::from(p)),
        })
    }

    fn required(&self, name: &str, why: &str) -> Result<String, ConfigError> {
        let s = self.str(name)?;
        if s.trim().is_empty() {
            return Err(self.invalid(name, format!("required {why}")));
        }
        Ok(s.trim().to_owned())
    }

    /// A table of `key = ["role", …]` (or `key = "role"`); role names must be canonical.
    fn role_map(
        &self,
        name: &str,
        normalize_key: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let Some(value) = super::get(self.table, name) else {
            return Ok(Vec::new());
        };
        let Value::Table(table) = value else {
            return Err(self.invalid(
                name,
                format!("expected a table of \"GROUP\" = [\"role\", …], got {value}"),
            ));
        };
        let mut out = Vec::new();
        for (group, roles) in table {
            let roles = match roles {
                Value::String(r) => vec![r.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(r) => Ok(r.clone()),
                        other => Err(self.invalid(
                            name,
                            format!("roles of {group:?}: expected strings, got {other}"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                other => {
                    return Err(self.invalid(
                        name,
                        format!("roles of {group:?}: expected a list of role names, got {other}"),
                    ));
                }
            };
            let roles = roles
                .iter()
                .map(|r| {
                    canonical_name(r)
                        .map_err(|e| self.invalid(name, format!("role {r:?} of {group:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if group.trim().is_empty() {
                return Err(self.invalid(name, "a group name is empty".to_owned()));
            }
            out.push((normalize_key(group), roles));
        }
        Ok(out)
    }
}

/// Host of a URL is on this machine (plain `ldap://` / `http://` is tolerated there only).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn ldap(v: &Validator<'_>) -> Result<Option<LdapConfig>, ConfigError> {
    let url = v.str("ldap.url")?;
    if url.trim().is_empty() {
        return Ok(None);
    }
    let url = url.trim().to_owned();
    let start_tls = v.bool("ldap.start_tls")?;
    let parsed = url.parse::<http::Uri>().ok();
    let scheme = parsed.as_ref().and_then(|u| u.scheme_str()).unwrap_or("");
    let host = parsed.as_ref().and_then(|u| u.host()).unwrap_or("");
    match scheme {
        "ldaps" if start_tls => {
            return Err(v.invalid(
                "ldap.start_tls",
                "ldaps:// is already TLS; StartTLS is for ldap:// URLs".to_owned(),
            ));
        }
        "ldaps" if !host.is_empty() => {}
        "ldap" if !host.is_empty() && (start_tls || is_loopback(host)) => {}
        "ldap" if !host.is_empty() => {
            return Err(v.invalid(
                "ldap.url",
                format!(
                    "{url:?} would send passwords unencrypted: use ldaps://, or set ldap.start_tls = true"
                ),
            ));
        }
        _ => {
            return Err(v.invalid(
                "ldap.url",
                format!("expected ldaps://HOST[:PORT] or ldap://HOST[:PORT], got {url:?}"),
            ));
        }
    }
    let bind_dn = v.str("ldap.bind_dn")?.trim().to_owned();
    let bind_password_file = match v.opt_path("ldap.bind_password_file")? {
        Some(p) => p,
        None if bind_dn.is_empty() => PathBuf::new(),
        None => {
            return Err(v.invalid(
                "ldap.bind_password_file",
                "required with ldap.bind_dn (a file holding the service account's password)"
                    .to_owned(),
            ));
        }
    };
    let user_filter = v.str("ldap.user_filter")?;
    if !user_filter.contains("{username}") {
        return Err(v.invalid(
            "ldap.user_filter",
            format!("must contain {{username}}, got {user_filter:?}"),
        ));
    }
    let group_base = match v.str("ldap.group_base")? {
        b if b.trim().is_empty() => None,
        b => Some(b.trim().to_owned()),
    };
    let group_filter = v.str("ldap.group_filter")?;
    if group_base.is_some() && !group_filter.contains("{dn}") {
        return Err(v.invalid(
            "ldap.group_filter",
            format!("must contain {{dn}}, got {group_filter:?}"),
        ));
    }
    Ok(Some(LdapConfig {
        url,
        start_tls,
        ca_file: v.opt_path("ldap.ca_file")?,
        bind_dn,
        bind_password_file,
        user_base: v.required("ldap.user_base", "with ldap.url (where users are searched)")?,
        user_filter,
        group_attribute: match v.str("ldap.group_attribute")? {
            a if a.trim().is_empty() => "memberOf".to_owned(),
            a => a.trim().to_owned(),
        },
        group_base,
        group_filter,
        group_roles: v.role_map("ldap.group_roles", crate::names::normalize_dn)?,
        timeout: v.duration("ldap.timeout")?,
    }))
}

pub(super) fn oidc(
    v: &Validator<'_>,
    auth_prefix: &str,
) -> Result<Option<OidcConfig>, ConfigError> {
    let issuer = v.str("oidc.issuer")?;
    if issuer.trim().is_empty() {
        return Ok(None);
    }
    let issuer = issuer.trim().to_owned();
    let secure_url = |name: &str, raw: &str| -> Result<http::Uri, ConfigError> {
        let uri = raw.parse::<http::Uri>().map_err(|_| {
            v.invalid(
                name,
                format!("expected an absolute https:// URL, got {raw:?}"),
            )
        })?;
        let host = uri.host().unwrap_or("");
        match uri.scheme_str() {
            Some("https") if !host.is_empty() => Ok(uri),
            Some("http") if is_loopback(host) => Ok(uri),
            _ => Err(v.invalid(
                name,
                format!(
                    "expected an absolute https:// URL (http:// only on loopback), got {raw:?}"
                ),
            )),
        }
    };
    secure_url("oidc.issuer", &issuer)?;
    let redirect_url = v.required(
        "oidc.redirect_url",
        &format!(
            "with oidc.issuer: the callback URL registered at the provider, https://YOUR-HOST{auth_prefix}/oidc/callback"
        ),
    )?;
    let redirect = secure_url("oidc.redirect_url", &redirect_url)?;
    let callback = format!("{auth_prefix}/oidc/callback");
    if redirect.path() != callback || redirect.query().is_some() {
        return Err(v.invalid(
            "oidc.redirect_url",
            format!("its path must be {callback} (where dashgate receives the answer), got {redirect_url:?}"),
        ));
    }
    let origin = redirect_url
        .strip_suffix(&callback)
        .unwrap_or(&redirect_url)
        .to_owned();
    let post_logout_redirect_url = match v.str("oidc.post_logout_redirect_url")? {
        u if u.trim().is_empty() => format!("{origin}{auth_prefix}/login"),
        u => {
            secure_url("oidc.post_logout_redirect_url", u.trim())?;
            u.trim().to_owned()
        }
    };
    let mut scopes = v.str_list("oidc.scopes")?;
    if scopes.is_empty() {
        scopes = ["openid", "profile", "email"].map(str::to_owned).to_vec();
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(v.invalid("oidc.scopes", "must include \"openid\"".to_owned()));
    }
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(v.invalid("oidc.scopes", format!("not a valid scope: {bad:?}")));
    }
    let claim = |name: &str| -> Result<String, ConfigError> {
        match v.str(name)?.trim() {
            "" => Err(v.invalid(name, "must not be empty".to_owned())),
            c => Ok(c.to_owned()),
        }
    };
    Ok(Some(OidcConfig {
        issuer,
        client_id: v.required("oidc.client_id", "with oidc.issuer")?,
        client_secret_file: v.opt_path("oidc.client_secret_file")?,
        redirect_url,
        scopes,
        display_name: claim("oidc.display_name")?,
        username_claim: claim("oidc.username_claim")?,
        roles_claim: claim("oidc.roles_claim")?,
        claim_roles: v.role_map("oidc.claim_roles", str::to_owned)?,
        end_session: v.bool("oidc.end_session")?,
        post_logout_redirect_url,
        ca_file: v.opt_path("oidc.ca_file")?,
        timeout: v.duration("oidc.timeout")?,
    }))
}

/// `login.sources`, or by default every configured source: local, then LDAP, then OpenID.
pub(super) fn order(
    v: &Validator<'_>,
    ldap: bool,
    oidc: bool,
) -> Result<Vec<SourceKind>, ConfigError> {
    let listed = v.str_list("login.sources")?;
    if listed.is_empty() {
        let mut all = vec![SourceKind::Local];
        if ldap {
            all.push(SourceKind::Ldap);
        }
        if oidc {
            all.push(SourceKind::Oidc);
        }
        return Ok(all);
    }
    let mut out = Vec::new();
    for name in &listed {
        let name = name.trim();
        let kind = SourceKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                v.invalid(
                    "login.sources",
                    format!("expected \"local\", \"ldap\" or \"oidc\", got {name:?}"),
                )
            })?;
        let configured = match kind {
            SourceKind::Local => true,
            SourceKind::Ldap => ldap,
            SourceKind::Oidc => oidc,
        };
        if !configured {
            return Err(v.invalid(
                "login.sources",
                format!("{name:?} is listed but [{name}] is not configured"),
            ));
        }
        if out.contains(&kind) {
            return Err(v.invalid("login.sources", format!("{name:?} is listed twice")));
        }
        out.push(kind);
    }
    Ok(out)
}
