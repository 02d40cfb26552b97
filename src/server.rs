//! The listener: binds, serves HTTP/1.1 connections (plain or TLS) and HTTP/2 ones (TLS,
//! when the client picks `h2`) into the request pipeline ([`crate::pipeline`]), drains them on SIGTERM, and runs the background tasks that
//! follow files and peers (policy, keys, certificate, revocations, upstream health).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::clock;
use crate::config::Config;
use crate::error::Error;
pub use crate::state::Gateway;

/// hyper refuses header buffers smaller than this.
const MIN_HEADER_BUF: usize = 8192;
/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the policy file is checked for changes.
const POLICY_POLL: Duration = Duration::from_secs(1);
/// How often the key directory is re-read.
const KEY_POLL: Duration = Duration::from_secs(1);
/// How often the TLS certificate files are checked for changes.
const CERT_POLL: Duration = Duration::from_secs(2);
/// Requests one HTTP/2 connection may have in flight at once.
const H2_MAX_STREAMS: u32 = 100;
/// How often an HTTP/2 connection is pinged, and how long the answer may take before the
/// connection is dropped as dead.
const H2_PING: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Bind, serve until SIGTERM/SIGINT, then drain in-flight requests.
pub async fn serve(config: Config) -> Result<(), Error> {
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let gw = Arc::new(Gateway::new(config).await?);
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(listen = %local, upstreams = ?gw.config.upstreams.iter().map(ToString::to_string).collect::<Vec<_>>(), "dashgate is serving");
    tokio::spawn(
        gw.sessions
            .store
            .clone()
            .follow_revocations(Arc::clone(&gw.sessions.revocations)),
    );
    tokio::spawn(policy_watch(Arc::clone(&gw)));
    tokio::spawn(key_sync(Arc::clone(&gw)));
    let acceptor = match &gw.tls {
        Some(store) => {
            tokio::spawn(cert_watch(Arc::clone(store)));
            Some(
                store
                    .acceptor(gw.config.http2)
                    .map_err(|e| Error::Internal(format!("TLS: {e}")))?,
            )
        }
        None => None,
    };
    tokio::spawn(crate::proxy::health_checks(
        Arc::clone(&gw.proxy),
        gw.config.balancing.health_path.clone(),
        gw.config.balancing.health_interval,
    ));

    // Each connection holds a clone of `alive`; when all are gone, draining is complete.
    let (alive, mut drained) = tokio::sync::mpsc::channel::<()>(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let workers = start_workers(&gw, &stop_rx, acceptor.as_ref())?;
    let mut next = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // The connection moves to a worker's own runtime (and reactor), round-robin.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand a connection to a worker");
                        continue;
                    }
                };
                let job = Job {
                    peer,
                    stream,
                    alive: alive.clone(),
                };
                next = (next + 1) % workers.len();
                if workers[next].send(job).is_err() {
                    tracing::warn!("a connection worker is gone; connection dropped");
                }
            }
            () = &mut shutdown => {
                tracing::info!("shutting down: no new connections, finishing in-flight requests");
                break;
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, drained.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
    Ok(())
}

/// An accepted connection, on its way to a worker.
struct Job {
    peer: SocketAddr,
    stream: std::net::TcpStream,
    /// Held while the connection lives: draining waits for every clone to go.
    alive: tokio::sync::mpsc::Sender<()>,
}

/// One connection worker per core ([`crate::proxy::workers`]): a thread with a single-threaded
/// runtime that serves the connections handed to it (and an HTTP/2 connection's requests)
/// from start to end, with its own upstream
/// pool ([`crate::proxy::WORKER`]), so that a request never crosses threads on its way through
/// the gateway. The workers end when the sender side is dropped (after draining).
fn start_workers(
    gw: &Arc<Gateway>,
    stop: &tokio::sync::watch::Receiver<bool>,
    acceptor: Option<&tokio_rustls::TlsAcceptor>,
) -> Result<Vec<tokio::sync::mpsc::UnboundedSender<Job>>, Error> {
    (0..crate::proxy::workers())
        .map(|i| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            let (gw, stop, acceptor) = (Arc::clone(gw), stop.clone(), acceptor.cloned());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Internal(format!("cannot start a connection worker: {e}")))?;
            std::thread::Builder::new()
                .name(format!("dashgate-conn-{i}"))
                .spawn(move || {
                    crate::proxy::WORKER.with(|w| w.set(i));
                    runtime.block_on(async move {
                        while let Some(job) = rx.recv().await {
                            match tokio::net::TcpStream::from_std(job.stream) {
                                Ok(stream) => {
                                    tokio::spawn(connection(
                                        Arc::clone(&gw),
                                        job.peer,
                                        stream,
                                        job.alive,
                                        stop.clone(),
                                        acceptor.clone(),
                                    ));
                                }
                                Err(e) => tracing::warn!(error = %e, "connection lost on its way to a worker"),
                            }
                        }
                    });
                })
                .map_err(|e| Error::Internal(format!("cannot start a connection worker: {e}")))?;
            Ok(tx)
        })
        .collect()
}

