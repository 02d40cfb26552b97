//! CSRF (OWASP CSRF cheat sheet, ASVS V50/V3.5): every cookie-authenticated unsafe request needs
//! Dash's `X-CSRFToken` header matching the signed, session-bound `_csrf_token` cookie, and must
//! not come from another site. In each test the same request with the right token passes first,
//! so the refusal is the attacked property's doing.

use crate::support::{CSRF, Gateway, Jar, PASSWORD, TestResult, Upstream, client};

struct Two {
    up: Upstream,
    gw: Gateway,
    alice: Jar,
    bob: Jar,
}

impl Two {
    async fn new() -> Result<Two, Box<dyn std::error::Error>> {
        let up = Upstream::start().await?;
        let gw = Gateway::start(&up.url, &[("alice", &[]), ("bob", &[])]).await?;
        let alice = gw.login("alice", PASSWORD).await?;
        let bob = gw.login("bob", PASSWORD).await?;
        Ok(Two { up, gw, alice, bob })
    }

    /// A Dash callback POST with these cookies, this `X-CSRFToken` and extra headers.
    async fn post(
        &self,
        jar: &Jar,
        token: Option<&str>,
        extra: &[(&str, &str)],
        method: &str,
    ) -> Result<u16, Box<dyn std::error::Error>> {
        let mut rb = client()
            .request(method.parse()?, self.gw.url("/_dash-update-component"))
            .header("cookie", jar.header())
            .header("accept", "application/json")
            .json(&serde_json::json!({"output": "out.children", "inputs": []}));
        if let Some(h) = token {
            rb = rb.header("X-CSRFToken", h);
        }
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        Ok(rb.send().await?.status().as_u16())
    }

    /// Alice's genuine request passes; the attack is refused with 403 and never reaches the app.
    async fn refused(&self, jar: &Jar, token: Option<&str>, extra: &[(&str, &str)]) -> TestResult {
        assert_eq!(
            self.post(&self.alice, Some(&self.alice.csrf()), &[], "POST")
                .await?,
            200,
            "control"
        );
        let hits = self.up.hits();
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(self.post(jar, token, extra, method).await?, 403, "{method}");
        }
        assert_eq!(self.up.hits(), hits, "the app saw a forged request");
        Ok(())
    }
}

#[tokio::test]
async fn missing_token_header() -> TestResult {
    let t = Two::new().await?;
    t.refused(&t.alice, None, &[]).await?;
    t.refused(&t.alice, Some(""), &[]).await
}

#[tokio::test]
async fn missing_token_cookie() -> TestResult {
    let t = Two::new().await?;
    let token = t.alice.csrf();
    t.refused(&t.alice.without(CSRF), Some(&token), &[]).await
}

#[tokio::test]
async fn mismatched_token() -> TestResult {
    let t = Two::new().await?;
    t.refused(&t.alice, Some("1.abc.def"), &[]).await?;
    // One character off.
    let mut token = t.alice.csrf();
    let last = if token.ends_with('A') { "B" } else { "A" };
    token.pop();
    token.push_str(last);
    t.refused(&t.alice, Some(&token), &[]).await
}

#[tokio::test]
async fn token_from_another_session() -> TestResult {
    let t = Two::new().await?;
    let bobs = t.bob.csrf();
    // Bob's genuine token, planted as both cookie and header in Alice's session.
    t.refused(&t.alice.with(CSRF, &bobs), Some(&bobs), &[])
        .await?;
    // And Alice's own token from a session that has since ended (a new login replaces it).
    let old = t.alice.csrf();
    let fresh = t.gw.login("alice", PASSWORD).await?;
    assert_ne!(fresh.csrf(), old);
    t.refused(&fresh.with(CSRF, &old), Some(&old), &[]).await
}

#[tokio::test]
async fn cross_site_fetch_metadata() -> TestResult {
    let t = Two::new().await?;
    let token = t.alice.csrf();
    for site in ["cross-site", "same-site"] {
        t.refused(&t.alice, Some(&token), &[("sec-fetch-site", site)])
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn foreign_origin() -> TestResult {
    let t = Two::new().await?;
    let token = t.alice.csrf();
    let host = t.gw.base.trim_start_matches("http://").to_owned();
    let other_port = format!("http://127.0.0.1:{}", t.gw.port.wrapping_add(1));
    let suffix = format!("http://{host}.evil.example");
    for origin in [
        "https://evil.example",
        "null",
        other_port.as_str(),
        suffix.as_str(),
    ] {
        t.refused(&t.alice, Some(&token), &[("origin", origin)])
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn injected_unsigned_cookie() -> TestResult {
    // A sibling subdomain (or a MITM on plain HTTP) can set cookies: a value it made up, sent
    // as both cookie and header, satisfies a naive double submit but not a signed one.
    let t = Two::new().await?;
    t.refused(&t.alice.with(CSRF, "injected"), Some("injected"), &[])
        .await?;
    let shaped = "1767225600.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    t.refused(&t.alice.with(CSRF, shaped), Some(shaped), &[])
        .await
}
