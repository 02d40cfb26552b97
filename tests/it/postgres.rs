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
        output_text(&out).contains("alice\tenabled\tlocal\troles: admin")
            && output_text(&out).contains("victor\tenabled\tlocal\troles: viewer"),
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

/// PostgreSQL alone (no Redis): it holds the session state too, for both session modes, and
/// replicas share it.
#[tokio::test]
async fn postgres_as_the_state_store() -> TestResult {
    let pg = PostgresServer::start().await?;
    let up = Upstream::start().await?;
    let keys = tempfile::tempdir()?;
    for mode in ["jwt", "server"] {
        let opts = || {
            Options::new(&up.url)
                .env("DASHGATE_DATABASE_URL", &pg.url())
                .env("DASHGATE_KEYS_DIR", &keys.path().display().to_string())
                .env("DASHGATE_SESSION_MODE", mode)
                .env("DASHGATE_SESSION_REFRESH_GRACE", "0s")
                .env("DASHGATE_LOGIN_FREE_ATTEMPTS", "2")
        };
        let r1 = Gateway::start_with(opts(), &[]).await?;
        let r2 = Gateway::start_with(opts(), &[]).await?;
        let name = format!("user-{mode}");
        if !output_text(&r1.cli(&["users", "list"], None)?).contains(&name) {
            r1.add_user(&name, PASSWORD, &[])?;
        }
        let jar = r1.login(&name, PASSWORD).await?;
        assert_eq!(r2.status("/x", &jar).await?, 200, "{mode}");
        if mode == "jwt" {
            // Refresh on the other replica (rotation in a PostgreSQL transaction).
            let r = client()
                .get(r2.url("/x"))
                .header("cookie", jar.without(crate::support::ACCESS).header())
                .send()
                .await?;
            assert_eq!(r.status(), 200);
        }
        // Logout on one replica: the other refuses the session (polled within about a second).
        let r = client()
            .post(r1.url("/auth/logout"))
            .header("cookie", jar.header())
            .header("x-csrftoken", jar.csrf())
            .header("accept", "application/json")
            .send()
            .await?;
        assert_eq!(r.status(), 200, "{mode}");
        let refused = crate::support::eventually(std::time::Duration::from_secs(5), || async {
            r2.status("/x", &jar).await.is_ok_and(|s| s == 401)
        })
        .await;
        assert!(refused, "{mode}: logout reached the other replica");
        // Failed-login counters are shared too.
        let bad = |g: &Gateway| {
            client()
                .post(g.url("/auth/login"))
                .json(&serde_json::json!({"username": name, "password": "wrong wrong"}))
                .send()
        };
        assert_eq!(bad(&r1).await?.status(), 401);
        assert_eq!(bad(&r2).await?.status(), 401);
        assert_eq!(bad(&r1).await?.status(), 429, "{mode}");
        assert_eq!(
            client().get(r1.url("/auth/readyz")).send().await?.status(),
            200
        );
    }
    Ok(())
}
