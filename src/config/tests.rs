//! Unit tests of the configuration: layering, bounds, defaults, and that the README and
//! the code agree with [`KEYS`].

use super::*;
use std::collections::HashMap;

fn load(
    file: Option<&str>,
    env: &[(&str, &str)],
    flags: &[(&'static str, &str)],
) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir()
        .map_err(|e| ConfigError::Missing(Box::leak(e.to_string().into_boxed_str())))?;
    let path = dir.path().join("dashgate.toml");
    let mut sources = Sources::default();
    if let Some(text) = file {
        std::fs::write(&path, text).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        sources.file = Some(path);
    }
    sources.flags = flags.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::load(&sources, |k| env.get(k).cloned())
}

#[test]
fn defaults_are_safe() -> Result<(), ConfigError> {
    let c = load(None, &[], &[])?;
    assert!(c.cookie_secure);
    assert_eq!(c.token.access_ttl, Duration::from_secs(900));
    assert_eq!(c.listen.to_string(), "127.0.0.1:4180");
    assert_eq!(c.auth_prefix, "/auth");
    assert!(c.warnings().is_empty());
    Ok(())
}

#[test]
fn flags_beat_env_beat_file() -> Result<(), ConfigError> {
    let file = "listen = \"127.0.0.1:1\"\ncookie_secure = true\n[token]\naccess_ttl = \"5m\"\n";
    let c = load(
        Some(file),
        &[
            ("DASHGATE_LISTEN", "127.0.0.1:2"),
            ("DASHGATE_TOKEN_ACCESS_TTL", "7m"),
        ],
        &[],
    )?;
    assert_eq!(c.listen.port(), 2);
    assert_eq!(c.token.access_ttl, Duration::from_secs(420));
    let c = load(
        Some(file),
        &[
            ("DASHGATE_LISTEN", "127.0.0.1:2"),
            ("DASHGATE_COOKIE_SECURE", "false"),
        ],
        &[("listen", "127.0.0.1:3")],
    )?;
    assert_eq!(c.listen.port(), 3);
    assert!(!c.cookie_secure);
    assert_eq!(c.warnings().len(), 1);
    Ok(())
}

#[test]
fn errors_name_the_key_and_origin() {
    let msg = |r: Result<Config, ConfigError>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let m = msg(load(Some("[token]\naccess_ttl = \"forever\"\n"), &[], &[]));
    assert!(m.contains("token.access_ttl") && m.contains("file"), "{m}");
    let m = msg(load(None, &[("DASHGATE_COOKIE_SECURE", "maybe")], &[]));
    assert!(
        m.contains("cookie_secure") && m.contains("DASHGATE_COOKIE_SECURE"),
        "{m}"
    );
    let m = msg(load(Some("cookie_secur = false\n"), &[], &[]));
    assert!(m.contains("unknown config key `cookie_secur`"), "{m}");
    let m = msg(load(Some("[token]\nissuer = \"x\"\nnope = 1\n"), &[], &[]));
    assert!(m.contains("token.nope"), "{m}");
    let m = msg(load(None, &[], &[("upstream", "ftp://x")]));
    assert!(m.contains("upstream") && m.contains("flag"), "{m}");
    let m = msg(load(
        None,
        &[("DASHGATE_LIMITS_MAX_HEADER_BYTES", "10")],
        &[],
    ));
    assert!(
        m.contains("limits.max_header_bytes") && m.contains("between"),
        "{m}"
    );
    let m = msg(load(Some("listen = 5\n"), &[], &[]));
    assert!(
        m.contains("listen") && m.contains("expected a string"),
        "{m}"
    );
    let m = msg(load(Some("listen = \n"), &[], &[]));
    assert!(m.contains("config file"), "{m}");
    let m = msg(load(None, &[("DASHGATE_AUTH_PREFIX", "/a/../b")], &[]));
    assert!(m.contains("auth_prefix"), "{m}");
    let m = msg(load(
        None,
        &[("DASHGATE_SESSION_REFRESH_IDLE_TTL", "30d")],
        &[],
    ));
    assert!(m.contains("refresh_idle_ttl"), "{m}");
}

#[test]
fn upstream_list_from_env_and_file() -> Result<(), ConfigError> {
    let c = load(
        None,
        &[(
            "DASHGATE_UPSTREAM",
            "http://127.0.0.1:8050, http://127.0.0.1:8051",
        )],
        &[],
    )?;
    assert_eq!(c.upstreams.len(), 2);
    let c = load(Some("upstream = [\"http://a:1\"]\n"), &[], &[])?;
    assert_eq!(c.upstreams.len(), 1);
    assert!(c.require_upstream().is_ok());
    let c = load(None, &[], &[])?;
    assert!(c.require_upstream().is_err());
    Ok(())
}

#[test]
fn urls_are_redacted_for_messages() {
    assert_eq!(
        redact("postgres://user:secret@db:5432/x"),
        "postgres://***@db:5432/x"
    );
    assert_eq!(
        redact("redis://:secret@cache:6379/0"),
        "redis://***@cache:6379/0"
    );
    assert_eq!(redact("redis://cache:6379"), "redis://cache:6379");
    let m = load(
        None,
        &[("DASHGATE_STORE_URL", "memcached://u:secret@h")],
        &[],
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(m.contains("store") && !m.contains("secret"), "{m}");
}

const AD: &str = r#"
[ldap]
url = "ldaps://dc1.corp.example.com"
bind_dn = "CN=svc-dashgate,OU=Service Accounts,DC=corp,DC=example,DC=com"
bind_password_file = "/run/secrets/ldap-bind-password"
user_base = "DC=corp,DC=example,DC=com"
user_filter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))"

