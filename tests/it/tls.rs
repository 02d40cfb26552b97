//! TLS on the listener, with certificate reload.

use crate::support::{Gateway, Options, PASSWORD, TestResult, Upstream, eventually, self_signed};

async fn served_cert(client: &reqwest::Client, url: &str) -> Option<Vec<u8>> {
    let r = client.get(url).send().await.ok()?;
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

#[tokio::test]
async fn serves_tls_and_reloads_the_certificate() -> TestResult {
    let up = Upstream::start().await?;
    let (cert_a, key_a, der_a) = self_signed()?;
    let gw = Gateway::start_with(
        Options::new(&up.url).tls(&cert_a, &key_a),
        &[("alice", &[])],
    )
    .await?;
    assert!(gw.base.starts_with("https://"));
    let c = gw.client();
    let jar = gw.login("alice", PASSWORD).await?;
    let r = c
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let seen: serde_json::Value = r.json().await?;
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(
        served_cert(&c, &gw.url("/auth/healthz")).await,
        Some(der_a.clone())
    );

    // A broken pair is refused and the running certificate stays.
    std::fs::write(
        gw.dir.path().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n",
    )?;
    let reported = eventually(std::time::Duration::from_secs(15), || async {
        gw.log().contains("new TLS certificate rejected")
    })
    .await;
    assert!(reported);
    assert_eq!(served_cert(&c, &gw.url("/auth/healthz")).await, Some(der_a));

    // A rotated pair is picked up without a restart (new connections get it).
    let (cert_b, key_b, der_b) = self_signed()?;
    std::fs::write(gw.dir.path().join("tls.key"), &key_b)?;
    std::fs::write(gw.dir.path().join("tls.crt"), &cert_b)?;
    let trusting_b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_b.as_bytes())?)
        .tls_info(true)
        .build()?;
    let rotated = eventually(std::time::Duration::from_secs(15), || async {
        served_cert(&trusting_b, &gw.url("/auth/healthz"))
            .await
            .as_deref()
            == Some(der_b.as_slice())
    })
    .await;
    assert!(rotated, "the new certificate is served");
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(gw.url("/auth/healthz").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    Ok(())
}

/// A client that offers HTTP/2 gets it over TLS, and every request on it passes the same
/// pipeline: the session, the CSRF check, the gateway's cookies kept from the app (also when
/// the client splits `Cookie` into several fields, as HTTP/2 clients do), and the app spoken
/// to in HTTP/1.1 with `Host` taken from `:authority`.
#[tokio::test]
async fn http2_when_the_client_picks_it() -> TestResult {
    let up = Upstream::start().await?;
    let (cert, key, _) = self_signed()?;
    let gw = Gateway::start_with(Options::new(&up.url).tls(&cert, &key), &[("alice", &[])]).await?;
    let c = gw.client();
    let jar = gw.login("alice", PASSWORD).await?;

    let anonymous = c
        .get(gw.url("/x"))
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(anonymous.version(), reqwest::Version::HTTP_2);
    assert_eq!(anonymous.status(), 401);

    let mut r = c.get(gw.url("/x?q=1")).header("cookie", "theirs=1");
    for pair in jar.header().split("; ") {
        r = r.header("cookie", pair);
    }
    let r = r.send().await?;
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await?;
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["path"], "/x");
    assert_eq!(seen["query"], "q=1");
    let authority = gw.base.trim_start_matches("https://");
    assert_eq!(seen["headers"]["host"][0], authority);
    assert_eq!(seen["headers"]["cookie"], serde_json::json!(["theirs=1"]));
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "alice");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");

    // Unsafe methods need the CSRF token here too.
    let refused = c
        .post(gw.url("/x"))
        .header("cookie", jar.header())
        .body("{}")
        .send()
        .await?;
    assert_eq!(refused.version(), reqwest::Version::HTTP_2);
    assert_eq!(refused.status(), 403);
    let allowed = c
        .post(gw.url("/x"))
        .header("cookie", jar.header())
        .header("x-csrftoken", jar.csrf())
        .body("{}")
        .send()
        .await?;
    assert_eq!(allowed.status(), 200);
    let seen: serde_json::Value = allowed.json().await?;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "{}");

    // A `Host` that says otherwise than `:authority` is refused before anything else.
    let to_x = || up.seen().iter().filter(|s| s.as_str() == "GET /x").count();
    let before = to_x();
    let forged = c
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .header("host", "evil.test")
        .send()
        .await?;
    assert_eq!(forged.status(), 400);
    assert_eq!(to_x(), before, "the app never saw it");

    // A client that speaks only HTTP/1.1 is served as before.
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes())?)
        .http1_only()
        .build()?;
    let r = h1
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .send()
        .await?;
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    Ok(())
}

#[tokio::test]
async fn http2_can_be_turned_off() -> TestResult {
    let up = Upstream::start().await?;
    let (cert, key, _) = self_signed()?;
    let gw = Gateway::start_with(
        Options::new(&up.url)
            .tls(&cert, &key)
            .env("DASHGATE_TLS_HTTP2", "false"),
        &[("alice", &[])],
    )
    .await?;
    let r = gw.client().get(gw.url("/auth/healthz")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    Ok(())
}
