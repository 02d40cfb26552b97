//! Self-service password change (`/auth/password`): re-authentication with the current
//! password, the password policy, CSRF, brute-force regulation, and the end of every other
//! session (ASVS 7.4.3).

use crate::support::{
    ACCESS, CSRF, Gateway, Jar, Options, PASSWORD, TestResult, Upstream, client, hidden_field,
};

const NEW: &str = "a brand new passphrase";

/// The form's CSRF token, from the page as the browser gets it.
async fn form_token(gw: &Gateway, jar: &Jar) -> Result<String, Box<dyn std::error::Error>> {
    let r = client()
        .get(gw.url("/auth/password"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let html = r.text().await?;
    Ok(hidden_field(&html, "csrf_token").ok_or("no csrf_token")?)
}

async fn submit(
    gw: &Gateway,
    jar: &Jar,
    token: &str,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    client()
        .post(gw.url("/auth/password"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf_token", token),
            ("current_password", current),
            ("new_password", new),
            ("new_password_confirm", confirm),
        ])
        .send()
        .await
}

#[tokio::test]
async fn page_needs_a_session() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let r = client().get(gw.url("/auth/password")).send().await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/login");
    let jar = gw.login("alice", PASSWORD).await?;
    let r = client()
        .get(gw.url("/auth/password"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()?
            .contains("frame-ancestors 'none'")
    );
    let html = r.text().await?;
    assert!(html.contains(r#"name="current_password""#) && html.contains("alice"));
    // The logout page links to it.
    let html = client()
        .get(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .send()
        .await?
        .text()
        .await?;
    assert!(html.contains(r#"href="/auth/password""#));
    // An unsigned session cannot post to it.
    let r = client()
        .post(gw.url("/auth/password"))
        .form(&[("current_password", PASSWORD), ("new_password", NEW)])
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

#[tokio::test]
async fn form_change_ends_other_sessions_and_keeps_this_one() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let here = gw.login("alice", PASSWORD).await?;
    let elsewhere = gw.login("alice", PASSWORD).await?;
    let (bearer, _) = gw.token_login("alice", PASSWORD).await?;
    let token = form_token(&gw, &here).await?;

    // Refusals: each leaves the password and every session as they were.
    for (current, new, confirm, status, message) in [
        (
            "not my password",
            NEW,
            NEW,
            401,
            "The current password is not right.",
        ),
        (
            PASSWORD,
            NEW,
            "something else entirely",
            400,
            "do not match",
        ),
        (PASSWORD, "short", "short", 400, "at least"),
    ] {
        let r = submit(&gw, &here, &token, current, new, confirm).await?;
        assert_eq!(r.status(), status, "{message}");
        let html = r.text().await?;
        assert!(html.contains(message), "{html}");
    }
    let r = submit(&gw, &here, "1.forged.token", PASSWORD, NEW, NEW).await?;
    assert_eq!(r.status(), 403, "CSRF");
    let r = client()
        .post(gw.url("/auth/password"))
        .header("cookie", here.header())
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf_token", token.as_str()),
            ("current_password", PASSWORD),
            ("new_password", NEW),
            ("new_password_confirm", NEW),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 403, "cross-site");
    assert_eq!(
        gw.status("/x", &elsewhere).await?,
        200,
        "nothing changed yet"
    );

    // The change.
    let r = submit(&gw, &here, &token, PASSWORD, NEW, NEW).await?;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/auth/password?changed=2");
    let mut after = here.clone();
    after.update(r.headers());
    assert_ne!(after.get(ACCESS), here.get(ACCESS), "a new session");
    assert_ne!(after.get(CSRF), here.get(CSRF), "with a new CSRF token");
    assert_eq!(
        gw.status("/x", &after).await?,
        200,
        "this browser stays signed in"
    );
    let html = client()
        .get(gw.url("/auth/password?changed=2"))
        .header("cookie", after.header())
        .send()
        .await?
        .text()
        .await?;
    assert!(html.contains("Other sessions signed out: 2."), "{html}");
    // Every session from before is over: the other browser, this browser's old cookies, the
    // API client.
    for (what, jar) in [("elsewhere", &elsewhere), ("old cookies", &here)] {
        assert_eq!(gw.status("/x", jar).await?, 401, "{what}");
    }
    let r = client()
        .get(gw.url("/x"))
        .bearer_auth(&bearer)
        .send()
        .await?;
    assert_eq!(r.status(), 401, "bearer");
    // Only the new password signs in.
    assert_eq!(gw.try_login("alice", PASSWORD, "/").await?.0, 401);
    assert_eq!(gw.try_login("alice", NEW, "/").await?.0, 303);
    assert!(gw.log().contains("\"password_change\""));
    Ok(())
}

#[tokio::test]
async fn json_change_with_a_bearer_token() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let (bearer, refresh) = gw.token_login("alice", PASSWORD).await?;
    let r = client()
        .post(gw.url("/auth/password"))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"current_password": PASSWORD, "new_password": NEW}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await?;
    let fresh = tokens["access_token"].as_str().ok_or("access_token")?;
    assert_eq!(
        client()
            .get(gw.url("/x"))
            .bearer_auth(fresh)
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(gw.url("/x"))
            .bearer_auth(&bearer)
            .send()
            .await?
            .status(),
        401
    );
    let r = client()
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    // Wrong current password: the generic 401, nothing changed.
    let r = client()
        .post(gw.url("/auth/password"))
        .bearer_auth(fresh)
        .json(&serde_json::json!({"current_password": PASSWORD, "new_password": "x".repeat(20)}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    gw.token_login("alice", NEW).await?;
    Ok(())
}

#[tokio::test]
async fn guessing_the_current_password_is_regulated() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_LOGIN_LOCKOUT_AFTER", "3");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let (bearer, _) = gw.token_login("alice", PASSWORD).await?;
    let attempt = |current: &str| {
        client()
            .post(gw.url("/auth/password"))
            .bearer_auth(&bearer)
            .json(&serde_json::json!({"current_password": current, "new_password": NEW}))
            .send()
    };
    let mut statuses = Vec::new();
    for guess in ["guess one!", "guess two!", "guess three!", PASSWORD] {
        statuses.push(attempt(guess).await?.status().as_u16());
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 429],
        "even the right one is refused now"
    );
    Ok(())
}
