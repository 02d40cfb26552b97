//! Brute-force regulation: growing delays per username, lockout per username and address,
//! a per-address limit that applies first, 429 with Retry-After; and `X-Forwarded-For` believed
//! only from trusted proxies.

use crate::support::{Gateway, Options, PASSWORD, TestResult, Upstream, client};

async fn attempt(
    gw: &Gateway,
    user: &str,
    pw: &str,
    xff: Option<&str>,
) -> Result<(u16, Option<String>), Box<dyn std::error::Error>> {
    let mut rb = client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": user, "password": pw}));
    if let Some(x) = xff {
        rb = rb.header("x-forwarded-for", x);
    }
    let r = rb.send().await?;
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((r.status().as_u16(), retry))
}

fn regulated(up: &Upstream) -> Options {
    Options::new(&up.url)
        .env("DASHGATE_LOGIN_FREE_ATTEMPTS", "3")
        .env("DASHGATE_LOGIN_MAX_DELAY", "60s")
        .env("DASHGATE_LOGIN_LOCKOUT_AFTER", "10")
        .env("DASHGATE_LOGIN_MAX_FAILURES_PER_IP", "6")
        .env("DASHGATE_TRUSTED_PROXIES", "127.0.0.1/32")
}

#[tokio::test]
async fn failures_are_throttled_then_refused() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(regulated(&up), &[("alice", &[])]).await?;
    let from = Some("198.51.100.1");
    for _ in 0..3 {
        assert_eq!(attempt(&gw, "alice", "wrong guess!", from).await?.0, 401);
    }
    // The fourth try comes too soon: 429 with Retry-After, and the right password does not
    // help during the delay (nothing is checked).
    let (status, retry) = attempt(&gw, "ALICE", PASSWORD, from).await?;
    assert_eq!(status, 429, "the username is canonicalised before counting");
    assert!(
        retry
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .is_some_and(|r| (1..=60).contains(&r)),
        "{retry:?}"
    );
    // The form gets a page that says so (the test client is the trusted proxy here).
    let c = client();
    let page = c.get(gw.url("/auth/login")).send().await?;
    let mut jar = crate::support::Jar::default();
    jar.update(page.headers());
    let token = crate::support::hidden_field(&page.text().await?, "csrf_token").ok_or("token")?;
    let r = c
        .post(gw.url("/auth/login"))
        .header("cookie", jar.header())
        .header("x-forwarded-for", "198.51.100.1")
        .form(&[
            ("username", "alice"),
            ("password", "x"),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await?.contains("Too many attempts. Try again in"));

    // Another address is limited on its own: after 6 failures it is refused for any name,
    // while the real user elsewhere is only delayed, never locked out.
    let attacker = Some("203.0.113.66");
    let mut refused = 0;
    for i in 0..8 {
        let (s, _) = attempt(&gw, &format!("nobody{i}"), "guess guess", attacker).await?;
        if s == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "failures 7 and 8 from the address are refused");
    assert_eq!(
        attempt(&gw, "someone-else", "guess guess", attacker)
            .await?
            .0,
        429,
        "any name from that address"
    );
    assert!(gw.log().contains("\"throttled\""));
    Ok(())
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() -> TestResult {
    let up = Upstream::start().await?;
    // The test client is 127.0.0.1: trusted in one gateway, not in the other.
    let trusting = Gateway::start_with(regulated(&up), &[("alice", &[])]).await?;
    let jar = trusting.login("alice", PASSWORD).await?;
    let seen: serde_json::Value = client()
        .get(trusting.url("/x"))
        .header("cookie", jar.header())
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.9")
        .header("x-request-id", "router-trace-1")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(seen["headers"]["x-forwarded-for"][0], "198.51.100.9");
    assert_eq!(
        seen["headers"]["x-request-id"][0], "router-trace-1",
        "a trusted proxy's request id is kept"
    );

    let opts = Options::new(&up.url).env("DASHGATE_LOGIN_MAX_FAILURES_PER_IP", "3");
    let direct = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let jar = direct.login("alice", PASSWORD).await?;
    let seen: serde_json::Value = client()
        .get(direct.url("/x"))
        .header("cookie", jar.header())
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        seen["headers"]["x-forwarded-for"][0], "127.0.0.1",
        "a client cannot choose its address"
    );
    // ...so rotating X-Forwarded-For does not escape the per-address limit.
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            attempt(
                &direct,
                &format!("u{i}"),
                "guess guess",
                Some(&format!("10.9.9.{i}")),
            )
            .await?
            .0,
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    Ok(())
}
