//! Hostile and broken input: every answer is a clean 4xx (or a login redirect), never a panic,
//! a 5xx, or a request the app gets to see.

use std::io::{Read, Write};

use reqwest::header::HeaderValue;

use crate::support::{ACCESS, CSRF, Gateway, PASSWORD, REFRESH, TestResult, Upstream, client};

fn status_ok(s: u16) -> bool {
    (400..500).contains(&s) || s == 302 || s == 303
}

#[tokio::test]
async fn broken_cookies_and_tokens_are_refused_cleanly() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let access = jar.get(ACCESS).ok_or("access")?.to_owned();
    let refresh = jar.get(REFRESH).ok_or("refresh")?.to_owned();
    let c = client();
    let mut values: Vec<String> = vec![
        String::new(),
        "garbage".into(),
        "a.b.c".into(),
        "...".into(),
        access[..access.len() / 2].into(),
        format!("{access}x"),
        access.replace('.', ""),
        format!("{}.", access),
        "x".repeat(5000),
        "x".repeat(9000),
        refresh[..10].into(),
        "dgr_".into(),
        format!("dgr_{}", "A".repeat(43)),
        "\"quoted\"".into(),
        "%00%ff".into(),
    ];
    values.push(format!(
        "{}.{}.{}",
        "e".repeat(3000),
        "e".repeat(3000),
        "e".repeat(3000)
    ));
    let hits = up.hits();
    for v in &values {
        for name in [ACCESS, REFRESH, CSRF] {
            let Ok(hv) = HeaderValue::from_str(&format!("{name}={v}")) else {
                continue;
            };
            for path in ["/", "/_dash-layout", "/auth/userinfo", "/auth/logout"] {
                let r = c
                    .get(gw.url(path))
                    .header("cookie", hv.clone())
                    .header("accept", "text/html")
                    .send()
                    .await?;
                let s = r.status().as_u16();
                assert!(
                    status_ok(s) || (path == "/auth/logout" && s == 200),
                    "{name}={v:.40} {path} -> {s}"
                );
            }
        }
        if let Ok(hv) = HeaderValue::from_str(&format!("Bearer {v}")) {
            let s = c
                .get(gw.url("/x"))
                .header("authorization", hv)
                .send()
                .await?
                .status()
                .as_u16();
            assert_eq!(s, 401, "bearer {v:.40}");
        }
        let s = c
            .post(gw.url("/auth/refresh"))
            .json(&serde_json::json!({"refresh_token": v}))
            .send()
            .await?
            .status()
            .as_u16();
        assert_eq!(s, 401, "refresh {v:.40}");
    }
    // Only the CSRF-cookie variants carried a valid session; none of the others reached the app.
    assert_eq!(up.hits(), hits);
    // Non-UTF-8 header values.
    for (name, bytes) in [
        ("cookie", &b"__Host-dashgate-access=\xff\xfe"[..]),
        ("authorization", b"Bearer \xff\xff"),
        ("accept", b"text/\xffhtml"),
        ("x-csrftoken", b"\xff"),
    ] {
        let r = c
            .post(gw.url("/_dash-update-component"))
            .header(name, HeaderValue::from_bytes(bytes)?)
            .header("cookie", jar.header())
            .send()
            .await?;
        assert!(r.status().is_client_error(), "{name}: {}", r.status());
    }
    assert_eq!(c.get(gw.url("/auth/healthz")).send().await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn broken_forms_and_json() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let c = client();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "application/x-www-form-urlencoded",
            b"username=%ZZ&password=%".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, 0x00, 0x26, 0x3d],
        ),
        (
            "application/x-www-form-urlencoded",
            b"username=a&username=b&password=x".to_vec(),
        ),
        ("application/x-www-form-urlencoded", Vec::new()),
        ("application/json", b"[]".to_vec()),
        (
            "application/json",
            b"{\"username\": 1, \"password\": true}".to_vec(),
        ),
        ("application/json", vec![0xff; 100]),
        (
            "application/json",
            b"{\"username\":\"alice\",\"password\":\"".to_vec(),
        ),
        ("multipart/form-data; boundary=x", b"--x--".to_vec()),
        ("", b"{}".to_vec()),
    ];
    for (ct, body) in bodies {
        let mut rb = c.post(gw.url("/auth/login")).body(body.clone());
        if !ct.is_empty() {
            rb = rb.header("content-type", ct);
        }
        let s = rb.send().await?.status().as_u16();
        assert!((400..500).contains(&s), "{ct} {body:?} -> {s}");
    }
    for path in ["/auth/nope", "/auth/../x", "/auth", "/auth/login/x"] {
        let s = c.get(gw.url(path)).send().await?.status().as_u16();
        assert!(status_ok(s), "{path} -> {s}");
    }
    let s = c
        .delete(gw.url("/auth/login"))
        .send()
        .await?
        .status()
        .as_u16();
    assert_eq!(s, 405);
    assert_eq!(up.hits(), 0);
    Ok(())
}

/// Bytes hyper must reject before any handler runs; the gateway answers 4xx or closes.
#[tokio::test]
async fn malformed_http_on_the_wire() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let requests: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
            .to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        [
            b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec(),
            vec![b'a'; 100_000],
            b"\r\n\r\n".to_vec(),
        ]
        .concat(),
    ];
    for raw in requests {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let _ = s.write_all(&raw);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let head = String::from_utf8_lossy(&buf);
        if let Some(code) = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
        {
            assert!(
                (400..500).contains(&code),
                "{:?} -> {code}",
                String::from_utf8_lossy(&raw[..raw.len().min(60)])
            );
        }
    }
    assert_eq!(up.hits(), 0);
    assert_eq!(
        client().get(gw.url("/auth/healthz")).send().await?.status(),
        200
    );
    Ok(())
}
