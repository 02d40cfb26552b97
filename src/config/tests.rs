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
