//! The gateway's own endpoints under `/auth` (ASVS 3.5.2, 7.2.4; RFC 9700 4.14.2): a request
//! that will be refused (a foreign site, a wrong body type, a missing CSRF token) is refused
//! before anything changes — before an inline refresh spends the refresh token — and when an
//! inline refresh did happen, its cookies reach the browser whatever the answer is. Otherwise a
//! refused request leaves the browser holding a spent refresh token, and its next use looks
//! like a thief's replay that revokes the whole session (the issue that found this: a sibling
//! subdomain's form posting to `/auth/password`). A cross-site logout signs nobody out.

use crate::support::{
    ACCESS, Gateway, Jar, Options, PASSWORD, REFRESH, TestResult, Upstream, client,
};

/// `dashgate_refreshes_total{result="rotated"}`: how many refresh tokens have been spent.
async fn rotations(gw: &Gateway) -> Result<u64, Box<dyn std::error::Error>> {
    let text = client()
        .get(gw.url("/auth/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("dashgate_refreshes_total{result=\"rotated\"}"))
        .ok_or("no rotation counter")?;
    Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
}

async fn site() -> Result<(Upstream, Gateway), Box<dyn std::error::Error>> {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .env("DASHGATE_SESSION_REFRESH_GRACE", "1s")
        .env("DASHGATE_METRICS_PUBLIC", "true");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    Ok((up, gw))
}

fn set_cookie_names(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split('=').next())
        .map(str::to_owned)
        .collect()
}

