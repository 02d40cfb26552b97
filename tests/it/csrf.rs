//! CSRF: signed double submit with Dash's `_csrf_token` / `X-CSRFToken`, Fetch Metadata, Origin.

use crate::support::{CSRF, Gateway, Jar, PASSWORD, TestResult, Upstream, client};

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
