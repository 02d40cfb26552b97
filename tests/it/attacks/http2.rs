//! HTTP/2 is a second way into the app when dashgate terminates TLS (ALPN `h2`), and is held to
//! the same pipeline as HTTP/1.1: path rules however the `:path` is spelled, sign-in, CSRF,
//! `Host` against `:authority`. The frames here are written with the `h2` crate, so requests no
//! browser would send (CONNECT, a flood of resets, a header list past the limit) are sent as
//! they are. Each case checks that the app never saw what was refused and that the gateway
//! goes on serving.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use rustls::pki_types::pem::PemObject;

use crate::support::{Gateway, Jar, Options, TestResult, Upstream, self_signed};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

use super::paths::POLICY;

struct Site {
    up: Upstream,
    gw: Gateway,
    viewer: Jar,
    admin: Jar,
}

impl Site {
    async fn new() -> Res<Site> {
        let up = Upstream::start().await?;
        let (cert, key, _) = self_signed()?;
        let gw =
            Gateway::start_with(Options::new(&up.url).tls(&cert, &key).policy(POLICY), &[]).await?;
        let (admin, viewer) = crate::support::admin_and_viewer(&gw).await?;
        Ok(Site {
            up,
            gw,
            viewer,
            admin,
        })
    }

    /// A fresh HTTP/2 connection to the gateway (ALPN `h2` only).
    async fn h2(&self) -> Res<h2::client::SendRequest<Bytes>> {
        let ca = self
            .gw
            .ca
            .as_deref()
            .ok_or("the gateway has no certificate")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert?)?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.gw.port)).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp)
            .await?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = h2::client::handshake(tls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send.ready().await?)
    }

    fn uri(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.gw.port)
    }

    /// Send one request on `send` and read the whole answer.
    async fn exchange(
        send: &mut h2::client::SendRequest<Bytes>,
        req: Request<()>,
        body: Option<&str>,
    ) -> Res<(StatusCode, String)> {
        let mut ready = send.clone().ready().await?;
        let (answer, mut stream) = ready.send_request(req, body.is_none())?;
        if let Some(b) = body {
            stream.send_data(Bytes::from(b.to_owned()), true)?;
        }
        let answer = answer.await?;
        let status = answer.status();
        let mut body = answer.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&text).into_owned()))
    }

    fn get(&self, path: &str, jar: &Jar) -> Res<Request<()>> {
        Ok(Request::get(self.uri(path))
            .header("cookie", jar.header())
            .header("accept", "application/json")
            .body(())?)
    }

    /// The gateway still answers on a new connection.
    async fn still_serving(&self) -> TestResult {
        let mut send = self.h2().await?;
        let (status, _) = Self::exchange(
            &mut send,
            Request::get(self.uri("/auth/healthz")).body(())?,
            None,
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        Ok(())
    }
}

