//! The same behaviour in both session modes: JWT cookies (default) and server-side sessions
//! (`session.mode = "server"`, on the embedded store and on Redis).

use std::time::Duration;

use crate::support::{
    Gateway, Jar, Options, PASSWORD, RedisServer, TestResult, Upstream, client, eventually,
    hidden_field,
};

const POLICY: &str = "[[rule]]\npaths = [\"/admin\", \"/admin/**\"]\nroles = [\"admin\"]\n";

async fn xhr(
    gw: &Gateway,
    method: &str,
    path: &str,
    jar: &Jar,
    csrf: Option<&str>,
) -> Result<reqwest::Response, Box<dyn std::error::Error>> {
    // POSTs carry a minimal callback body, as dash-renderer sends them.
    let body = serde_json::json!({"output": "out.children", "outputs": {"id": "out", "property": "children"}, "inputs": []});
    let mut rb = client()
        .request(method.parse()?, gw.url(path))
        .header("cookie", jar.header())
        .header("accept", "application/json");
    if method == "POST" {
        rb = rb.json(&body);
    }
    if let Some(t) = csrf {
        rb = rb.header("x-csrftoken", t);
    }
    Ok(rb.send().await?)
}

async fn behaviour(mode: &str, redis: Option<&RedisServer>) -> TestResult {
    let up = Upstream::start().await?;
    let mut opts = Options::new(&up.url)
        .env("DASHGATE_SESSION_MODE", mode)
        .policy(POLICY);
    if let Some(r) = redis {
        opts = opts.env("DASHGATE_STORE_URL", &r.url());
    }
    let gw = Gateway::start_with(opts, &[("alice", &["admin"]), ("victor", &["viewer"])]).await?;
    let ctx = format!("mode {mode}, redis: {}", redis.is_some());

    // Not signed in: navigations go to the login page, XHRs get 401.
    let r = client()
        .get(gw.url("/page"))
        .header("accept", "text/html")
        .send()
        .await?;
    assert_eq!(r.status(), 302, "{ctx}");
    assert_eq!(
        xhr(&gw, "GET", "/_dash-layout", &Jar::default(), None)
            .await?
            .status(),
        401,
        "{ctx}"
    );

    // Signed in: the app sees who it is; cookies are HttpOnly except the CSRF one.
    let alice = gw.login("alice", PASSWORD).await?;
    let names: Vec<&String> = alice.0.keys().collect();
    if mode == "server" {
        assert!(
            alice.get("__Host-dashgate-session").is_some()
                && alice.get("__Host-dashgate-access").is_none(),
            "{ctx}: {names:?}"
        );
    } else {
        assert!(
            alice.get("__Host-dashgate-access").is_some(),
            "{ctx}: {names:?}"
        );
    }
    let seen: serde_json::Value = xhr(&gw, "GET", "/_dash-layout", &alice, None)
        .await?
        .json()
        .await?;
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "alice", "{ctx}");
    assert_eq!(seen["headers"]["x-forwarded-roles"][0], "admin", "{ctx}");
    let info: serde_json::Value = xhr(&gw, "GET", "/auth/userinfo", &alice, None)
        .await?
        .json()
        .await?;
    assert_eq!(info["sub"], "alice", "{ctx}");

    // CSRF on unsafe methods; roles decide paths.
    assert_eq!(
        xhr(&gw, "POST", "/_dash-update-component", &alice, None)
            .await?
            .status(),
        403,
        "{ctx}"
    );
    assert_eq!(
        xhr(
            &gw,
            "POST",
            "/_dash-update-component",
            &alice,
            Some(&alice.csrf())
        )
        .await?
        .status(),
        200,
        "{ctx}"
    );
    let victor = gw.login("victor", PASSWORD).await?;
    assert_eq!(
        xhr(&gw, "GET", "/admin", &victor, None).await?.status(),
        403,
        "{ctx}"
    );
    assert_eq!(
        xhr(&gw, "GET", "/admin", &alice, None).await?.status(),
        200,
        "{ctx}"
    );
    assert_eq!(
        xhr(&gw, "POST", "/x", &victor, Some(&alice.csrf()))
            .await?
            .status(),
        403,
        "{ctx}: another session's CSRF token"
    );

    // Logout through the confirmation form revokes the session; its cookies stop working.
    let page = client()
        .get(gw.url("/auth/logout"))
        .header("cookie", alice.header())
        .send()
        .await?;
    let token = hidden_field(&page.text().await?, "csrf_token").ok_or("no token")?;
    let r = client()
        .post(gw.url("/auth/logout"))
        .header("cookie", alice.header())
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await?;
    assert_eq!(r.status(), 303, "{ctx}");
    assert_eq!(
        xhr(&gw, "GET", "/_dash-layout", &alice, None)
            .await?
            .status(),
        401,
        "{ctx}: after logout"
    );

    // Disabling a user ends their sessions.
    assert_eq!(
        xhr(&gw, "GET", "/x", &victor, None).await?.status(),
        200,
        "{ctx}"
    );
    assert!(
        gw.cli(&["users", "disable", "victor"], None)?
            .status
            .success()
    );
    let ended = eventually(Duration::from_secs(5), || async {
        xhr(&gw, "GET", "/x", &victor, None)
            .await
            .is_ok_and(|r| r.status() == 401)
    })
    .await;
    assert!(ended, "{ctx}: disabled user refused");
    Ok(())
}

#[tokio::test]
async fn jwt_mode() -> TestResult {
    behaviour("jwt", None).await
}

#[tokio::test]
async fn server_mode() -> TestResult {
    behaviour("server", None).await
}

#[tokio::test]
async fn server_mode_on_redis() -> TestResult {
    let redis = RedisServer::start().await?;
    behaviour("server", Some(&redis)).await
}

#[tokio::test]
async fn server_sessions_end_at_once_and_time_out() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .env("DASHGATE_SESSION_MODE", "server")
        .env("DASHGATE_SESSION_REFRESH_IDLE_TTL", "60s");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    assert_eq!(gw.status("/x", &jar).await?, 200);
    // Instant: the very next request after `users disable` is refused, no propagation delay.
    assert!(
        gw.cli(&["users", "disable", "alice"], None)?
            .status
            .success()
    );
    assert_eq!(gw.status("/x", &jar).await?, 401);
    // A garbage or foreign session id is just "not signed in".
    for bad in ["x", "dgr_AAAA", &"A".repeat(5000)] {
        assert_eq!(
            gw.status("/x", &Jar::default().with("__Host-dashgate-session", bad))
                .await?,
            401,
            "{bad:.20}"
        );
    }
    Ok(())
}
