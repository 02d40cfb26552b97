//! The upstream side: a pooled keep-alive HTTP/1.1 client, streaming bodies both ways, and
//! WebSocket (and other `Upgrade`) tunnelling.

pub mod app_cache;
pub mod app_config;
pub mod balance;
pub mod callback_registry;
pub mod client_ip;
pub mod dependencies;
pub mod filter;
pub mod headers;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::error::Error;
use crate::http_util::{Body, BoxError, ClientBody, Response};

pub use crate::config::UpstreamHost;

/// How many connection workers serve client connections: one per core, each a
/// single-threaded runtime, so that a request and the upstream connection it uses are driven
/// on the same thread.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

thread_local! {
    /// The connection worker this thread is (`usize::MAX` elsewhere: the background tasks).
    pub static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Forwards requests to the upstream(s).
pub struct Proxy {
    /// One pool per connection worker ([`WORKER`]): a request only ever uses upstream
    /// connections driven on its own thread.
    clients: Vec<Client<HttpConnector, Body>>,
    pub upstreams: balance::Balancer,
    timeout: Duration,
    max_body: u64,
    /// Keep the client's `Host` ([`UpstreamHost::Client`]) or send the upstream's authority.
    upstream_host: UpstreamHost,
}

impl Proxy {
    pub fn new(
        upstreams: Vec<Uri>,
        timeout: Duration,
        max_body: u64,
        upstream_host: UpstreamHost,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        // One more pool for the gateway's own requests from other threads (health checks,
        // callback lists read by background tasks).
        let clients = (0..=workers())
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .pool_max_idle_per_host(256)
                    .build(connector.clone())
            })
            .collect();
        Proxy {
            clients,
            upstreams: balance::Balancer::new(upstreams),
            timeout,
            max_body,
            upstream_host,
        }
    }

    /// This thread's pool: its worker's, or the one for threads that are no worker.
    fn client(&self) -> Option<&Client<HttpConnector, Body>> {
        let worker = WORKER.with(std::cell::Cell::get);
        self.clients.get(worker).or_else(|| self.clients.last())
    }

    /// Wrap a client body so that it can be streamed upstream, failing once it exceeds the
    /// configured maximum.
    pub fn stream_body<B: ClientBody>(&self, body: B) -> Body {
        let limit = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        Limited::new(body, limit)
            .map_err(BoxError::from)
            .boxed_unsync()
    }

    /// Send `req` (headers already sanitised) to an upstream and stream the answer back.
    /// `upgrade` is the client connection's upgrade and what carries it, for WebSocket
    /// handshakes; `affinity` pins a session to one upstream.
    pub async fn forward(
        &self,
        mut req: Request<Body>,
        upgrade: Option<Upgrade>,
        affinity: Option<&str>,
    ) -> Result<Response, Error> {
        let (member, base) = self.upstreams.pick(affinity).ok_or(Error::BadGateway)?;
        let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let mut parts = base.clone().into_parts();
        parts.path_and_query = Some(
            path_and_query
                .parse()
                .map_err(|_| Error::BadRequest("malformed request target"))?,
        );
        *req.uri_mut() =
            Uri::from_parts(parts).map_err(|_| Error::BadRequest("malformed request target"))?;
        // The client's `Host` passes unless the operator asked for the upstream's; the
        // gateway's own requests (callback lists, health checks) carry none and get the
        // upstream's.
        let keep =
            self.upstream_host == UpstreamHost::Client && req.headers().contains_key(header::HOST);
        if let (false, Some(authority)) = (keep, base.authority()) {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        let upgrading = upgrade.is_some();
        if upgrading {
            req.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        let client = self.client().ok_or(Error::BadGateway)?;
        let result = tokio::time::timeout(self.timeout, client.request(req)).await;
        let mut resp = match result {
            Err(_) => return Err(Error::GatewayTimeout),
            Ok(Err(e)) => {
                let err = classify(&e);
                if e.is_connect() && self.upstreams.mark(member, false) {
                    tracing::warn!(upstream = %base, "upstream ejected: connection failed");
                }
                return Err(err);
            }
            Ok(Ok(r)) => r,
        };
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            if let Some(upgrade) = upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                tokio::spawn(switch(upgrade, upstream_upgrade));
                let (mut parts, _) = resp.into_parts();
                let upgrade = parts.headers.get(header::UPGRADE).cloned();
                headers::strip_hop_by_hop(&mut parts.headers);
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                if let Some(u) = upgrade {
                    parts.headers.insert(header::UPGRADE, u);
                }
                return Ok(Response::from_parts(parts, crate::http_util::empty()));
            }
            return Err(Error::BadGateway);
        }
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        // Our answer speaks our HTTP version, not the upstream's (RFC 9110 6.2): an HTTP/1.0
        // upstream must not make the client's connection an HTTP/1.0 one.
        parts.version = http::Version::HTTP_11;
        Ok(Response::from_parts(
            parts,
            body.map_err(BoxError::from).boxed_unsync(),
        ))
    }
}