[ldap.group_roles]
"CN=Dash Admins, OU=Groups, DC=corp, DC=example, DC=com" = ["admin", "viewer"]
"CN=Dash Viewers,OU=Groups,DC=corp,DC=example,DC=com" = "viewer"
"#;

#[test]
fn ldap_source_from_file_and_env() -> Result<(), ConfigError> {
    let c = load(Some(AD), &[], &[])?;
    let ldap = c.ldap.as_ref().ok_or(ConfigError::Missing("ldap"))?;
    assert_eq!(ldap.group_attribute, "memberOf");
    assert_eq!(ldap.timeout, Duration::from_secs(5));
    assert_eq!(
        ldap.group_roles,
        vec![
            (
                "cn=dash admins,ou=groups,dc=corp,dc=example,dc=com".to_owned(),
                vec!["admin".to_owned(), "viewer".to_owned()]
            ),
            (
                "cn=dash viewers,ou=groups,dc=corp,dc=example,dc=com".to_owned(),
                vec!["viewer".to_owned()]
            ),
        ]
    );
    // Configured sources are tried local first by default.
    assert_eq!(c.sources, vec![SourceKind::Local, SourceKind::Ldap]);
    // The mapping can come from the environment, as JSON.
    let c = load(
        Some(AD),
        &[
            ("DASHGATE_LDAP_GROUP_ROLES", r#"{"cn=ops,dc=x": ["ops"]}"#),
            ("DASHGATE_LOGIN_SOURCES", "ldap,local"),
        ],
        &[],
    )?;
    let ldap = c.ldap.as_ref().ok_or(ConfigError::Missing("ldap"))?;
    assert_eq!(
        ldap.group_roles,
        vec![("cn=ops,dc=x".to_owned(), vec!["ops".to_owned()])]
    );
    assert_eq!(c.sources, vec![SourceKind::Ldap, SourceKind::Local]);
    Ok(())
}

/// `key` is named in the error, with a message containing `says`.
fn refused(file: &str, env: &[(&str, &str)], key: &str, says: &str) {
    match load(Some(file), env, &[]) {
        Err(ConfigError::Invalid {
            key: k, message, ..
        }) => {
            assert_eq!(k, key, "{message}");
            assert!(message.contains(says), "{key}: {message}");
        }
        other => assert!(
            matches!(other, Err(ConfigError::Invalid { .. })),
            "{key}: expected a refusal, got {other:?}"
        ),
    }
}

#[test]
fn ldap_mistakes_are_named() {
    let plain = AD.replace("ldaps://dc1", "ldap://dc1");
    refused(&plain, &[], "ldap.url", "unencrypted");
    refused(
        &AD.replace("ldaps://dc1.corp.example.com", "https://dc1"),
        &[],
        "ldap.url",
        "expected ldaps://",
    );
    refused(
        AD,
        &[("DASHGATE_LDAP_START_TLS", "true")],
        "ldap.start_tls",
        "already TLS",
    );
    refused(
        &AD.replace("{username}", "jdoe"),
        &[],
        "ldap.user_filter",
        "{username}",
    );
    refused(
        &AD.replace(
            "bind_password_file = \"/run/secrets/ldap-bind-password\"\n",
            "",
        ),
        &[],
        "ldap.bind_password_file",
        "required",
    );
    refused(
        &AD.replace("\"viewer\"\n", "\"Viewer Role!\"\n"),
        &[],
        "ldap.group_roles",
        "Viewer Role!",
    );
    refused(
        AD,
        &[("DASHGATE_LDAP_GROUP_ROLES", "not json")],
        "ldap.group_roles",
        "JSON object",
    );
    refused(
        AD,
        &[("DASHGATE_LOGIN_SOURCES", "local,oidc")],
        "login.sources",
        "not configured",
    );
    refused(
        AD,
        &[("DASHGATE_LOGIN_SOURCES", "ldap,ldap")],
        "login.sources",
        "twice",
    );
    // StartTLS over ldap:// is fine, and plain ldap:// to this machine (tests, a sidecar).
    assert!(load(Some(&plain), &[("DASHGATE_LDAP_START_TLS", "true")], &[]).is_ok());
    let local = AD.replace("ldaps://dc1.corp.example.com", "ldap://127.0.0.1:3389");
    assert!(load(Some(&local), &[], &[]).is_ok());
}

const OIDC: &str = r#"
[oidc]
issuer = "https://login.example.com/realms/corp"
client_id = "dashgate"
client_secret_file = "/run/secrets/oidc-client-secret"
redirect_url = "https://dash.example.com/auth/oidc/callback"
display_name = "Corp SSO"

[oidc.claim_roles]
"dash-admins" = ["admin"]
"#;

#[test]
fn oidc_provider_from_file() -> Result<(), ConfigError> {
    let c = load(Some(OIDC), &[], &[])?;
    let o = c.oidc.as_ref().ok_or(ConfigError::Missing("oidc"))?;
    assert_eq!(o.scopes, vec!["openid", "profile", "email"]);
    assert_eq!(o.username_claim, "preferred_username");
    assert_eq!(o.roles_claim, "groups");
    assert_eq!(
        o.post_logout_redirect_url,
        "https://dash.example.com/auth/login"
    );
    assert_eq!(
        o.claim_roles,
        vec![("dash-admins".to_owned(), vec!["admin".to_owned()])]
    );
    assert!(!o.end_session);
    assert_eq!(c.sources, vec![SourceKind::Local, SourceKind::Oidc]);
    // Only the button: no password form.
    let c = load(Some(OIDC), &[("DASHGATE_LOGIN_SOURCES", "oidc")], &[])?;
    assert_eq!(c.sources, vec![SourceKind::Oidc]);
    Ok(())
}

#[test]
fn oidc_mistakes_are_named() {
    refused(
        &OIDC.replace("https://login", "http://login"),
        &[],
        "oidc.issuer",
        "https://",
    );
    refused(
        &OIDC.replace("/auth/oidc/callback", "/callback"),
        &[],
        "oidc.redirect_url",
        "/auth/oidc/callback",
    );
    refused(
        OIDC,
        &[("DASHGATE_AUTH_PREFIX", "/sso")],
        "oidc.redirect_url",
        "/sso/oidc/callback",
    );
    refused(
        OIDC,
        &[("DASHGATE_OIDC_SCOPES", "profile,email")],
        "oidc.scopes",
        "openid",
    );
    refused(
        &OIDC.replace("client_id = \"dashgate\"\n", ""),
        &[],
        "oidc.client_id",
        "required",
    );
    refused(
        &OIDC.replace(
            "redirect_url = \"https://dash.example.com/auth/oidc/callback\"\n",
            "",
        ),
        &[],
        "oidc.redirect_url",
        "required",
    );
    // A provider on this machine may speak plain HTTP (development, the tests).
    let local = OIDC
        .replace("https://login.example.com", "http://127.0.0.1:9000")
        .replace("https://dash.example.com", "http://localhost:4180");
    assert!(load(Some(&local), &[], &[]).is_ok());
}

/// How the README writes a key's bounds: `(30s–1d)`, `(1–256)`.
fn bounds_text(kind: Kind) -> Option<String> {
    fn duration(s: u64) -> String {
        match s {
            0 => "0s".to_owned(),
            s if s % DAY == 0 => format!("{}d", s / DAY),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
    match kind {
        Kind::Int(lo, hi) => Some(format!("({lo}–{hi})")),
        Kind::Duration(lo, hi) => Some(format!("({}–{})", duration(lo), duration(hi))),
        _ => None,
    }
}

/// Every key is in the README, and every bound a key has is written on a line that names it
/// (in the configuration table as `` `key` ``, or as `leaf =` or `[key]` in the LDAP/OpenID
/// examples).
#[test]
fn readme_documents_every_key_and_its_bounds() {
    let readme = include_str!("../../README.md");
    let mut missing = Vec::new();
    for k in KEYS {
        let leaf = k.name.rsplit('.').next().unwrap_or(k.name);
        let in_example = k.name.starts_with("ldap.") || k.name.starts_with("oidc.");
        let names = |line: &str| {
            let setting = line.trim_start().trim_start_matches("# ");
            line.contains(&format!("`{}`", k.name))
                || (in_example
                    && (setting.starts_with(&format!("{leaf} ="))
                        || setting.starts_with(&format!("[{}]", k.name))))
        };
        let lines: Vec<&str> = readme.lines().filter(|l| names(l)).collect();
        if lines.is_empty() {
            missing.push(format!("{}: not in the README", k.name));
            continue;
        }
        if let Some(bounds) = bounds_text(k.kind) {
            if !lines.iter().any(|l| l.contains(&bounds)) {
                missing.push(format!("{}: bounds {bounds} not on its line", k.name));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn revocation_horizons() -> Result<(), ConfigError> {
    let c = load(None, &[("DASHGATE_TOKEN_ACCESS_TTL", "10m")], &[])?;
    // 10 minutes, the 30 s default leeway and a second.
    assert_eq!(c.token.revocation_horizon(1000), 1000 + 600 + 30 + 1);
    // For any configuration: the longest access token (1 day) and leeway (5 minutes) the
    // bounds allow.
    assert_eq!(
        TokenConfig::revocation_horizon_for_any(1000),
        1000 + 86_400 + 300 + 1
    );
    Ok(())
}

/// The names the configuration code reads: the first argument of every reader call in
/// `config.rs` and `config/sources.rs`.
fn names_read() -> Vec<String> {
    const READERS: &[&str] = &[
        "v.str(",
        "v.bool(",
        "v.int(",
        "v.duration(",
        "v.str_list(",
        "v.opt_path(",
        "v.required(",
        "v.role_map(",
        "v.invalid(",
        "non_empty(",
        "claim(",
        "secure_url(",
    ];
    let code = [include_str!("../config.rs"), include_str!("sources.rs")];
    let mut names = Vec::new();
    for text in code {
        for reader in READERS {
            for (at, _) in text.match_indices(reader) {
                let rest = text[at + reader.len()..].trim_start();
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names
}

/// A misspelt key name in the code that reads the configuration fails here, whichever branch
/// reads it (at run time the reader refuses an undeclared name too).
#[test]
fn every_name_the_code_reads_is_declared() {
    let names = names_read();
    assert!(
        names.len() > 80,
        "the scan finds the readers: {}",
        names.len()
    );
    let undeclared: Vec<&String> = names
        .iter()
        .filter(|n| !KEYS.iter().any(|k| k.name == n.as_str()))
        .collect();
    assert!(
        undeclared.is_empty(),
        "read but not declared: {undeclared:?}"
    );
    let unread: Vec<&str> = KEYS
        .iter()
        .map(|k| k.name)
        .filter(|k| !names.iter().any(|n| n == k))
        .collect();
    assert!(unread.is_empty(), "declared but never read: {unread:?}");
}

#[test]
fn reading_an_undeclared_key_is_refused() {
    let table = Table::new();
    let origin = |_: &str| "default".to_owned();
    let v = Validator {
        table: &table,
        origin_of: &origin,
    };
    assert!(v.str("token.isuser").is_err());
    assert!(v.bool("cookie_secur").is_err());
    assert!(v.duration("token.access_tl").is_err());
}

/// Every declared default is a value its key accepts, within its bounds, and the README's
/// configuration table shows it.
#[test]
fn defaults_are_declared_valid_and_documented() {
    let table = Table::new();
    let origin = |_: &str| "default".to_owned();
    let v = Validator {
        table: &table,
        origin_of: &origin,
    };
    let readme = include_str!("../../README.md");
    let mut wrong = Vec::new();
    for k in KEYS {
        let shown = match (k.kind, k.default) {
            (Kind::Str, Fallback::Text(t)) => {
                (v.str(k.name).ok().as_deref() == Some(t)).then(|| t.to_owned())
            }
            (Kind::Duration(..), Fallback::Text(t)) => {
                v.duration(k.name).ok().map(|_| t.to_owned())
            }
            (Kind::Bool, Fallback::Bool(b)) => {
                (v.bool(k.name).ok() == Some(b)).then(|| b.to_string())
            }
            (Kind::Int(lo, hi), Fallback::Int(n)) => {
                (v.int(k.name).ok() == Some(n) && (lo..=hi).contains(&n)).then(|| n.to_string())
            }
            (Kind::Int(lo, hi), Fallback::HalfTheCores) => {
                let n = v.int(k.name).unwrap_or(0);
                if !(lo..=hi).contains(&n) {
                    wrong.push(format!("{}: {n} out of bounds", k.name));
                }
                continue;
            }
            (_, Fallback::Unset) => continue,
            (kind, default) => {
                wrong.push(format!(
                    "{}: a {default:?} default for a {kind:?} key",
                    k.name
                ));
                continue;
            }
        };
        let Some(shown) = shown else {
            wrong.push(format!("{}: the default is refused", k.name));
            continue;
        };
        let row = readme.lines().filter(|l| l.starts_with('|')).find(|l| {
            l.split(" | ")
                .next()
                .is_some_and(|first| first.contains(&format!("`{}`", k.name)))
        });
        match row.and_then(|r| r.split(" | ").nth(2)) {
            Some(cell) if cell.starts_with(&format!("`{shown}`")) => {}
            Some(cell) => wrong.push(format!("{}: README shows {cell:?}, not `{shown}`", k.name)),
            // LDAP and OpenID keys are documented in the README's examples.
            None if k.name.starts_with("ldap.") || k.name.starts_with("oidc.") => {}
            None => wrong.push(format!("{}: no row in the README's table", k.name)),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
