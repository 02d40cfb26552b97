//! Users, roles and permissions on PostgreSQL: same migrations, behaviour and CLI as SQLite.

use crate::support::{
    Gateway, Options, PASSWORD, PostgresServer, RedisServer, TestResult, Upstream, client,
    output_text,
};

#[tokio::test]
async fn directory_on_postgres() -> TestResult {
    let pg = PostgresServer::start().await?;
    let redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let opts = || {
        Options::new(&up.url)
            .env("DASHGATE_DATABASE_URL", &pg.url())
            .env("DASHGATE_STORE_URL", &redis.url())
            .policy("[[rule]]\npaths = [\"/admin\"]\nroles = [\"admin\"]\n")
    };
    let gw = Gateway::start_with(opts(), &[]).await?;
    // A second replica on the same database: migrations already applied, nothing breaks.
    let gw2 = Gateway::start_with(opts(), &[]).await?;
    let cli = |args: &[&str], stdin: Option<&str>| gw.cli(args, stdin);
    assert!(
        cli(&["roles", "add", "admin", "--perm", "salaries:read"], None)?
            .status
            .success()
    );
    gw.add_user("alice", PASSWORD, &["admin"])?;
    gw.add_user("victor", PASSWORD, &["viewer"])?;
    let out = cli(
        &["users", "add", "alice", "--password-stdin"],
        Some("another password\n"),
    )?;
    assert!(
        !out.status.success() && output_text(&out).contains("already exists"),
        "{}",
        output_text(&out)
    );
    let out = cli(&["users", "list"], None)?;
    assert!(
        output_text(&out).contains("alice\tenabled\troles: admin")
            && output_text(&out).contains("victor\tenabled\troles: viewer"),
        "{}",
        output_text(&out)
    );
    let out = cli(&["users", "show", "alice"], None)?;
    assert!(
        output_text(&out).contains("permissions: salaries:read"),
        "{}",
        output_text(&out)
    );
    let out = cli(&["roles", "list"], None)?;
    assert!(
        output_text(&out).contains("admin\tmembers: 1\tpermissions: salaries:read"),
        "{}",
        output_text(&out)
    );

    // Logins and rules work the same, on either replica.
    let alice = gw.login("alice", PASSWORD).await?;
    let victor = gw2.login("victor", PASSWORD).await?;
    let get = |g: &Gateway, jar: &crate::support::Jar| {
        client()
            .get(g.url("/admin"))
            .header("cookie", jar.header())
            .header("accept", "application/json")
            .send()
    };
    assert_eq!(get(&gw2, &alice).await?.status(), 200);
    assert_eq!(get(&gw, &victor).await?.status(), 403);
    let seen: serde_json::Value = get(&gw, &alice).await?.json().await?;
    assert_eq!(
        seen["headers"]["x-forwarded-permissions"][0],
        "salaries:read"
    );

    // passwd, grant/revoke, disable/enable, remove.
    assert!(
        cli(
            &["users", "passwd", "victor", "--password-stdin"],
            Some("a new password!\n")
        )?
        .status
        .success()
    );
    assert_eq!(gw.try_login("victor", PASSWORD, "/").await?.0, 401);
    assert_eq!(gw.try_login("victor", "a new password!", "/").await?.0, 303);
    assert!(
        cli(&["roles", "grant", "victor", "admin"], None)?
            .status
            .success()
    );
    assert!(
        output_text(&cli(&["users", "show", "victor"], None)?).contains("roles:    admin, viewer")
    );
    assert!(
        cli(&["roles", "revoke", "victor", "admin"], None)?
            .status
            .success()
    );
    assert!(cli(&["users", "disable", "victor"], None)?.status.success());
    assert_eq!(gw.try_login("victor", "a new password!", "/").await?.0, 401);
    assert!(cli(&["users", "enable", "victor"], None)?.status.success());
    assert_eq!(gw.try_login("victor", "a new password!", "/").await?.0, 303);
    assert!(cli(&["users", "remove", "victor"], None)?.status.success());
    assert!(!output_text(&cli(&["users", "list"], None)?).contains("victor"));
    assert_eq!(
        client().get(gw.url("/auth/readyz")).send().await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn postgres_needs_a_shared_store() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let out = gw.cli(
        &[
            "check-config",
            "--database",
            "postgres://dashgate@127.0.0.1:1/x",
        ],
        None,
    )?;
    assert!(
        !out.status.success() && output_text(&out).contains("config key `store`"),
        "{}",
        output_text(&out)
    );
    Ok(())
}
