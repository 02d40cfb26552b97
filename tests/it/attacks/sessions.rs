//! Session lifecycle attacks (OWASP session management cheat sheet, ASVS V3/V7, RFC 9700
//! 4.14): a stolen refresh token is detected when both parties use it, a logged-out session
//! cannot be replayed, disabling a user or changing a password ends sessions at once, and a
//! session planted before login is never the one the user gets.

use crate::support::{
    ACCESS, CSRF, Gateway, Options, PASSWORD, TestResult, Upstream, client, eventually,
    hidden_field,
};

#[tokio::test]
async fn refresh_reuse_revokes_the_family() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_SESSION_REFRESH_GRACE", "0s");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let old = gw.login("alice", PASSWORD).await?;
    let r = gw.xhr("/x", &old.without(ACCESS)).await?;
    let mut current = old.without(ACCESS);
    current.update(r.headers());
    assert_eq!(gw.xhr("/x", &current).await?.status(), 200);
    // Grace is 0 s: wait (polling) until the rotation is more than a second old, then replay.
    let replayed = eventually(std::time::Duration::from_secs(5), || {
        let jar = old.without(ACCESS);
        let gw = &gw;
        async move {
            let r = gw.xhr("/x", &jar).await;
            r.is_ok_and(|r| r.status() == 401)
        }
    })
    .await;
    assert!(replayed, "replaying a rotated refresh token is refused");
    // The whole family is dead: the current refresh token and the current access token.
    assert_eq!(gw.xhr("/x", &current.without(ACCESS)).await?.status(), 401);
    assert_eq!(gw.xhr("/x", &current).await?.status(), 401);
    assert!(gw.log().contains("refresh_reuse"));
    // A fresh login works.
    assert_eq!(
        gw.xhr("/x", &gw.login("alice", PASSWORD).await?)
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn disabled_user() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    assert_eq!(gw.status("/x", &jar).await?, 200);
    assert!(
        gw.cli(&["users", "disable", "alice"], None)?
            .status
            .success()
    );
    let refused = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let req = c.get(gw.url("/x")).header("cookie", jar.header());
        async move { req.send().await.is_ok_and(|r| r.status() == 401) }
    })
    .await;
    assert!(refused, "access cookie refused after users disable");
    assert_eq!(gw.status("/x", &jar.without(ACCESS)).await?, 401);
    // Logging in is refused with the same answer as a wrong password.
    let (status, _) = gw.try_login("alice", PASSWORD, "/").await?;
    assert_eq!(status, 401);
    // Re-enabled at once, the user can sign in and use the new session straight away: the
    // revocation named the old sessions, not "everything issued this second".
    assert!(
        gw.cli(&["users", "enable", "alice"], None)?
            .status
            .success()
    );
    let fresh = gw.login("alice", PASSWORD).await?;
    assert_eq!(gw.status("/x", &fresh).await?, 200);
    Ok(())
}

#[tokio::test]
async fn admin_password_reset_ends_every_session() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let c = client();
    let browser = gw.login("alice", PASSWORD).await?;
    let (laptop, _) = gw.token_login("alice", PASSWORD).await?;
    assert_eq!(gw.status("/x", &browser).await?, 200);
    assert!(
        gw.cli(
            &["users", "passwd", "alice", "--password-stdin"],
            Some("another long password\n")
        )?
        .status
        .success()
    );
    let after = gw.login("alice", "another long password").await?;
    assert_eq!(gw.status("/x", &after).await?, 200);
    let ended = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let cookie = c.get(gw.url("/x")).header("cookie", browser.header());
        let bearer = c.get(gw.url("/x")).bearer_auth(&laptop);
        async move {
            let a = cookie.send().await.is_ok_and(|r| r.status() == 401);
            let b = bearer.send().await.is_ok_and(|r| r.status() == 401);
            a && b
        }
    })
    .await;
    assert!(
        ended,
        "a password change ends the sessions that existed before it"
    );
    assert_eq!(
        gw.status("/x", &browser.without(ACCESS)).await?,
        401,
        "refresh too"
    );
    assert_eq!(gw.status("/x", &after).await?, 200, "the new session lives");
    let (status, _) = gw.try_login("alice", PASSWORD, "/").await?;
    assert_eq!(status, 401, "the old password is refused");
    Ok(())
}

