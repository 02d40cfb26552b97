//! Role-aware layouts against the built binary and a Dash-like upstream: what is filtered and
//! how (identity encoding asked for, validators dropped, private), what streams through
//! untouched, and failing closed when an answer cannot be filtered. (The real Dash app is in
//! tests/browser/test_pruning.py.)

use std::time::Duration;

use crate::support::*;

const POLICY: &str = r#"
[[rule]]
dash_components = ["secret-*"]
roles = ["admin"]
"#;

/// The test upstream, a gateway with [`POLICY`] (and what `more` adds) in front of it, and
/// signed-in `admin` (passes the rule) and `viewer` (fails it).
async fn start(
    more: impl FnOnce(Options) -> Options,
) -> Result<(Upstream, Gateway, Jar, Jar), Box<dyn std::error::Error>> {
    let up = Upstream::start().await?;
    let opts = more(Options::new(&up.url).policy(POLICY));
    let gw = Gateway::start_with(opts, &[("admin", &["admin"]), ("viewer", &[])]).await?;
    let admin = gw.login("admin", PASSWORD).await?;
    let viewer = gw.login("viewer", PASSWORD).await?;
    Ok((up, gw, admin, viewer))
}

async fn layout(gw: &Gateway, jar: &Jar, query: &str) -> Result<reqwest::Response, reqwest::Error> {
    gw.client()
        .get(gw.url(&format!("{LAYOUT}{query}")))
        .header("cookie", jar.header())
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
}

#[tokio::test]
async fn only_users_who_fail_a_rule_get_a_filtered_answer() -> TestResult {
    let (_up, gw, admin, viewer) = start(|o| o).await?;

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

/// Compressed answers that must be filtered are decompressed, pruned and sent uncompressed,
/// whichever coding the app chose; the admin's pass through as the app sent them.
#[tokio::test]
async fn compressed_answers_are_decompressed_then_pruned() -> TestResult {
    let (_up, gw, admin, viewer) = start(|o| o).await?;
    for coding in ["gzip", "deflate", "br"] {
        let r = layout(&gw, &viewer, &format!("?encoding={coding}")).await?;
        assert_eq!(r.status(), 200, "{coding}");
        assert!(!r.headers().contains_key("content-encoding"), "{coding}");
        let text = r.text().await?;
        assert!(!text.contains("secret"), "{coding}: {text}");
        assert!(text.contains("public-note"), "{coding}: {text}");
        // Unread for the admin: still compressed, so no plain text in it.
        let r = layout(&gw, &admin, &format!("?encoding={coding}")).await?;
        assert_eq!(r.headers()["content-encoding"], coding);
        assert!(!String::from_utf8_lossy(&r.bytes().await?).contains("public-note"));
    }
    Ok(())
}

/// An index page is read for a user who fails a rule whatever the client says it accepts:
/// its `_dash-config` loses the hidden components, compressed or not.
#[tokio::test]
async fn html_pages_are_pruned_whatever_the_client_accepts() -> TestResult {
    let (_up, gw, admin, viewer) = start(|o| o).await?;
    let page = |jar: &Jar, accept: &'static str| {
        gw.client()
            .get(gw.url("/page"))
            .header("cookie", jar.header())
            .header("accept", accept)
            .header("accept-encoding", "gzip")
            .send()
    };
    // A script's fetch (gzip kept, so the app compresses) and a browser navigation (asked
    // uncompressed).
    for accept in ["*/*", "text/html,application/xhtml+xml"] {
        let r = page(&viewer, accept).await?;
        assert_eq!(r.status(), 200, "{accept}");
        assert!(!r.headers().contains_key("content-encoding"), "{accept}");
        let text = r.text().await?;
        assert!(
            text.contains("_dash-config") && !text.contains("the secret"),
            "{text}"
        );
    }
    let r = page(&admin, "*/*").await?;
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut plain = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&r.bytes().await?[..]),
        &mut plain,
    )?;
    assert!(plain.contains("the secret"), "{plain}");
    Ok(())
}

