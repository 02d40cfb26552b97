//! A Dash page's burst of callbacks over TLS, the way a browser sends it: HTTP/1.1 on six
//! connections (browsers open at most six to one host) against HTTP/2 on one. The connections
//! are opened and warmed first, so a burst is timed from its first request to its last answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;

use super::{Res, Shape};

/// Connections a browser opens to one host for HTTP/1.1.
pub const BROWSER_CONNECTIONS: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Http1,
    Http2,
}

impl Wire {
    pub fn name(self) -> &'static str {
        match self {
            Wire::Http1 => "HTTP/1.1, 6 connections",
            Wire::Http2 => "HTTP/2, 1 connection",
        }
    }
}

/// How long bursts took: the median and the 90th percentile, in ms.
#[derive(Clone, Copy, Default)]
pub struct Timing {
    pub median_ms: f64,
    pub p90_ms: f64,
}

/// A self-signed certificate for 127.0.0.1, written into `dir`: (certificate file, key file,
/// certificate PEM).
pub fn certificate(dir: &Path) -> Res<(PathBuf, PathBuf, String)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    Ok((cert_file, key_file, cert.pem()))
}

type Sender1 = http1::SendRequest<Full<Bytes>>;
type Sender2 = http2::SendRequest<Full<Bytes>>;

enum Senders {
    Http1(Vec<tokio::sync::Mutex<Sender1>>),
    Http2(Sender2),
}

async fn connect(
    port: u16,
    ca_pem: &str,
    alpn: &[u8],
) -> Res<TokioIo<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp)
        .await?;
    if tls.get_ref().1.alpn_protocol() != Some(alpn) {
        return Err(format!(
            "the gateway did not agree to {}",
            String::from_utf8_lossy(alpn)
        )
        .into());
    }
    Ok(TokioIo::new(tls))
}

fn request(port: u16, shape: &Shape, wire: Wire) -> Res<hyper::Request<Full<Bytes>>> {
    let uri = match wire {
        Wire::Http1 => shape.path.clone(),
        Wire::Http2 => format!("https://127.0.0.1:{port}{}", shape.path),
    };
    let mut b = hyper::Request::builder().method(shape.method).uri(uri);
    if wire == Wire::Http1 {
        b = b.header("host", format!("127.0.0.1:{port}"));
    }
    for (k, v) in &shape.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    Ok(b.body(Full::new(Bytes::from(shape.body.clone())))?)
}

async fn answered(resp: hyper::Response<hyper::body::Incoming>) -> Res<()> {
    let status = resp.status();
    resp.into_body().collect().await?;
    if !status.is_success() {
        return Err(format!("a burst request answered {status}: the measurement is void").into());
    }
    Ok(())
}

/// One burst of `size` requests, all sent at once.
async fn one_burst(port: u16, shape: &Shape, senders: &Senders, size: usize) -> Res<()> {
    match senders {
        Senders::Http2(sender) => {
            let all = (0..size).map(|_| {
                let mut s = sender.clone();
                async move {
                    let resp = s.send_request(request(port, shape, Wire::Http2)?).await?;
                    answered(resp).await
                }
            });
            for r in futures_util::future::join_all(all).await {
                r?;
            }
        }
        Senders::Http1(connections) => {
            // Each connection takes the next request when its last one is answered.
            let next = AtomicUsize::new(0);
            let lanes = connections.iter().map(|c| {
                let next = &next;
                async move {
                    let mut c = c.lock().await;
                    while next.fetch_add(1, Ordering::SeqCst) < size {
                        c.ready().await?;
                        let resp = c.send_request(request(port, shape, Wire::Http1)?).await?;
                        answered(resp).await?;
                    }
                    Ok::<(), Box<dyn std::error::Error>>(())
                }
            });
            for r in futures_util::future::join_all(lanes).await {
                r?;
            }
        }
    }
    Ok(())
}

/// Open the connections for `wire`, warm them with `warm` bursts, then time `bursts` bursts of
/// `size` requests each. `between` runs after the warm-up and after the last burst (the caller
/// reads the gateway's CPU time there).
pub fn measure(
    port: u16,
    ca_pem: &str,
    wire: Wire,
    shape: &Shape,
    size: usize,
    bursts: usize,
    mut between: impl FnMut() -> Res<()>,
) -> Res<Timing> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let senders = match wire {
            Wire::Http2 => {
                let io = connect(port, ca_pem, b"h2").await?;
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                Senders::Http2(sender)
            }
            Wire::Http1 => {
                let mut all = Vec::new();
                for _ in 0..BROWSER_CONNECTIONS {
                    let io = connect(port, ca_pem, b"http/1.1").await?;
                    let (sender, conn) = http1::handshake(io).await?;
                    tokio::spawn(conn);
                    all.push(tokio::sync::Mutex::new(sender));
                }
                Senders::Http1(all)
            }
        };
        for _ in 0..(bursts / 10).max(3) {
            one_burst(port, shape, &senders, size).await?;
        }
        between()?;
        let mut times = Vec::with_capacity(bursts);
        for _ in 0..bursts {
            let started = Instant::now();
            one_burst(port, shape, &senders, size).await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        between()?;
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        Ok(Timing {
            median_ms: at(0.5),
            p90_ms: at(0.9),
        })
    })
}

/// Wait until the TLS gateway on `port` answers its health check (30 s at most).
pub fn ready(port: u16, ca_pem: &str, log: &Path) -> Res<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    runtime.block_on(async {
        loop {
            let attempt = async {
                let io = connect(port, ca_pem, b"http/1.1").await?;
                let (mut sender, conn) = http1::handshake(io).await?;
                tokio::spawn(conn);
                let health = Shape::get("/auth/healthz", &[]);
                let resp = sender
                    .send_request(request(port, &health, Wire::Http1)?)
                    .await?;
                answered(resp).await
            };
            match tokio::time::timeout(std::time::Duration::from_secs(2), attempt).await {
                Ok(Ok(())) => return Ok(()),
                _ if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(format!("dashgate with TLS did not become ready:\n{log}").into());
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    })
}