#[tokio::test]
async fn session_fixation_pre_login_cookies_stop_working() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let before = gw.login("alice", PASSWORD).await?;
    let c = client();
    let (mut jar, token) = gw.login_form(&before).await?;
    let r = c
        .post(gw.url("/auth/login"))
        .header("cookie", jar.header())
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    jar.update(r.headers());
    assert_ne!(jar.get(ACCESS), before.get(ACCESS));
    assert_ne!(jar.get(CSRF), before.get(CSRF), "a new CSRF token too");
    assert_eq!(gw.status("/x", &jar).await?, 200);
    assert_eq!(
        gw.status("/x", &before).await?,
        401,
        "the pre-login access cookie is dead"
    );
    assert_eq!(
        gw.status("/x", &before.without(ACCESS)).await?,
        401,
        "and its refresh cookie"
    );
    Ok(())
}

#[tokio::test]
async fn refresh_reuse_through_the_api() -> TestResult {
    // A token client (no browser): the stolen refresh token is used by the thief first; the
    // rightful client's next refresh is then a reuse, and the whole family dies.
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_SESSION_REFRESH_GRACE", "0s");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let (access, stolen) = gw.token_login("alice", PASSWORD).await?;
    let refresh = |token: String| {
        client()
            .post(gw.url("/auth/refresh"))
            .json(&serde_json::json!({"refresh_token": token}))
            .send()
    };
    let r = refresh(stolen.clone()).await?;
    assert_eq!(r.status(), 200);
    let thief: serde_json::Value = r.json().await?;
    let thief_access = thief["access_token"].as_str().ok_or("access")?.to_owned();
    let thief_refresh = thief["refresh_token"].as_str().ok_or("refresh")?.to_owned();
    let detected = eventually(std::time::Duration::from_secs(5), || {
        let again = refresh(stolen.clone());
        async move { again.await.is_ok_and(|r| r.status() == 401) }
    })
    .await;
    assert!(detected, "the second use of one refresh token is refused");
    assert_eq!(
        refresh(thief_refresh).await?.status(),
        401,
        "family revoked"
    );
    for token in [access, thief_access] {
        let r = client()
            .get(gw.url("/x"))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(
            r.status(),
            401,
            "access tokens of the family are revoked too"
        );
    }
    assert!(gw.log().contains("refresh_reuse"));
    Ok(())
}

#[tokio::test]
async fn logout_replay() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let c = client();
    let jar = gw.login("alice", PASSWORD).await?;
    let (access, refresh) = gw.token_login("alice", PASSWORD).await?;
    let page = c
        .get(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .send()
        .await?;
    let token = hidden_field(&page.text().await?, "csrf_token").ok_or("logout token")?;
    let logout = |cookie: String| {
        c.post(gw.url("/auth/logout"))
            .header("cookie", cookie)
            .form(&[("csrf_token", &token)])
            .send()
    };
    assert_eq!(logout(jar.header()).await?.status(), 303);
    let r = c
        .post(gw.url("/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // Everything from before is dead, each part on its own too.
    for (what, j) in [
        ("both cookies", jar.clone()),
        ("access cookie", jar.without(crate::support::REFRESH)),
        ("refresh cookie", jar.without(ACCESS)),
    ] {
        assert_eq!(gw.xhr("/x", &j).await?.status(), 401, "{what}");
    }
    assert_eq!(
        c.get(gw.url("/x"))
            .bearer_auth(&access)
            .send()
            .await?
            .status(),
        401
    );
    let r = c
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // Replaying the logout itself is harmless, and does not touch a newer session.
    let fresh = gw.login("alice", PASSWORD).await?;
    let status = logout(jar.header()).await?.status().as_u16();
    assert!(status == 303 || status == 403, "{status}");
    let r = c
        .post(gw.url("/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await?;
    assert!(
        r.status().is_client_error() || r.status() == 200,
        "{}",
        r.status()
    );
    assert_eq!(
        gw.status("/x", &fresh).await?,
        200,
        "the new session is untouched"
    );
    Ok(())
}

#[tokio::test]
async fn userinfo_never_shows_tokens() -> TestResult {
    // Pomerium CVE-2024-39315: a user-info page that echoed tokens let any XSS steal them.
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let r = gw.xhr("/auth/userinfo", &jar).await?;
    assert_eq!(r.status(), 200);
    let body = r.text().await?;
    assert!(body.contains("alice"), "{body}");
    for (name, value) in &jar.0 {
        let secret = value.rsplit('.').next().unwrap_or(value);
        assert!(!body.contains(secret), "userinfo shows the {name} cookie");
    }
    assert!(!body.contains("dgr_"), "{body}");
    Ok(())
}