/// An answer that must be filtered but cannot be read is refused (502), never passed on.
#[tokio::test]
async fn answers_that_cannot_be_filtered_fail_closed() -> TestResult {
    let (_up, gw, admin, viewer) =
        start(|o| o.env("DASHGATE_LIMITS_MAX_INSPECT_BYTES", "16384")).await?;
    let cases = [
        // A coding the gateway cannot read.
        ("?encoding=zstd", "a coding the gateway cannot read"),
        // Larger than limits.max_inspect_bytes.
        ("?big", "larger than limits.max_inspect_bytes"),
        // Small compressed, too large once inflated.
        ("?bomb&encoding=gzip", "once decompressed"),
        // A byte range (whatever the request said).
        ("?partial", "a byte range"),
    ];
    for (query, logged) in cases {
        let r = layout(&gw, &viewer, query).await?;
        assert_eq!(r.status(), 502, "{query}");
        assert!(!r.text().await?.contains("secret"), "{query}");
        let seen = eventually(Duration::from_secs(5), || async {
            gw.log().contains(logged)
        })
        .await;
        assert!(seen, "{query}: the log names the reason ({logged})");
        // Not read for the admin, so no limit applies.
        assert!(
            layout(&gw, &admin, query).await?.status().is_success(),
            "{query}"
        );
    }
    Ok(())
}

/// A callback POST as dash-renderer sends it, for the callback with this key.
async fn run_callback(
    gw: &Gateway,
    path: &str,
    jar: &Jar,
    key: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let (id, prop) = key.rsplit_once('.').unwrap_or((key, ""));
    let body = serde_json::json!({
        "output": key,
        "outputs": {"id": id, "property": prop},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "state": [],
        "changedPropIds": ["go.n_clicks"],
    });
    gw.dash_post(path, jar, &body).await
}

#[tokio::test]
async fn the_app_callback_list_decides_running_outputs_and_is_fetched_sparingly() -> TestResult {
    let (up, gw, admin, viewer) = start(|o| o).await?;
    // `run.children` writes `secret-panel.children` while it runs: a viewer may not run it.
    let r = run_callback(&gw, "/_dash-update-component", &viewer, "run.children").await?;
    assert_eq!(r.status(), 403);
    let r = run_callback(&gw, "/_dash-update-component", &admin, "run.children").await?;
    assert_eq!(r.status(), 200);
    // Other callbacks are the viewer's to run.
    for _ in 0..5 {
        let r = run_callback(&gw, "/_dash-update-component", &viewer, "bg.children").await?;
        assert_eq!(r.status(), 200);
    }
    // The list was read from the app once for all of these; the admin never needed it.
    assert_eq!(
        up.state
            .dependency_fetches
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // A callback the list does not know makes the gateway ask again (at most every two
    // seconds), but not for every request.
    let fetches = || {
        up.state
            .dependency_fetches
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let asked_again = eventually(Duration::from_secs(5), || async {
        let r = run_callback(&gw, "/_dash-update-component", &viewer, "new.children").await;
        r.is_ok_and(|r| r.status() == 200) && fetches() == 2
    })
    .await;
    assert!(asked_again, "fetched {} times", fetches());
    for _ in 0..5 {
        let r = run_callback(&gw, "/_dash-update-component", &viewer, "new.children").await?;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(fetches(), 2);
    // An app whose list cannot be read: the viewer's callbacks fail closed, the admin's pass.
    let r = run_callback(&gw, "/broken/_dash-update-component", &viewer, "x.children").await?;
    assert_eq!(r.status(), 502);
    let r = run_callback(&gw, "/broken/_dash-update-component", &admin, "x.children").await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_callback_list_a_viewer_gets_holds_nothing_of_hidden_components() -> TestResult {
    let (_up, gw, admin, viewer) = start(|o| o).await?;
    let get = |jar: &Jar| {
        gw.client()
            .get(gw.url("/app/_dash-dependencies"))
            .header("cookie", jar.header())
            .header("accept", "application/json")
            .send()
    };
    let text = get(&admin).await?.text().await?;
    assert!(
        text.contains("RUNNING-SECRET") && text.contains("f00d"),
        "{text}"
    );
    let r = get(&viewer).await?;
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let list: serde_json::Value = r.json().await?;
    let text = list.to_string();
    assert!(
        !text.contains("RUNNING-SECRET") && !text.contains("f00d"),
        "{text}"
    );
    assert_eq!(list[0]["running"]["runningOff"], serde_json::json!({}));
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{text}");
    Ok(())
}