/// Path rules hold over HTTP/2 however `:path` is spelled (it is sent as written: no client
/// tidies it), as does the sign-in and the CSRF check.
#[tokio::test]
async fn the_policy_holds_over_http2() -> TestResult {
    let site = Site::new().await?;
    let mut send = site.h2().await?;
    for path in [
        "/admin",
        "/%61dmin",
        "/assets/../admin",
        "/ADMIN/",
        "//admin",
        "/admin;x",
    ] {
        let before = site.up.hits();
        let (status, _) = Site::exchange(&mut send, site.get(path, &site.viewer)?, None).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "viewer {path}");
        assert_eq!(site.up.hits(), before, "viewer {path} reached the app");
        let (status, body) = Site::exchange(&mut send, site.get(path, &site.admin)?, None).await?;
        assert_eq!(status, StatusCode::OK, "admin {path}: {body}");
        let seen: serde_json::Value = serde_json::from_str(&body)?;
        assert_eq!(seen["version"], "HTTP/1.1");
    }
    let (status, _) = Site::exchange(&mut send, site.get("/x", &Jar::default())?, None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session");

    let before = site.up.hits();
    let post = |jar: &Jar, token: Option<String>| -> Res<Request<()>> {
        let mut b = Request::post(site.uri("/x"))
            .header("cookie", jar.header())
            .header("content-type", "application/json");
        if let Some(t) = token {
            b = b.header("x-csrftoken", t);
        }
        Ok(b.body(())?)
    };
    let (status, _) = Site::exchange(&mut send, post(&site.viewer, None)?, Some("{}")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let forged = Some(site.admin.csrf());
    let (status, _) = Site::exchange(&mut send, post(&site.viewer, forged)?, Some("{}")).await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another session's CSRF token"
    );
    assert_eq!(site.up.hits(), before, "a refused POST reached the app");
    let own = Some(site.viewer.csrf());
    let (status, body) = Site::exchange(&mut send, post(&site.viewer, own)?, Some("{}")).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

/// `Host` must agree with `:authority`: a request naming another host in `Host` is refused, so
/// the app, the CSRF origin check and the logs all see one host.
#[tokio::test]
async fn host_must_agree_with_the_authority() -> TestResult {
    let site = Site::new().await?;
    let mut send = site.h2().await?;
    let before = site.up.hits();
    let req = Request::get(site.uri("/x"))
        .header("cookie", site.admin.header())
        .header("host", "evil.test")
        .body(())?;
    let (status, _) = Site::exchange(&mut send, req, None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(site.up.hits(), before);
    Ok(())
}

/// CONNECT (and TRACE) never reach the app, on either protocol: Dash has no use for them, and
/// a tunnel opened through the gateway would carry what the policy never sees.
#[tokio::test]
async fn connect_and_trace_are_refused() -> TestResult {
    let site = Site::new().await?;
    let mut send = site.h2().await?;
    let before = site.up.hits();
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri(site.up.url.trim_start_matches("http://"))
        .header("cookie", site.admin.header())
        .body(())?;
    let (status, _) = Site::exchange(&mut send, connect, None).await?;
    assert!(status.is_client_error(), "CONNECT over HTTP/2: {status}");
    let trace = Request::builder()
        .method(Method::TRACE)
        .uri(site.uri("/x"))
        .header("cookie", site.admin.header())
        .body(())?;
    let (status, _) = Site::exchange(&mut send, trace, None).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "TRACE over HTTP/2");
    let h1 = site.gw.client();
    let r = h1
        .request(Method::TRACE, site.gw.url("/x"))
        .header("cookie", site.admin.header())
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "TRACE");
    assert_eq!(site.up.hits(), before, "{:?}", site.up.seen());
    site.still_serving().await
}

/// A header list past `limits.max_header_bytes` is refused without reaching the app.
#[tokio::test]
async fn oversized_header_lists_are_refused() -> TestResult {
    let site = Site::new().await?;
    let mut send = site.h2().await?;
    let before = site.up.hits();
    let req = Request::get(site.uri("/x"))
        .header("cookie", site.admin.header())
        .header("x-padding", "a".repeat(32 * 1024))
        .body(())?;
    match Site::exchange(&mut send, req, None).await {
        Ok((status, _)) => assert!(status.is_client_error(), "{status}"),
        Err(e) => assert!(
            e.to_string().contains("reset")
                || e.to_string().contains("REFUSED")
                || e.to_string().contains("protocol"),
            "{e}"
        ),
    }
    assert_eq!(site.up.hits(), before);
    site.still_serving().await
}

/// A connection carries at most 100 requests at once, and a flood of opened-then-reset streams
/// (CVE-2023-44487, "rapid reset") ends that connection, not the gateway.
#[tokio::test]
async fn streams_are_bounded_and_resets_do_not_harm() -> TestResult {
    let site = Site::new().await?;
    let mut send = site.h2().await?;
    let (status, _) = Site::exchange(&mut send, site.get("/x", &site.admin)?, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(send.current_max_send_streams(), 100);

    let flood = site.h2().await?;
    let mut sent = 0;
    for _ in 0..2000 {
        let Ok(mut ready) = flood.clone().ready().await else {
            break;
        };
        let Ok((_, mut stream)) = ready.send_request(site.get("/x", &site.admin)?, true) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
    }
    assert!(sent > 0);
    site.still_serving().await?;
    let (status, _) = Site::exchange(&mut send, site.get("/x", &site.admin)?, None).await?;
    assert_eq!(status, StatusCode::OK, "another connection is untouched");
    Ok(())
}
