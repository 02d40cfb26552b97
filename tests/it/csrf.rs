//! CSRF: signed double submit with Dash's `_csrf_token` / `X-CSRFToken`, Fetch Metadata, Origin.

use crate::support::{CSRF, Gateway, Jar, PASSWORD, TestResult, Upstream, client, set_cookies};

async fn post(
    gw: &Gateway,
    jar: &Jar,
    header: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<u16, reqwest::Error> {
    let mut rb = client()
        .post(gw.url("/_dash-update-component"))
        .header("cookie", jar.header())
        .header("accept", "application/json")
        .json(&serde_json::json!({"output": "out.children", "inputs": []}));
    if let Some(h) = header {
        rb = rb.header("X-CSRFToken", h);
    }
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    Ok(rb.send().await?.status().as_u16())
}

/// What must pass: Dash's own request shape, same-origin metadata, a matching Origin, GET
/// without a token. (What must not pass is in `attacks::csrf`.)
#[tokio::test]
async fn dash_request_shape_is_accepted() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let alice = gw.login("alice", PASSWORD).await?;
    let token = alice.csrf();
    // Accepted: Dash's own request shape, same-origin metadata, matching Origin.
    assert_eq!(post(&gw, &alice, Some(&token), &[]).await?, 200);
    assert_eq!(
        post(
            &gw,
            &alice,
            Some(&token),
            &[("sec-fetch-site", "same-origin")]
        )
        .await?,
        200
    );
    let host = gw.base.trim_start_matches("http://").to_owned();
    assert_eq!(
        post(
            &gw,
            &alice,
            Some(&token),
            &[("origin", &format!("http://{host}"))]
        )
        .await?,
        200
    );
    // GET needs no token.
    let r = client()
        .get(gw.url("/_dash-layout"))
        .header("cookie", alice.without(CSRF).header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let (access, _) = gw.token_login("alice", PASSWORD).await?;
    let r = client()
        .post(gw.url("/api/items"))
        .bearer_auth(&access)
        .json(&serde_json::json!({"a": 1}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await?;
    assert!(
        seen["headers"].get("authorization").is_none(),
        "the gateway's bearer token is not forwarded"
    );
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "alice");
    Ok(())
}

#[tokio::test]
async fn lost_csrf_cookie_is_reissued() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?.without(CSRF);
    let r = client()
        .get(gw.url("/"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let mut jar2 = jar.clone();
    jar2.update(r.headers());
    let token = jar2.csrf();
    assert!(!token.is_empty());
    assert_eq!(post(&gw, &jar2, Some(&token), &[]).await?, 200);
    Ok(())
}

/// `POST <prefix>_dash-update-component` with the token in header `name` (none: no header).
async fn post_named(
    gw: &Gateway,
    prefix: &str,
    jar: &Jar,
    name: &str,
    token: Option<&str>,
) -> Result<u16, reqwest::Error> {
    let mut rb = client()
        .post(gw.url(&format!("{prefix}_dash-update-component")))
        .header("cookie", jar.header())
        .header("accept", "application/json")
        .json(&serde_json::json!({"output": "out.children", "inputs": []}));
    if let Some(t) = token {
        rb = rb.header(name, t);
    }
    Ok(rb.send().await?.status().as_u16())
}

/// Dash 4.2's `csrf_token_name` / `csrf_header_name`: the gateway reads them from the app's
/// `_dash-config`, hands out the token under the app's cookie name with the page's first
/// layout request, and takes it back in the app's header. Names that would reach the gateway's
/// own cookies or headers are refused.
#[tokio::test]
async fn csrf_names_the_app_declares() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let mut jar = gw.login("alice", PASSWORD).await?;
    // Before the app is known, its header is not a CSRF header.
    let token = jar.csrf();
    assert_eq!(
        post_named(&gw, "/named/", &jar, "x-my-csrf", Some(&token)).await?,
        403
    );
    let r = gw.xhr("/named/_dash-layout", &jar).await?;
    assert_eq!(r.status(), 200);
    jar.update(r.headers());
    let named = jar.get("my_csrf").ok_or("no my_csrf cookie")?.to_owned();
    let only_named = jar.without(CSRF);
    assert_eq!(
        post_named(&gw, "/named/", &only_named, "X-My-Csrf", Some(&named)).await?,
        200,
        "the renderer's request: the app's cookie and header"
    );
    assert_eq!(
        post_named(&gw, "/named/", &only_named, "X-My-Csrf", None).await?,
        403,
        "still required"
    );
    let foreign = gw.login("alice", PASSWORD).await?.csrf();
    assert_eq!(
        post_named(&gw, "/named/", &only_named, "X-My-Csrf", Some(&foreign)).await?,
        403,
        "another session's token"
    );
    // Later sessions get the app's cookie at once; logout clears it.
    let bob = gw.login("alice", PASSWORD).await?;
    assert!(bob.get("my_csrf").is_some(), "{bob:?}");
    let r = client()
        .post(gw.url("/auth/logout"))
        .header("cookie", bob.header())
        .header("x-csrftoken", bob.csrf())
        .send()
        .await?;
    let cleared = set_cookies(r.headers())
        .iter()
        .any(|v| v.starts_with("my_csrf=;"));
    assert!(cleared, "logout clears the app's CSRF cookie");

    // An app that claims the gateway's access cookie and an identity header gets neither.
    let r = gw.xhr("/greedy/_dash-layout", &jar).await?;
    assert_eq!(r.status(), 200);
    let set = set_cookies(r.headers());
    assert!(set.is_empty(), "{set:?}");
    assert!(
        gw.log()
            .contains("declares a CSRF name the gateway will not use"),
        "{}",
        gw.log()
    );
    assert_eq!(
        post_named(&gw, "/greedy/", &jar, "x-forwarded-user", Some(&token)).await?,
        403
    );
    Ok(())
}

/// The operator's names (`dash.csrf_cookie_name`, `dash.csrf_header_name`) hold from the
/// first request; names the gateway cannot use stop it at start.
#[tokio::test]
async fn csrf_names_from_config() -> TestResult {
    let up = Upstream::start().await?;
    let opts = crate::support::Options::new(&up.url)
        .env("DASHGATE_DASH_CSRF_COOKIE_NAME", "ops_csrf")
        .env("DASHGATE_DASH_CSRF_HEADER_NAME", "X-Ops-Csrf");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let token = jar.get("ops_csrf").ok_or("no ops_csrf cookie")?.to_owned();
    assert!(jar.get(CSRF).is_some(), "Dash's default name stays");
    assert_eq!(
        post_named(&gw, "/", &jar.without(CSRF), "x-ops-csrf", Some(&token)).await?,
        200
    );
    for (key, value) in [
        ("DASHGATE_DASH_CSRF_HEADER_NAME", "Authorization"),
        ("DASHGATE_DASH_CSRF_HEADER_NAME", "X-Forwarded-User"),
        ("DASHGATE_DASH_CSRF_COOKIE_NAME", "__Host-dashgate-access"),
    ] {
        let out = std::process::Command::new(crate::support::BIN)
            .args(["check-config", "--upstream", &up.url])
            .env(key, value)
            .output()?;
        let text = crate::support::output_text(&out);
        assert!(!out.status.success(), "{key}={value}: {text}");
        assert!(
            text.contains(
                &key["DASHGATE_".len()..]
                    .to_ascii_lowercase()
                    .replacen('_', ".", 1)
            ),
            "{text}"
        );
    }
    Ok(())
}