/// One client connection: the TLS handshake when the listener speaks TLS, then HTTP/1.1, or
/// HTTP/2 when the client picked it during the handshake.
async fn connection(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    stream: tokio::net::TcpStream,
    alive: tokio::sync::mpsc::Sender<()>,
    stop: tokio::sync::watch::Receiver<bool>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let _alive = alive;
    match acceptor {
        None => serve_http(gw, peer, stream, stop, false).await,
        Some(acceptor) => {
            // The handshake gets the same deadline as a request head.
            let limit = gw.config.limits.header_read_timeout;
            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let http2 = tls.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_H2);
                    serve_http(gw, peer, tls, stop, http2).await
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

/// The pipeline as a hyper service for one connection from `peer`.
fn pipeline_service(
    gw: &Arc<Gateway>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = crate::http_util::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<crate::http_util::Response, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    let gw = Arc::clone(gw);
    service_fn(move |req| {
        let gw = Arc::clone(&gw);
        async move { Ok::<_, Infallible>(crate::pipeline::handle(&gw.services(), peer, req).await) }
    })
}

/// Run one connection until it ends, or until shutdown asks it to finish what it has.
async fn until_drained<C, E>(
    conn: C,
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await.map(|_| ()); } => {
            graceful(conn.as_mut());
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serve one connection (plain or TLS) in HTTP/1.1, or in HTTP/2 when `http2` (the client
/// picked it during the TLS handshake; its requests run as tasks on this worker's runtime).
async fn serve_http<I>(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    io: I,
    stop: tokio::sync::watch::Receiver<bool>,
    http2: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &gw.config.limits;
    let service = pipeline_service(&gw, peer);
    if http2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(H2_PING)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        until_drained(conn, stop, |c| c.graceful_shutdown()).await;
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BUF))
            .keep_alive(true);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        until_drained(conn, stop, |c| c.graceful_shutdown()).await;
    }
}

/// Re-read the certificate pair when its files change; keep the old one if the new one fails.
async fn cert_watch(store: Arc<crate::tls::CertStore>) {
    loop {
        tokio::time::sleep(CERT_POLL).await;
        match store.reload() {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate rejected; the previous one stays in use")
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Reload the policy when its file changes (checked every second) or on SIGHUP. A new policy
/// that does not validate is reported and the running one stays.
async fn policy_watch(gw: Arc<Gateway>) {
    // SIGHUP is handled even without a policy file, so it never kills the gateway.
    let path = gw.policy.path().map(|p| p.display().to_string());
    if let Some(p) = &path {
        tracing::info!(policy = %p, rules = gw.policy.current().rule_count(), "policy loaded");
    }
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut last_error: Option<String> = None;
    loop {
        #[cfg(unix)]
        let forced = {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = hup_recv => true,
                () = tokio::time::sleep(POLICY_POLL) => false,
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(POLICY_POLL).await;
            false
        };
        let Some(path) = &path else { continue };
        match gw.policy.reload(forced) {
            Ok(changed) => {
                if changed {
                    tracing::info!(policy = %path, rules = gw.policy.current().rule_count(), "policy reloaded");
                }
                last_error = None;
            }
            Err(e) => {
                let message = e.to_string();
                if forced || last_error.as_ref() != Some(&message) {
                    tracing::error!(error = %message, "new policy rejected; the previous policy stays in force");
                }
                last_error = Some(message);
            }
        }
    }
}

/// Follow the key directory: keys added by `dashgate keys rotate` (on this host or, with a
/// shared directory, any other) verify within a second and sign after the activation delay.
async fn key_sync(gw: Arc<Gateway>) {
    loop {
        tokio::time::sleep(KEY_POLL).await;
        match gw.sessions.keys.reload(clock::now()) {
            Ok(Some((active, kids))) => {
                tracing::info!(signing_kid = %active, live_kids = ?kids, "signing keys changed")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the key directory; keeping the keys in use")
            }
        }
    }
}
