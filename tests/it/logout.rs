//! Logout: confirmation page, CSRF-checked POST, revocation of both tokens, cookie removal.

use crate::support::{
    ACCESS, CSRF, Gateway, PASSWORD, REFRESH, TestResult, Upstream, client, hidden_field,
    set_cookies,
};

#[tokio::test]
async fn logout_revokes_everything() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();

    let page = c
        .get(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    let html = page.text().await?;
    assert!(html.contains(r#"id="confirm-logout""#) && html.contains(r#"method="post""#));
    let token = hidden_field(&html, "csrf_token").ok_or("no token in logout form")?;
    // Still signed in: GET changed nothing.
    assert_eq!(gw.status("/x", &jar).await?, 200);

    // Without the token, or cross-site: refused, still signed in.
    let r = c
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .form(&[("x", "y")])
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let r = c
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", &token)])
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert_eq!(gw.status("/x", &jar).await?, 200);

    let r = c
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .form(&[("csrf_token", &token)])
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login");
    assert_eq!(r.headers()["clear-site-data"], "\"cache\", \"storage\"");
    let set = set_cookies(r.headers());
    for (name, http_only) in [(ACCESS, true), (REFRESH, true), (CSRF, false)] {
        let c = set
            .iter()
            .find(|c| c.starts_with(&format!("{name}=;")))
            .ok_or(format!("{name} not cleared"))?;
        assert!(
            c.contains("Max-Age=0")
                && c.contains("Path=/")
                && c.contains("SameSite=Lax")
                && c.contains("Secure")
        );
        assert_eq!(c.contains("HttpOnly"), http_only, "{c}");
    }
    // Replaying the old cookies fails: access alone, refresh alone, both.
    for jar in [jar.clone(), jar.without(REFRESH), jar.without(ACCESS)] {
        let r = c
            .get(gw.url("/x"))
            .header("cookie", jar.header())
            .header("accept", "text/html")
            .send()
            .await?;
        assert_eq!(r.status(), 302, "{jar:?}");
        assert!(r.headers()["location"].to_str()?.starts_with("/auth/login"));
    }
    Ok(())
}

#[tokio::test]
async fn logout_survives_restart_and_bearer_logout() -> TestResult {
    let up = Upstream::start().await?;
    let mut gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let (access, refresh) = gw.token_login("alice", PASSWORD).await?;
    let c = client();
    let r = c
        .post(gw.url("/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.get(gw.url("/x"))
            .bearer_auth(&access)
            .send()
            .await?
            .status(),
        401
    );
    // The blocklist is persisted: a restarted gateway still refuses the token.
    gw.restart(Some(&up.url)).await?;
    let ok = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let req = c.get(gw.url("/x")).bearer_auth(&access);
        async move { req.send().await.is_ok_and(|r| r.status() == 401) }
    })
    .await;
    assert!(ok);
    let r = c
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}