/// Check every upstream every `interval` (GET `path`; any answer below 500 is healthy) and
/// eject or re-admit it.
pub async fn health_checks(proxy: std::sync::Arc<Proxy>, path: String, interval: Duration) {
    loop {
        for i in 0..proxy.upstreams.len() {
            let Some(base) = proxy.upstreams.uri(i).cloned() else {
                continue;
            };
            let mut parts = base.clone().into_parts();
            parts.path_and_query = path.parse().ok();
            let Ok(uri) = Uri::from_parts(parts) else {
                continue;
            };
            let req = Request::get(uri)
                .header(header::USER_AGENT, "dashgate-health-check")
                .body(crate::http_util::empty());
            let Ok(req) = req else { continue };
            let Some(client) = proxy.client() else {
                continue;
            };
            let probe =
                tokio::time::timeout(interval.min(Duration::from_secs(5)), client.request(req))
                    .await;
            let healthy = matches!(&probe, Ok(Ok(r)) if r.status().as_u16() < 500);
            if proxy.upstreams.mark(i, healthy) {
                if healthy {
                    tracing::info!(upstream = %base, "upstream healthy again: re-admitted");
                } else {
                    tracing::warn!(upstream = %base, "upstream failed its health check: ejected");
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// A body over the size limit surfaces as a client error, everything else as a bad gateway.
fn classify(e: &hyper_util::client::legacy::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return Error::PayloadTooLarge;
        }
        source = s.source();
    }
    tracing::warn!(error = %e, "upstream request failed");
    Error::BadGateway
}

/// A switched connection, one side of an upgrade.
pub type Switched = TokioIo<hyper::upgrade::Upgraded>;

/// What carries an upgraded connection once both sides have switched protocols: the client's
/// side first, the upstream's second.
pub type Carrier = Box<
    dyn FnOnce(Switched, Switched) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send,
>;

/// A client's upgrade request: its connection's upgrade, and what carries the bytes after.
pub struct Upgrade {
    pub client: hyper::upgrade::OnUpgrade,
    pub carrier: Carrier,
}

impl Upgrade {
    /// Bytes both ways, untouched, until `until` resolves (the session ended) or either side
    /// closes.
    pub fn tunnel(
        client: hyper::upgrade::OnUpgrade,
        until: impl Future<Output = ()> + Send + 'static,
    ) -> Upgrade {
        Upgrade {
            client,
            carrier: Box::new(move |mut client, mut upstream| {
                Box::pin(async move {
                    tokio::select! {
                        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "upgraded connection ended");
                            }
                        }
                        () = until => tracing::debug!("upgraded connection closed: the session ended"),
                    }
                })
            }),
        }
    }
}

async fn switch(upgrade: Upgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(upgrade.client, upstream) {
        Ok((client, upstream)) => {
            (upgrade.carrier)(TokioIo::new(client), TokioIo::new(upstream)).await;
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}

/// Is this an `Upgrade` request (WebSocket)?
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && req.headers().contains_key(header::UPGRADE)
}

/// Collect an upstream answer's body whole within `timeout` (504 past it): `None` when it is
/// larger than `limit`. Not `Limited::collect` as in [`read_body`]: on this boxed body its
/// future defeats rustc's proof that the connection task is `Send` ("not general enough").
pub async fn read_answer(
    mut body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Option<Bytes>, Error> {
    let collect = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Error::BadGateway)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Ok(None);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Some(buf.freeze()))
    };
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| Error::GatewayTimeout)?
}

/// Collect at most `limit` bytes of a body within `timeout`, for the requests the gateway
/// itself must read (login forms, JSON).
pub async fn read_body<B: ClientBody>(
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Error> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Error::RequestTimeout),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge),
        Ok(Err(_)) => Err(Error::BadRequest("could not read request body")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
