//! `/auth/metrics` (Prometheus text, not for anonymous users unless configured) and JSON logs.

use crate::support::{Gateway, Jar, Options, PASSWORD, TestResult, Upstream, client};

fn value(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_and_are_guarded() -> TestResult {
    let up = Upstream::start().await?;
    let token_dir = tempfile::tempdir()?;
    let token_file = token_dir.path().join("scrape-token");
    std::fs::write(&token_file, "a-long-scrape-token-0123456789\n")?;
    let opts = Options::new(&up.url)
        .env(
            "DASHGATE_METRICS_TOKEN_FILE",
            &token_file.display().to_string(),
        )
        .env("DASHGATE_LOG_FORMAT", "json");
    let gw = Gateway::start_with(opts, &[("alice", &[]), ("ops", &["ops"])]).await?;
    assert!(
        gw.cli(&["roles", "add", "ops", "--perm", "dashgate:metrics"], None)?
            .status
            .success()
    );
    let c = client();
    let alice = gw.login("alice", PASSWORD).await?;
    assert_eq!(gw.try_login("alice", "not the password", "/").await?.0, 401);
    for _ in 0..3 {
        assert_eq!(gw.status("/page", &alice).await?, 200);
    }
    assert_eq!(
        c.get(gw.url("/page"))
            .header("accept", "application/json")
            .send()
            .await?
            .status(),
        401
    );

    // Who may read them.
    assert_eq!(c.get(gw.url("/auth/metrics")).send().await?.status(), 401);
    assert_eq!(gw.status("/auth/metrics", &alice).await?, 403);
    assert_eq!(
        c.get(gw.url("/auth/metrics"))
            .bearer_auth("a-long-scrape-token-0123456788")
            .send()
            .await?
            .status(),
        401
    );
    let ops = gw.login("ops", PASSWORD).await?;
    assert_eq!(gw.status("/auth/metrics", &ops).await?, 200);
    let r = c
        .get(gw.url("/auth/metrics"))
        .bearer_auth("a-long-scrape-token-0123456789")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await?;
    assert_eq!(
        value(&text, "dashgate_logins_total{result=\"success\"}"),
        Some(2)
    );
    assert_eq!(
        value(&text, "dashgate_logins_total{result=\"failure\"}"),
        Some(1)
    );
    assert!(value(&text, "dashgate_requests_total{outcome=\"ok\"}").is_some_and(|n| n >= 3));
    assert!(
        value(
            &text,
            "dashgate_requests_total{outcome=\"unauthenticated\"}"
        )
        .is_some_and(|n| n >= 2)
    );
    assert!(value(&text, "dashgate_upstream_duration_seconds_count").is_some_and(|n| n >= 3));
    assert_eq!(value(&text, "dashgate_upstreams_healthy"), Some(1));

    // Logs are JSON, one event per line, and never carry the password.
    let log = gw.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.len() >= 4 && events.len() == log.lines().count(),
        "every line is JSON"
    );
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "login" && e["fields"]["result"] == "failure")
    );
    // Every audit event names its request.
    let login_events: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["event"] == "login")
        .collect();
    assert!(!login_events.is_empty());
    assert!(
        login_events.iter().all(|e| e["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() >= 16)),
        "{login_events:?}"
    );
    assert!(!log.contains(PASSWORD) && !log.contains("not the password"));
    Ok(())
}

#[tokio::test]
async fn public_metrics_when_configured() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(
        Options::new(&up.url).env("DASHGATE_METRICS_PUBLIC", "true"),
        &[],
    )
    .await?;
    let r = client()
        .get(gw.url("/auth/metrics"))
        .header("cookie", Jar::default().header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await?
            .contains("# TYPE dashgate_requests_total counter")
    );
    Ok(())
}
