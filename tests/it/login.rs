//! Login page, form and JSON login, enumeration resistance, safe `next`, login CSRF.

use std::time::{Duration, Instant};

use crate::support::{
    ACCESS, CSRF, Gateway, Jar, PASSWORD, REFRESH, TestResult, Upstream, client, hidden_field,
    set_cookies,
};

#[tokio::test]
async fn login_page_is_a_proper_form() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let r = client()
        .get(gw.url("/auth/login?next=%2Freports%3Fq%3D%22x%22"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str()?.starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        h["content-security-policy"]
            .to_str()?
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let set: Vec<&str> = h
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-dashgate-login-csrf=")
                && c.contains("HttpOnly")
                && c.contains("Secure")),
        "{set:?}"
    );
    let html = r.text().await?;
    for needle in [
        r#"<label for="username">"#,
        r#"<label for="password">"#,
        r#"id="sign-in""#,
        r#"method="post""#,
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(!html.contains("<script"), "works without JavaScript");
    assert_eq!(
        hidden_field(&html, "next").as_deref(),
        Some("/reports?q=&quot;x&quot;")
    );
    assert!(hidden_field(&html, "csrf_token").is_some_and(|t| t.len() > 40));
    // Every linked asset is served (an icon among them, or the browser asks the app's origin
    // for /favicon.ico and logs the 401 as an error on every sign-in).
    let linked: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|h| h.starts_with("/auth/assets/"))
        .collect();
    assert!(html.contains(r#"<link rel="icon""#), "{html}");
    assert_eq!(linked.len(), 2, "{linked:?}");
    for (href, kind) in linked.iter().zip(["text/css", "image/svg+xml"]) {
        let r = client().get(gw.url(href)).send().await?;
        assert_eq!(r.status(), 200, "{href}");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert!(ct.is_some_and(|t| t.starts_with(kind)), "{href}: {ct:?}");
    }
    Ok(())
}

#[tokio::test]
async fn form_login_sets_cookies_exactly() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &["viewer"])]).await?;
    let c = client();
    let page = c.get(gw.url("/auth/login")).send().await?;
    let mut jar = Jar::default();
    jar.update(page.headers());
    let token = hidden_field(&page.text().await?, "csrf_token").ok_or("no token")?;
    let r = c
        .post(gw.url("/auth/login"))
        .header("cookie", jar.header())
        .form(&[
            ("username", "Alice"),
            ("password", PASSWORD),
            ("csrf_token", &token),
            ("next", "/reports/q1?x=1"),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/reports/q1?x=1");
    let set = set_cookies(r.headers());
    let find = |name: &str| {
        set.iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
            .unwrap_or_default()
    };
    for name in [ACCESS, REFRESH] {
        let c = find(name);
        assert!(
            c.contains("; Path=/; SameSite=Lax; HttpOnly; Secure") && !c.contains("Domain"),
            "{c}"
        );
    }
    let csrf = find(CSRF);
    assert!(
        csrf.contains("; Path=/; SameSite=Lax; Secure") && !csrf.contains("HttpOnly"),
        "{csrf}"
    );
    assert!(
        find("__Host-dashgate-login-csrf").contains("Max-Age=0"),
        "pre-session token is cleared"
    );
    Ok(())
}

#[tokio::test]
async fn json_login_returns_tokens() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &["viewer"])]).await?;
    let r = client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().get("set-cookie").is_none());
    let v: serde_json::Value = r.json().await?;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert_eq!(
        v["access_token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
    assert!(
        v["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("dgr_") && t.len() >= 47)
    );
    // The bearer token works against the upstream.
    let r = client()
        .get(gw.url("/api"))
        .bearer_auth(v["access_token"].as_str().unwrap_or(""))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // Wrong media type, bad JSON.
    let r = client()
        .post(gw.url("/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status(), 415);
    let r = client()
        .post(gw.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\":")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    Ok(())
}

async fn json_attempt(
    gw: &Gateway,
    user: &str,
    pw: &str,
) -> Result<(u16, String, Duration), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let r = client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.text().await?;
    Ok((status, body, start.elapsed()))
}

/// The fastest of several runs: the closest to the true cost when other tests share the CPU.
fn fastest(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[]), ("dora", &[])]).await?;
    assert!(
        gw.cli(&["users", "disable", "dora"], None)?
            .status
            .success()
    );
    let (s1, b1, _) = json_attempt(&gw, "alice", "wrong password!").await?;
    let (s2, b2, _) = json_attempt(&gw, "nobody", "wrong password!").await?;
    let (s3, b3, _) = json_attempt(&gw, "dora", PASSWORD).await?;
    let (s4, b4, _) = json_attempt(&gw, "not a valid name!", PASSWORD).await?;
    assert_eq!((s1, s2, s3, s4), (401, 401, 401, 401));
    assert!(b1 == b2 && b2 == b3 && b3 == b4, "{b1} {b2} {b3} {b4}");
    // Form logins: same status and same page apart from the fresh CSRF token.
    let strip = |html: String| {
        html.split("csrf_token")
            .next()
            .unwrap_or("")
            .replace("alice", "X")
            .replace("nobody", "X")
    };
    let (sa, _) = gw.try_login("alice", "wrong password!", "/").await?;
    let (sb, _) = gw.try_login("nobody", "wrong password!", "/").await?;
    assert_eq!((sa, sb), (401, 401));
    let c = client();
    let mut pages = Vec::new();
    for user in ["alice", "nobody"] {
        let page = c.get(gw.url("/auth/login")).send().await?;
        let mut jar = Jar::default();
        jar.update(page.headers());
        let token = hidden_field(&page.text().await?, "csrf_token").ok_or("token")?;
        let r = c
            .post(gw.url("/auth/login"))
            .header("cookie", jar.header())
            .form(&[
                ("username", user),
                ("password", "wrong password!"),
                ("csrf_token", &token),
            ])
            .send()
            .await?;
        pages.push(strip(r.text().await?));
    }
    assert_eq!(pages[0], pages[1]);
    assert!(pages[0].contains("class=\"error\""));
    // Timing: both paths run one argon2id verification, so their costs are alike (without the
    // dummy hash an unknown user would be answered about 40x faster). Interleaved runs, and
    // the fastest of each, so that other tests sharing the CPU do not decide the outcome.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..9 {
        let (ks, _, kt) = json_attempt(&gw, "alice", "wrong password!").await?;
        let (us, _, ut) = json_attempt(&gw, "nobody", "wrong password!").await?;
        assert_eq!(
            (ks, us),
            (401, 401),
            "timed answers must be real password checks"
        );
        known.push(kt);
        unknown.push(ut);
    }
    let (k, u) = (fastest(&known), fastest(&unknown));
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    assert!(
        (1.0 / 3.0..3.0).contains(&ratio),
        "known {k:?} vs unknown {u:?}"
    );
    Ok(())
}

