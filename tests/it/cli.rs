//! The command line: users, passwords on stdin only, config validation.

use crate::support::{
    Gateway, Options, PASSWORD, PostgresServer, TestResult, Upstream, output_text as text,
};

#[tokio::test]
async fn users_lifecycle() -> TestResult {
    let up = Upstream::start().await?;
    users_lifecycle_on(Options::new(&up.url)).await
}

/// The same CLI test with users, roles and session state in PostgreSQL.
#[tokio::test]
async fn users_lifecycle_on_postgres() -> TestResult {
    let pg = PostgresServer::start().await?;
    let up = Upstream::start().await?;
    users_lifecycle_on(Options::new(&up.url).env("DASHGATE_DATABASE_URL", &pg.url())).await
}

async fn users_lifecycle_on(opts: Options) -> TestResult {
    let gw = Gateway::start_with(opts, &[("alice", &["admin", "viewer"])]).await?;
    let out = gw.cli(&["users", "list"], None)?;
    assert!(out.status.success());
    assert!(
        text(&out).contains("alice\tenabled\tlocal\troles: admin, viewer"),
        "{}",
        text(&out)
    );

    let out = gw.cli(&["users", "show", "ALICE"], None)?;
    assert!(
        text(&out).contains("username: alice") && text(&out).contains("roles:    admin, viewer"),
        "{}",
        text(&out)
    );

    // Duplicate, bad names, short and missing passwords are refused with a message.
    let out = gw.cli(
        &["users", "add", "alice", "--password-stdin"],
        Some("another password\n"),
    )?;
    assert!(
        !out.status.success() && text(&out).contains("already exists"),
        "{}",
        text(&out)
    );
    let out = gw.cli(
        &["users", "add", "bad name", "--password-stdin"],
        Some("long enough pw\n"),
    )?;
    assert!(
        !out.status.success() && text(&out).contains("names are"),
        "{}",
        text(&out)
    );
    let out = gw.cli(
        &["users", "add", "bob", "--password-stdin"],
        Some("short\n"),
    )?;
    assert!(
        !out.status.success() && text(&out).contains("at least 8"),
        "{}",
        text(&out)
    );
    let out = gw.cli(&["users", "add", "bob"], Some("long enough pw\n"))?;
    assert!(
        !out.status.success() && text(&out).contains("--password-stdin"),
        "{}",
        text(&out)
    );
    let out = gw.cli(&["users", "show", "nobody"], None)?;
    assert!(
        !out.status.success() && text(&out).contains("no user named"),
        "{}",
        text(&out)
    );

    // A 64-character password with spaces works and is not truncated: one more char fails.
    let long = "a b c d e f g h ".repeat(4);
    assert_eq!(long.chars().count(), 64);
    let out = gw.cli(
        &["users", "add", "bob", "--password-stdin"],
        Some(&format!("{long}\n")),
    )?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(gw.try_login("bob", &long, "/").await?.0, 303);
    assert_eq!(gw.try_login("bob", &format!("{long}x"), "/").await?.0, 401);
    assert_eq!(gw.try_login("bob", &long[..63], "/").await?.0, 401);

    // passwd: the old password stops working, the new one works.
    let out = gw.cli(
        &["users", "passwd", "bob", "--password-stdin"],
        Some("a brand new password\r\n"),
    )?;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(gw.try_login("bob", &long, "/").await?.0, 401);
    assert_eq!(
        gw.try_login("bob", "a brand new password", "/").await?.0,
        303
    );

    // disable / enable / remove.
    assert!(gw.cli(&["users", "disable", "bob"], None)?.status.success());
    assert!(text(&gw.cli(&["users", "list"], None)?).contains("bob\tdisabled"));
    assert_eq!(
        gw.try_login("bob", "a brand new password", "/").await?.0,
        401
    );
    assert!(gw.cli(&["users", "enable", "bob"], None)?.status.success());
    assert_eq!(
        gw.try_login("bob", "a brand new password", "/").await?.0,
        303
    );
    assert!(gw.cli(&["users", "remove", "bob"], None)?.status.success());
    assert_eq!(
        gw.try_login("bob", "a brand new password", "/").await?.0,
        401
    );
    assert!(!text(&gw.cli(&["users", "list"], None)?).contains("bob"));
    // The password never reached the log.
    assert!(!gw.log().contains(PASSWORD) && !gw.log().contains("brand new"));
    Ok(())
}

#[tokio::test]
async fn check_config_names_bad_keys() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let cfg = gw.dir.path().join("bad.toml");
    std::fs::write(&cfg, "[token]\naccess_ttl = \"soon\"\n")?;
    let cfg_s = cfg.display().to_string();
    let out = gw.cli(&["check-config", "--config", &cfg_s], None)?;
    assert!(!out.status.success());
    assert!(text(&out).contains("token.access_ttl"), "{}", text(&out));

    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:1\"\nupstream = [\"http://127.0.0.1:2\"]\ncookie_secure = false\n",
    )?;
    let out = gw.cli(&["check-config", "--config", &cfg_s], None)?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("configuration OK")
            && text(&out).contains("warning: cookie_secure = false"),
        "{}",
        text(&out)
    );

    let out = gw.cli(
        &[
            "check-config",
            "--config",
            &cfg_s,
            "--cookie-secure",
            "perhaps",
        ],
        None,
    )?;
    assert!(
        !out.status.success()
            && text(&out).contains("cookie_secure")
            && text(&out).contains("flag"),
        "{}",
        text(&out)
    );

    let mut c = std::process::Command::new(crate::support::BIN);
    let out = c
        .args(["check-config", "--config", &cfg_s])
        .env("DASHGATE_TOKEN_LEEWAY", "1h")
        .output()?;
    assert!(
        !out.status.success()
            && text(&out).contains("token.leeway")
            && text(&out).contains("DASHGATE_TOKEN_LEEWAY"),
        "{}",
        text(&out)
    );

    // serve refuses to start without an upstream, naming the key.
    let out = gw.cli(&["serve", "--listen", "127.0.0.1:0"], None)?;
    assert!(
        !out.status.success() && text(&out).contains("upstream"),
        "{}",
        text(&out)
    );
    Ok(())
}

#[tokio::test]
async fn insecure_cookie_mode_is_warned_and_drops_prefix() -> TestResult {
    let up = Upstream::start().await?;
    let opts = crate::support::Options::new(&up.url).env("DASHGATE_COOKIE_SECURE", "false");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    assert!(gw.log().contains("cookie_secure = false"));
    let jar = gw.login("alice", PASSWORD).await?;
    assert!(
        jar.get("dashgate-access").is_some() && jar.get("dashgate-refresh").is_some(),
        "{jar:?}"
    );
    let r = crate::support::client()
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}
