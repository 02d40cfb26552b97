//! Role-aware layouts against the built binary and a Dash-like upstream: what is filtered and
//! how (identity encoding asked for, validators dropped, private), what streams through
//! untouched, and failing closed when an answer cannot be filtered. (The real Dash app is in
//! tests/browser/test_pruning.py.)

use crate::support::*;

const POLICY: &str = r#"
[[rule]]
dash_components = ["secret-*"]
roles = ["admin"]
"#;

async fn layout(gw: &Gateway, jar: &Jar, query: &str) -> Result<reqwest::Response, reqwest::Error> {
    gw.client()
        .get(gw.url(&format!("/_dash-layout{query}")))
        .header("cookie", jar.header())
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
}

#[tokio::test]
async fn only_users_who_fail_a_rule_get_a_filtered_answer() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).policy(POLICY);
    let gw = Gateway::start_with(opts, &[("admin", &["admin"]), ("viewer", &[])]).await?;
    let admin = gw.login("admin", PASSWORD).await?;
    let viewer = gw.login("viewer", PASSWORD).await?;

    // The admin's answer is the app's, byte for byte: compression asked for, validators kept.
    let r = layout(&gw, &admin, "").await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"layout-v1\"");
    let body: serde_json::Value = r.json().await?;
    let text = body.to_string();
    assert!(
        text.contains("the secret") && text.contains("gzip, br"),
        "{text}"
    );

    // The viewer's: the panel is gone, identity encoding was asked for, no validators, private.
    let r = layout(&gw, &viewer, "").await?;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("etag"));
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let length: usize = r.headers()["content-length"].to_str()?.parse()?;
    let raw = r.bytes().await?;
    assert_eq!(length, raw.len());
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(!text.contains("secret"), "{text}");
    assert!(
        text.contains("public-note") && text.contains("\"none\""),
        "{text}"
    );

    // Other answers to the viewer stream through untouched, compression request included.
    let echoed: serde_json::Value = gw
        .client()
        .get(gw.url("/reports"))
        .header("cookie", viewer.header())
        .header("accept-encoding", "gzip")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(echoed["headers"]["accept-encoding"][0], "gzip");

    // The hidden component's callbacks are refused to the viewer.
    let r = gw
        .client()
        .post(gw.url("/_dash-update-component"))
        .header("cookie", viewer.header())
        .header("x-csrftoken", viewer.csrf())
        .header("origin", &gw.base)
        .json(&serde_json::json!({
            "output": "secret-panel.children",
            "outputs": {"id": "secret-panel", "property": "children"},
            "inputs": [], "changedPropIds": [],
        }))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    Ok(())
}

/// An answer that must be filtered but cannot be read is refused (502), never passed on.
#[tokio::test]
async fn answers_that_cannot_be_filtered_fail_closed() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .policy(POLICY)
        .env("DASHGATE_LIMITS_MAX_INSPECT_BYTES", "16384");
    let gw = Gateway::start_with(opts, &[("admin", &["admin"]), ("viewer", &[])]).await?;
    let admin = gw.login("admin", PASSWORD).await?;
    let viewer = gw.login("viewer", PASSWORD).await?;
    // Compressed although identity was asked for.
    let r = layout(&gw, &viewer, "?gzip").await?;
    assert_eq!(r.status(), 502);
    assert!(!r.text().await?.contains("secret"));
    assert!(
        gw.log()
            .contains("compressed although identity was asked for")
    );
    // Larger than limits.max_inspect_bytes.
    let r = layout(&gw, &viewer, "?big").await?;
    assert_eq!(r.status(), 502);
    // Neither matters for the admin, whose answers are not read.
    assert_eq!(layout(&gw, &admin, "?gzip").await?.status(), 200);
    assert_eq!(layout(&gw, &admin, "?big").await?.status(), 200);
    Ok(())
}