#[tokio::test]
async fn login_form_needs_its_csrf_token() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let c = client();
    let (jar, token) = gw.login_form(&Jar::default()).await?;
    let post = |cookie: String, fields: Vec<(&'static str, String)>, site: Option<&'static str>| {
        let mut rb = c
            .post(gw.url("/auth/login"))
            .header("cookie", cookie)
            .form(&fields);
        if let Some(s) = site {
            rb = rb.header("sec-fetch-site", s);
        }
        rb.send()
    };
    let creds = |t: &str| {
        vec![
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
            ("csrf_token", t.to_owned()),
        ]
    };
    // Missing field, missing cookie, forged token, cross-site: all 403 and no session.
    for (cookie, fields, site) in [
        (
            jar.header(),
            vec![
                ("username", "alice".to_owned()),
                ("password", PASSWORD.to_owned()),
            ],
            None,
        ),
        (String::new(), creds(&token), None),
        (
            jar.with("__Host-dashgate-login-csrf", "1.abc.def").header(),
            creds("1.abc.def"),
            None,
        ),
        (jar.header(), creds(&token), Some("cross-site")),
        (jar.header(), creds(&token), Some("same-site")),
    ] {
        let r = post(cookie, fields, site).await?;
        assert_eq!(r.status(), 403);
        assert!(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .all(|v| !v.to_str().unwrap_or("").starts_with(ACCESS))
        );
    }
    let r = post(jar.header(), creds(&token), Some("same-origin")).await?;
    assert_eq!(r.status(), 303);
    Ok(())
}
