//! Header spoofing (oauth2-proxy GHSA-vjrc-mh2v-45x6 and the underscore advisories, Pomerium's
//! and Authelia's notes on trusted headers): a client can never make the app believe it is
//! someone else. Every identity or forwarding header a client sends is removed, in any letter
//! case, with `_` for `-` (WSGI folds both into one `HTTP_X_FORWARDED_USER`), and repeated;
//! the app sees only what the gateway set. Requests are written byte for byte on the wire, so
//! the letter case really is the client's.

use crate::support::{
    Gateway, Jar, Options, PASSWORD, RawAnswer, TestResult, Upstream, client, raw_get,
};

/// Headers only the gateway may set, as clients spell them.
const IDENTITY: &[&str] = &[
    "X-Forwarded-User",
    "X-Forwarded-Roles",
    "X-Forwarded-Permissions",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "Plotly-User-Data",
    "X-Dashgate-Assertion",
    "X-Dashgate-User",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "Remote-User",
    "X-Remote-User",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "Forwarded",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-Method-Override",
];

const MARK: &str = "SPOOFED";

const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/public/**"]
public = true
"#;

async fn target() -> Result<(Upstream, Gateway, Jar), Box<dyn std::error::Error>> {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(Options::new(&up.url).policy(POLICY), &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    Ok((up, gw, jar))
}

fn alternating(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// What the app saw, from the echo upstream's report in the answer.
fn seen(answer: &RawAnswer) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    assert_eq!(answer.statuses(), vec![200], "{}", answer.text());
    answer.json()
}

/// None of the spoofed values arrived, and the gateway's own identity did.
fn only_ours(seen: &serde_json::Value, user: Option<&str>) {
    let headers = &seen["headers"];
    assert!(
        !headers.to_string().contains(MARK),
        "a spoofed header got through: {headers}"
    );
    match user {
        Some(u) => assert_eq!(headers["x-forwarded-user"], serde_json::json!([u])),
        None => assert!(headers.get("x-forwarded-user").is_none(), "{headers}"),
    }
    assert_eq!(headers["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
}

#[tokio::test]
async fn identity_headers_in_every_letter_case() -> TestResult {
    let (_up, gw, jar) = target().await?;
    let mut lines = Vec::new();
    for name in IDENTITY {
        for spelling in [
            name.to_string(),
            name.to_ascii_lowercase(),
            name.to_ascii_uppercase(),
            alternating(name),
        ] {
            lines.push(format!("{spelling}: {MARK}"));
        }
    }
    only_ours(
        &seen(&raw_get(&gw, "/x", &jar, &lines).await?)?,
        Some("alice"),
    );
    Ok(())
}

#[tokio::test]
async fn identity_headers_with_underscores() -> TestResult {
    let (_up, gw, jar) = target().await?;
    let mut lines = Vec::new();
    for name in IDENTITY {
        let under = name.replace('-', "_");
        for spelling in [
            under.clone(),
            under.to_ascii_lowercase(),
            under.to_ascii_uppercase(),
        ] {
            lines.push(format!("{spelling}: {MARK}"));
        }
        // Mixed: some dashes, some underscores.
        lines.push(format!("{}: {MARK}", name.replacen('-', "_", 1)));
    }
    only_ours(
        &seen(&raw_get(&gw, "/x", &jar, &lines).await?)?,
        Some("alice"),
    );
    Ok(())
}

#[tokio::test]
async fn identity_headers_duplicated() -> TestResult {
    let (_up, gw, jar) = target().await?;
    let mut lines = Vec::new();
    for name in IDENTITY {
        lines.push(format!("{name}: {MARK}-1"));
        lines.push(format!("{name}: {MARK}-2"));
        lines.push(format!("{}: {MARK}-3", name.to_ascii_lowercase()));
    }
    let seen = seen(&raw_get(&gw, "/x", &jar, &lines).await?)?;
    only_ours(&seen, Some("alice"));
    for name in [
        "x-forwarded-user",
        "x-forwarded-roles",
        "plotly-user-data",
        "x-forwarded-for",
    ] {
        assert_eq!(
            seen["headers"][name].as_array().map(Vec::len),
            Some(1),
            "{name} sent more than once"
        );
    }
    Ok(())
}

#[tokio::test]
async fn identity_headers_on_public_paths() -> TestResult {
    // No session at all: the app must not mistake a forged header for a login.
    let (_up, gw, _) = target().await?;
    let lines: Vec<String> = IDENTITY.iter().map(|n| format!("{n}: {MARK}")).collect();
    only_ours(
        &seen(&raw_get(&gw, "/public/page", &Jar::default(), &lines).await?)?,
        None,
    );
    Ok(())
}

#[tokio::test]
async fn identity_headers_named_in_connection() -> TestResult {
    // `Connection: x-forwarded-user` asks proxies to drop a header: the gateway's own
    // identity headers must not be removable that way, nor a spoofed one kept.
    let (_up, gw, jar) = target().await?;
    let lines = vec![
        "Connection: X-Forwarded-User, X-Forwarded-Roles, Plotly-User-Data".to_owned(),
        format!("X-Forwarded-User: {MARK}"),
    ];
    let seen = seen(&raw_get(&gw, "/x", &jar, &lines).await?)?;
    only_ours(&seen, Some("alice"));
    assert!(seen["headers"].get("plotly-user-data").is_some());
    Ok(())
}

#[tokio::test]
async fn host_header_does_not_steer_redirects() -> TestResult {
    let (_up, gw, _) = target().await?;
    for (name, value) in [
        ("host", "evil.example"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example;proto=https"),
    ] {
        let r = client()
            .get(gw.url("/dashboard"))
            .header("accept", "text/html")
            .header(name, value)
            .send()
            .await?;
        assert_eq!(r.status(), 302, "{name}");
        let location = r.headers()["location"].to_str()?;
        assert!(location.starts_with("/auth/login"), "{name}: {location}");
        let page = client()
            .get(gw.url("/auth/login"))
            .header(name, value)
            .send()
            .await?
            .text()
            .await?;
        assert!(
            !page.contains("evil.example"),
            "{name} reached the login page"
        );
    }
    Ok(())
}

/// Every answer under `/auth` is `nosniff` and `no-store` (but the public keys and the
/// stylesheet, which are the same for everyone and meant to be cached); every page the gateway
/// renders is framed by no one, leaks no referrer and runs no script.
#[tokio::test]
async fn gateway_answers_carry_security_headers() -> TestResult {
    let (_up, gw, jar) = target().await?;
    let c = client();
    let (access, refresh) = gw.token_login("alice", PASSWORD).await?;
    let mut answers = Vec::new();
    for path in [
        "/auth/login",
        "/auth/login?next=/x",
        "/auth/logout",
        "/auth/userinfo",
        "/auth/jwks.json",
        "/auth/healthz",
        "/auth/readyz",
        "/auth/metrics",
        "/auth/assets/dashgate.css",
        "/auth/assets/dashgate.svg",
        "/auth/nope",
    ] {
        let r = c
            .get(gw.url(path))
            .header("cookie", jar.header())
            .send()
            .await?;
        answers.push((format!("GET {path}"), r));
    }
    let r = c
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": "wrong password!"}))
        .send()
        .await?;
    answers.push(("POST /auth/login (bad)".to_owned(), r));
    let r = c
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await?;
    answers.push(("POST /auth/refresh".to_owned(), r));
    let r = c
        .get(gw.url("/auth/userinfo"))
        .bearer_auth(&access)
        .send()
        .await?;
    answers.push(("GET /auth/userinfo (bearer)".to_owned(), r));
    let (status, _) = gw.try_login("alice", "wrong password!", "/").await?;
    assert_eq!(status, 401);
    for (what, r) in &answers {
        let h = r.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        if what.contains("jwks.json") || what.contains("/auth/assets/") {
            assert!(
                get("cache-control").starts_with("public, max-age="),
                "{what}"
            );
        } else {
            assert_eq!(get("cache-control"), "no-store", "{what}");
        }
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        if get("content-type").starts_with("text/html") {
            let csp = get("content-security-policy");
            assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
            assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
            assert!(
                !csp.contains("script-src"),
                "{what}: scripts allowed: {csp}"
            );
            assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
            assert_eq!(get("x-frame-options"), "DENY", "{what}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn health_check_user_agent_gets_no_pass() -> TestResult {
    // oauth2-proxy GHSA-5hvv-m4w4-gf6v: a probe's User-Agent skipped authentication.
    let (up, gw, _) = target().await?;
    for ua in [
        "kube-probe/1.30",
        "dashgate-health-check",
        "GoogleHC/1.0",
        "ELB-HealthChecker/2.0",
    ] {
        let r = client()
            .get(gw.url("/dashboard"))
            .header("user-agent", ua)
            .header("accept", "application/json")
            .send()
            .await?;
        assert_eq!(r.status(), 401, "{ua}");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    Ok(())
}

#[tokio::test]
async fn rewrite_headers_do_not_change_the_path_judged() -> TestResult {
    // oauth2-proxy GHSA-7x63-xv5r-3p2x and the X-Original-URL class: the rule is chosen by the
    // request line, and the app never receives a header naming another path or method.
    let (up, gw, jar) = target().await?;
    for (name, value) in [
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Original-URL", "/public/x"),
        ("X-Rewrite-URL", "/public/x"),
    ] {
        let r = raw_get(
            &gw,
            "/dashboard",
            &Jar::default(),
            &[format!("{name}: {value}")],
        )
        .await?;
        assert_eq!(r.statuses(), vec![302], "{name}: {}", r.text());
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    let lines = vec![
        format!("X-HTTP-Method-Override: DELETE"),
        format!("X-Method-Override: DELETE"),
        format!("X-Original-URL: /admin"),
    ];
    let seen = seen(&raw_get(&gw, "/x", &jar, &lines).await?)?;
    let headers = seen["headers"].as_object().ok_or("headers")?;
    for name in [
        "x-http-method-override",
        "x-method-override",
        "x-original-url",
    ] {
        assert!(!headers.contains_key(name), "{name} reached the app");
    }
    Ok(())
}