/// Use the session as a browser does for a while longer than the refresh grace window, with
/// an expired access cookie each time (so each request refreshes inline): every request must
/// pass. A browser left holding a spent refresh token would be refused here, its session
/// revoked as a replay.
async fn browse_past_the_grace_window(gw: &Gateway, jar: &mut Jar) -> TestResult {
    let start = std::time::Instant::now();
    // The grace window is one second (whole seconds, so up to two): three of them.
    while start.elapsed() < std::time::Duration::from_millis(3000) {
        let r = gw.xhr("/x", &jar.without(ACCESS)).await?;
        assert_eq!(r.status(), 200, "the session broke; log:\n{}", gw.log());
        jar.update(r.headers());
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(!gw.log().contains("refresh_reuse"), "{}", gw.log());
    Ok(())
}

#[tokio::test]
async fn a_refused_password_change_does_not_spend_the_refresh_token() -> TestResult {
    let (_up, gw) = site().await?;
    let mut jar = gw.login("alice", PASSWORD).await?;
    // The access cookie has expired: any authenticated request would refresh inline.
    let expired = jar.without(ACCESS);
    let c = client();
    let form = [
        ("current_password", PASSWORD),
        ("new_password", "another long passphrase"),
        ("new_password_confirm", "another long passphrase"),
        ("csrf_token", "not-needed-to-be-refused"),
    ];
    let before = rotations(&gw).await?;
    // A sibling subdomain's form (same-site), another site, a `null` origin, a body type the
    // endpoint does not read, and a post without the CSRF token: all refused, none spent the
    // refresh token, none set a cookie.
    let attempts = [
        c.post(gw.url("/auth/password"))
            .header("sec-fetch-site", "same-site")
            .form(&form),
        c.post(gw.url("/auth/password"))
            .header("origin", "http://evil.example")
            .form(&form),
        c.post(gw.url("/auth/password"))
            .header("origin", "null")
            .form(&form),
        c.post(gw.url("/auth/password"))
            .header("content-type", "text/plain")
            .body("current_password=x"),
        c.post(gw.url("/auth/password"))
            .form(&[("current_password", PASSWORD), ("new_password", "x")]),
    ];
    for (i, attempt) in attempts.into_iter().enumerate() {
        let r = attempt.header("cookie", expired.header()).send().await?;
        assert!(
            [403, 415].contains(&r.status().as_u16()),
            "attempt {i}: {}",
            r.status()
        );
        assert_eq!(set_cookie_names(&r), Vec::<String>::new(), "attempt {i}");
        assert_eq!(rotations(&gw).await?, before, "attempt {i} spent the token");
    }
    // The control: the same session's genuine request does refresh (the counter can move).
    let r = gw.xhr("/x", &expired).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(rotations(&gw).await?, before + 1);
    jar.update(r.headers());
    browse_past_the_grace_window(&gw, &mut jar).await
}

#[tokio::test]
async fn a_refusal_after_an_inline_refresh_carries_the_new_cookies() -> TestResult {
    let (_up, gw) = site().await?;
    let mut jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    let before = rotations(&gw).await?;
    // Passes every check that can be made first, then fails on the current password (401)
    // and, in JSON, on a new password that is too short (400): the refresh has happened by
    // then, and its cookies must come with the refusal.
    let form = c
        .post(gw.url("/auth/password"))
        .header("cookie", jar.without(ACCESS).header())
        .form(&[
            ("current_password", "not the password"),
            ("new_password", "another long passphrase"),
            ("new_password_confirm", "another long passphrase"),
            ("csrf_token", &jar.csrf()),
        ])
        .send()
        .await?;
    assert_eq!(form.status(), 401);
    assert_eq!(rotations(&gw).await?, before + 1, "the refresh happened");
    let names = set_cookie_names(&form);
    assert!(names.iter().any(|n| n == REFRESH), "{names:?}");
    jar.update(form.headers());
    let json = c
        .post(gw.url("/auth/password"))
        .header("cookie", jar.without(ACCESS).header())
        .header("x-csrftoken", jar.csrf())
        .json(&serde_json::json!({"current_password": PASSWORD, "new_password": "short"}))
        .send()
        .await?;
    assert_eq!(json.status(), 400);
    assert!(set_cookie_names(&json).iter().any(|n| n == REFRESH));
    jar.update(json.headers());
    browse_past_the_grace_window(&gw, &mut jar).await
}

#[tokio::test]
async fn cross_site_logout_signs_nobody_out() -> TestResult {
    let (_up, gw) = site().await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    // SameSite=Lax keeps the cookies off a cross-site POST, so the gateway sees none: it must
    // still refuse, not answer with every cookie cleared. With the cookies (a browser without
    // SameSite) it is refused too.
    for cookies in [Jar::default(), jar.clone()] {
        for (name, value) in [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
            ("origin", "http://evil.example"),
            ("origin", "null"),
        ] {
            let mut rb = c
                .post(gw.url("/auth/logout"))
                .header(name, value)
                .form(&[("csrf_token", jar.csrf())]);
            if !cookies.0.is_empty() {
                rb = rb.header("cookie", cookies.header());
            }
            let r = rb.send().await?;
            assert_eq!(r.status(), 403, "{name}: {value}");
            assert_eq!(
                set_cookie_names(&r),
                Vec::<String>::new(),
                "{name}: {value}"
            );
            assert!(r.headers().get("clear-site-data").is_none());
        }
    }
    assert_eq!(gw.status("/x", &jar).await?, 200, "still signed in");
    // The control: the same form from the gateway's own page signs out.
    let r = c
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf_token", jar.csrf())])
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    assert!(set_cookie_names(&r).iter().any(|n| n == ACCESS));
    assert_eq!(gw.status("/x", &jar).await?, 401);
    Ok(())
}

#[tokio::test]
async fn every_state_changing_endpoint_refuses_other_sites_first() -> TestResult {
    let (_up, gw) = site().await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    let before = rotations(&gw).await?;
    for path in [
        "/auth/login",
        "/auth/logout",
        "/auth/password",
        "/auth/refresh",
        "/auth/userinfo",
    ] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let r = c
                .request(method.clone(), gw.url(path))
                .header("cookie", jar.without(ACCESS).header())
                .header("x-csrftoken", jar.csrf())
                .header("sec-fetch-site", "cross-site")
                .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
                .send()
                .await?;
            assert_eq!(r.status(), 403, "{method} {path}");
            assert_eq!(
                set_cookie_names(&r),
                Vec::<String>::new(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(rotations(&gw).await?, before, "nothing was refreshed");
    // The session is untouched.
    let mut jar = jar;
    browse_past_the_grace_window(&gw, &mut jar).await
}
