//! The proxy: forwarding, header hygiene, limits, WebSocket, upstream failure.

use futures_util::{SinkExt, StreamExt};

use crate::support::{
    ACCESS, Gateway, Options, PASSWORD, REFRESH, TestResult, Upstream, client, free_port,
};

#[tokio::test]
async fn unauthenticated_navigation_vs_xhr() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let c = client();
    let r = c
        .get(gw.url("/reports/q?x=1&y=a b"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await?;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/auth/login?next=%2Freports%2Fq%3Fx%3D1%26y%3Da%2520b"
    );
    for path in [
        "/_dash-layout",
        "/_dash-update-component",
        "/app/_dash-dependencies",
    ] {
        let r = c
            .get(gw.url(path))
            .header("accept", "text/html")
            .send()
            .await?;
        assert_eq!(r.status(), 401, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()?
                .starts_with("application/json")
        );
    }
    let r = c
        .post(gw.url("/api"))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(up.hits(), 0);
    Ok(())
}

#[tokio::test]
async fn forwards_identity_and_strips_forgeries() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &["viewer"])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let mut rb = client()
        .post(gw.url("/api/items?q=1&r=%2F"))
        .header("cookie", format!("theme=dark; {}; other=1", jar.header()))
        .header("x-csrftoken", jar.csrf())
        .header("authorization", "Basic YXBwOmFwcA==")
        .body("payload-bytes");
    for (k, v) in [
        ("X-Forwarded-User", "admin"),
        ("x-forwarded-user", "root"),
        ("X_Forwarded_User", "admin"),
        ("X-FORWARDED-ROLES", "admin"),
        ("x_forwarded_roles", "admin"),
        ("X-Forwarded-Email", "a@evil"),
        ("Plotly-User-Data", "{\"username\":\"admin\"}"),
        ("plotly_user_data", "{}"),
        ("X-Dashgate-Assertion", "x"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=6.6.6.6"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Permissions", "all"),
        ("X-Request-Id", "chosen-by-the-client"),
    ] {
        rb = rb.header(k, v);
    }
    let r = rb.send().await?;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-request-id"].to_str()?.to_owned();
    let seen: serde_json::Value = r.json().await?;
    let h = &seen["headers"];
    assert_eq!(
        h["x-request-id"],
        serde_json::json!([request_id]),
        "the app gets the gateway's request id"
    );
    assert_ne!(
        request_id, "chosen-by-the-client",
        "a client is not a trusted proxy"
    );
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/api/items");
    assert_eq!(seen["query"], "q=1&r=%2F");
    assert_eq!(seen["body"], "payload-bytes");
    assert_eq!(h["x-forwarded-user"], serde_json::json!(["alice"]));
    assert_eq!(h["x-forwarded-roles"], serde_json::json!(["viewer"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(
        h["x-forwarded-host"],
        serde_json::json!([gw.base.trim_start_matches("http://")])
    );
    assert_eq!(
        h["host"],
        serde_json::json!([gw.base.trim_start_matches("http://")]),
        "the app sees the client's Host by default (upstream_host = \"client\")"
    );
    let data: serde_json::Value = serde_json::from_str(
        h["plotly-user-data"][0]
            .as_str()
            .ok_or("plotly-user-data")?,
    )?;
    assert_eq!(
        data,
        serde_json::json!({"username": "alice", "roles": ["viewer"]})
    );
    assert_eq!(
        h["x-forwarded-permissions"],
        serde_json::json!([""]),
        "the gateway's value, not the client's"
    );
    let assertion = h["x-dashgate-assertion"].as_array().ok_or("no assertion")?;
    assert!(
        assertion.len() == 1
            && assertion[0]
                .as_str()
                .is_some_and(|a| a.split('.').count() == 3)
    );
    for gone in [
        "x_forwarded_user",
        "x_forwarded_roles",
        "x-forwarded-email",
        "plotly_user_data",
        "x_dashgate_assertion",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(h.get(gone).is_none(), "{gone} leaked: {h}");
    }
    assert_eq!(
        h["cookie"],
        serde_json::json!(["theme=dark; other=1"]),
        "gateway cookies removed"
    );
    assert_eq!(
        h["authorization"],
        serde_json::json!(["Basic YXBwOmFwcA=="]),
        "the app's own auth passes"
    );
    assert!(
        h.get("x-csrftoken").is_some(),
        "Dash's header passes through"
    );
    Ok(())
}

#[tokio::test]
async fn upstream_cannot_overwrite_gateway_cookies() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let r = client()
        .get(gw.url("/set-cookie"))
        .header("cookie", jar.header())
        .send()
        .await?;
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(set, vec!["app_pref=dark; Path=/"]);
    Ok(())
}

#[tokio::test]
async fn upstream_down_gives_502_and_the_gateway_keeps_serving() -> TestResult {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = Gateway::start(&dead, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    let r = c
        .get(gw.url("/"))
        .header("cookie", jar.header())
        .header("accept", "text/html")
        .send()
        .await?;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert!(r.text().await?.contains("not reachable"));
    let r = c
        .get(gw.url("/_dash-layout"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    assert_eq!(c.get(gw.url("/auth/healthz")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn body_and_header_limits() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_LIMITS_MAX_BODY_BYTES", "1000");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    let send = |body: reqwest::Body| {
        c.post(gw.url("/upload"))
            .header("cookie", jar.header())
            .header("x-csrftoken", jar.csrf())
            .body(body)
            .send()
    };
    assert_eq!(
        send(reqwest::Body::from(vec![b'a'; 1000])).await?.status(),
        200
    );
    assert_eq!(
        send(reqwest::Body::from(vec![b'a'; 1001])).await?.status(),
        413
    );
    // Chunked (no Content-Length): cut off while streaming.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'b'; 100])));
    assert_eq!(
        send(reqwest::Body::wrap_stream(chunks)).await?.status(),
        413
    );
    // Oversized headers get a 4xx, never a 5xx.
    let r = c
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .header("x-big", "a".repeat(64 * 1024))
        .send()
        .await?;
    assert!(r.status().is_client_error(), "{}", r.status());
    // Oversized login bodies too.
    let r = c
        .post(gw.url("/auth/login"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100_000])
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    assert_eq!(c.get(gw.url("/auth/healthz")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn websocket_upgrades_pass_through() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let url = format!("ws://127.0.0.1:{}/ws", gw.port);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )?;
    req.headers_mut().insert("cookie", jar.header().parse()?);
    req.headers_mut().insert("origin", gw.base.parse()?);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping 1"))
        .await?;
    let echoed = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await?
        .ok_or("closed")??;
    assert_eq!(echoed.into_text()?.as_str(), "ping 1");
    // Without a session, or from another site: refused.
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )?;
    req.headers_mut().insert("cookie", jar.header().parse()?);
    req.headers_mut()
        .insert("origin", "https://evil.example".parse()?);
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let _ = (ACCESS, REFRESH);
    Ok(())
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() -> TestResult {
    use std::io::{Read, Write};
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_LIMITS_HEADER_READ_TIMEOUT", "1s");
    let gw = Gateway::start_with(opts, &[]).await?;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")?;
    let mut buf = Vec::new();
    // The gateway ends the connection by itself (a read timeout here would fail the test).
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "{head}"
    );
    assert_eq!(up.hits(), 0);
    Ok(())
}

#[tokio::test]
async fn health_readiness_and_graceful_stop() -> TestResult {
    let up = Upstream::start().await?;
    let mut gw = Gateway::start(&up.url, &[]).await?;
    let c = client();
    let r = c.get(gw.url("/auth/readyz")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await?["status"], "ready");
    let status = gw.terminate().ok_or("no exit status")?;
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    assert!(gw.log().contains("shutting down"));
    Ok(())
}

#[tokio::test]
async fn responses_stream_and_upstream_connections_are_reused() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let c = client();
    for i in 0..20 {
        let r = c
            .get(gw.url(&format!("/page/{i}")))
            .header("cookie", jar.header())
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        r.bytes().await?;
    }
    assert_eq!(
        up.app_connections(),
        1,
        "20 sequential requests over one kept-alive upstream connection (the health checks \
         keep theirs apart)"
    );

    // The first chunk reaches the client while the upstream still holds the rest back:
    // nothing is buffered in between.
    let mut r = c
        .get(gw.url("/stream"))
        .header("cookie", jar.header())
        .send()
        .await?;
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk()).await??;
    assert_eq!(first.as_deref(), Some(&b"first\n"[..]));
    up.state.release.notify_one();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk()).await??;
    assert_eq!(rest.as_deref(), Some(&b"rest\n"[..]));
    Ok(())
}
