//! The listener and the request pipeline: limits, the auth endpoints, authentication (with
//! inline refresh), CSRF, header hygiene and the proxy. Also the gateway's shared state.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio::net::TcpListener;

use crate::clock;
use crate::config::Config;
use crate::dash_guard::{Asker, Way, judge_callback};
use crate::dash_mcp;
use crate::dash_socket;
use crate::error::Error;
use crate::http_util::{Response, full, json, redirect, wants_html};
use crate::policy::path::{NormalPath, normalize};
use crate::policy::{Subject, dash, pages};
use crate::proxy::callback_registry::PLUGIN_ROUTE;
use crate::proxy::filter::{self, Filter};
use crate::proxy::{headers as proxy_headers, is_upgrade, read_body};
use crate::session::cookies::CookieNames;
use crate::session::{Outcome, Via, csrf, secs};
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
                    .acceptor()
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
                let gw = Arc::clone(&gw);
                let alive = alive.clone();
                let stop = stop_rx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _alive = alive;
                    match acceptor {
                        None => serve_connection(gw, peer, stream, stop).await,
                        Some(acceptor) => {
                            // The handshake gets the same deadline as a request head.
                            let limit = gw.config.limits.header_read_timeout;
                            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => serve_connection(gw, peer, tls, stop).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
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

/// Serve HTTP/1.1 on one connection (plain or TLS) until it ends or shutdown drains it.
async fn serve_connection<I>(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    io: I,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = &gw.config.limits;
    let builder = {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BUF))
            .keep_alive(true);
        b
    };
    let conn_gw = Arc::clone(&gw);
    let service = service_fn(move |req| {
        let gw = Arc::clone(&conn_gw);
        async move { Ok::<_, Infallible>(handle(&gw, peer, req).await) }
    });
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await.map(|_| ()); } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Say once per app, when it first serves a page (its first `_dash-layout`), which of its API
/// endpoints and MCP tools the policy covers: those the helper's Dash plugin reports, or
/// (without the plugin) only those the policy's `[api_endpoints]` names.
async fn report_coverage(gw: &Gateway, prefix: &str) {
    {
        let mut reported = match gw.coverage_reported.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Prefixes come from request paths: a bounded number of reports.
        if reported.len() >= 32 || !reported.insert(prefix.to_owned()) {
            return;
        }
    }
    let timeout = gw.config.limits.upstream_timeout;
    let Ok(registry) = gw.registries.get(&gw.proxy, prefix, None, timeout).await else {
        return;
    };
    let policy = gw.policy.current();
    let mut endpoints: Vec<&String> = registry.api_endpoints.keys().collect();
    endpoints.sort();
    let named = policy.api_endpoint_urls();
    if registry.plugin {
        tracing::info!(
            prefix,
            api_endpoints = ?endpoints,
            mcp_tools = registry.mcp_tools.len(),
            policy_api_endpoints = ?named,
            "the app's Dash plugin reports its API endpoints and MCP tools: output rules hold on them"
        );
    } else {
        tracing::warn!(
            prefix,
            policy_api_endpoints = ?named,
            "the app has no dashgate Dash plugin (pip install dashgate-client beside the app): output rules hold on its API endpoints only where [api_endpoints] names them, and its MCP tools are refused to users an output rule restricts"
        );
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

/// Header carrying the request id.
const REQUEST_ID: &str = "x-request-id";

/// The request id: a trusted proxy's if it is well-formed, otherwise a new random one.
fn request_id(headers: &http::HeaderMap, from_proxy: bool) -> String {
    let given = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .filter(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    match given {
        Some(id) if from_proxy => id.to_owned(),
        _ => crate::token::random_id().unwrap_or_else(|_| "-".to_owned()),
    }
}

/// One request, start to end. Every error becomes a response here.
pub async fn handle(gw: &Gateway, peer: SocketAddr, mut req: Request<Incoming>) -> Response {
    // From here on `peer` is the client: the socket, or behind a trusted proxy the address it
    // reports.
    let from_proxy = gw
        .config
        .trusted_proxies
        .iter()
        .any(|c| c.contains(peer.ip()));
    let client =
        crate::proxy::client_ip::client_ip(peer, req.headers(), &gw.config.trusted_proxies);
    let peer = SocketAddr::new(client, peer.port());
    // One id per request: in every log line about it (audit events included), in the answer,
    // and passed to the app. A trusted proxy's id is kept so traces join up.
    let request_id = request_id(req.headers(), from_proxy);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let html = wants_html(req.headers(), req.uri().path());
    // Every log line about this request, audit events included, carries its id and client.
    let span = tracing::info_span!("request", request_id = %request_id, ip = %client);
    let mut resp = match tracing::Instrument::instrument(route(gw, peer, req), span).await {
        Ok(r) => r,
        Err(e) => e.into_response(html),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    gw.metrics.request(resp.status());
    if gw.tls.is_some()
        && !resp
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

async fn route(gw: &Gateway, peer: SocketAddr, req: Request<Incoming>) -> Result<Response, Error> {
    let prefix = gw.config.auth_prefix.as_str();
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix(prefix) {
        if rest.is_empty() || rest.starts_with('/') {
            let sub = rest.to_owned();
            return Ok(crate::auth::handle(gw, peer, req, &sub).await);
        }
    }
    proxy_request(gw, peer, req).await
}

/// Characters escaped in the `next` query parameter.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'=')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'@')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'\'');

async fn proxy_request(
    gw: &Gateway,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response, Error> {
    let now = clock::now();
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > gw.config.limits.max_body_bytes) {
        return Err(Error::PayloadTooLarge);
    }
    let path =
        normalize(req.uri().path()).map_err(|_| Error::BadRequest("malformed request path"))?;
    let n = path.segments.len();
    if n >= 2 && path.segments[n - 2..] == PLUGIN_ROUTE {
        // What the helper's Dash plugin tells the gateway is the gateway's alone.
        return Err(Error::NotFound);
    }
    let policy = gw.policy.current();
    let method = req.method().clone();
    let callback = method == Method::POST
        && path.last() == Some(dash::UPDATE_COMPONENT)
        && policy.inspects_callbacks();
    let dash_socket = is_upgrade(&req) && path.last() == Some(dash_socket::WS_CALLBACK);
    let public = policy.is_public(&path.segments, &method);

    // Public paths are served without looking at credentials, unless a callback body (or a
    // socket of callbacks) must be checked against rules that may need to know the user.
    let mut session = if public && !callback && !dash_socket {
        None
    } else {
        match gw.sessions.authenticate(req.headers(), now).await? {
            Outcome::Authenticated(s) => Some(s),
            Outcome::Anonymous { .. } if public => None,
            Outcome::Anonymous { clear } => return Ok(unauthenticated(gw, &req, clear)),
        }
    };
    let layout = method == Method::GET && path.last() == Some("_dash-layout");
    if layout {
        report_coverage(gw, pages::app_prefix(&path.forward)).await;
    }
    if let Some(s) = session.as_mut().filter(|s| s.via == Via::Cookie) {
        if layout {
            // The first request of a Dash page after the index: learn the names the app
            // wants its CSRF token under, so that this answer already carries the cookie.
            let new = learn_dash_config(gw, pages::app_prefix(&path.forward)).await;
            let age = s
                .claims
                .exp
                .saturating_sub(now)
                .max(secs(gw.config.session.refresh_idle_ttl));
            s.set_cookies.extend(
                gw.sessions
                    .csrf_cookies_named(&new, &s.claims.sid, now, age)?,
            );
        }
    }
    // Cookies from an inline refresh go on whatever the answer is — a 403, a 502 — or the
    // browser would keep a refresh token that is already spent and, after the grace window,
    // look like a thief replaying it.
    let set_cookies = session
        .as_mut()
        .map(|s| std::mem::take(&mut s.set_cookies))
        .unwrap_or_default();
    let html = wants_html(req.headers(), req.uri().path());
    let passed = Passed {
        path,
        policy,
        method,
        callback,
        session,
        now,
    };
    let mut resp = match pass(gw, peer, req, passed).await {
        Ok(r) => r,
        Err(e) => e.into_response(html),
    };
    for c in set_cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Read the app's `_dash-config` (once per [`crate::proxy::app_cache`] freshness) and answer
/// to the CSRF names it declares; returns the cookie names that are new. Nothing is at stake
/// if it cannot be read: the names already known stay in use.
async fn learn_dash_config(gw: &Gateway, prefix: &str) -> Vec<String> {
    let timeout = gw.config.limits.upstream_timeout;
    let Ok(config) = gw.dash_configs.get(&gw.proxy, prefix, None, timeout).await else {
        return Vec::new();
    };
    let names = &gw.sessions.cookies.csrf;
    let before = names.current();
    let refused = names.learn(
        config.csrf_cookie.as_deref(),
        config.csrf_header.as_deref(),
        |name| gw.sessions.cookies.is_session_cookie(name),
    );
    for what in refused {
        tracing::warn!(prefix, name = %what, "the app declares a CSRF name the gateway will not use");
    }
    let after = names.current();
    if after.cookies.len() != before.cookies.len() || after.headers.len() != before.headers.len() {
        tracing::info!(
            prefix,
            cookies = ?after.cookies,
            headers = ?after.headers.iter().map(http::HeaderName::as_str).collect::<Vec<_>>(),
            "CSRF names learned from the app's _dash-config"
        );
    }
    after
        .cookies
        .iter()
        .filter(|c| !before.cookies.contains(c))
        .cloned()
        .collect()
}

/// What the first half of [`proxy_request`] established.
struct Passed {
    path: NormalPath,
    policy: Arc<crate::policy::Policy>,
    method: Method,
    callback: bool,
    session: Option<crate::session::Session>,
    now: i64,
}

/// Authorization, body inspection and forwarding for a request whose identity is settled.
async fn pass(
    gw: &Gateway,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    passed: Passed,
) -> Result<Response, Error> {
    let Passed {
        path,
        policy,
        method,
        callback,
        session,
        now,
    } = passed;
    if let Some(s) = session.as_ref().filter(|s| csrf::required(&method, s.via)) {
        gw.sessions
            .check_csrf(req.headers(), &s.claims.sid, None, now)?;
    }
    let who = session.as_ref().map(|s| &*s.claims as &dyn Subject);
    let user = session.as_ref().map(|s| s.claims.sub.clone());
    policy.check_path(&path.segments, &method, who).enforce(
        &method,
        &path.forward,
        user.as_deref(),
    )?;

    // What this user may not see or write (dash_components, dash_outputs): components they
    // may not see come out of what the app sends.
    let restricted = policy.restrictions(who);
    // Someone an output rule restricts, or could (nobody signed in): the ways into the app
    // besides its callback endpoint are read for them.
    let output_bound = policy.has_output_rules() && (who.is_none() || restricted.is_some());
    let mcp = path
        .last()
        .is_some_and(|l| l.eq_ignore_ascii_case(&policy.mcp.path));
    if mcp {
        policy
            .check_mcp(who)
            .enforce(&method, &path.forward, user.as_deref())?;
    }
    let mut filter = restricted
        .as_ref()
        .filter(|h| h.hides_components())
        .and_then(|_| Filter::for_request(&path, &method));
    let navigation = wants_html(req.headers(), req.uri().path());

    let upgrade = is_upgrade(&req);
    if upgrade {
        // Cross-site WebSocket hijacking: browsers send cookies on cross-site handshakes, and
        // always an `Origin`, which for a cookie session must be this origin.
        match session.as_ref().map(|s| s.via) {
            Some(Via::Cookie) => csrf::check_handshake_origin(req.headers())?,
            _ => csrf::check_origin(req.headers())?,
        }
    }
    let dash_socket = upgrade && path.last() == Some(dash_socket::WS_CALLBACK);
    let host = req.headers().get(header::HOST).cloned();
    let upgrade_header = req.headers().get(header::UPGRADE).cloned();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    let mut mcp_plan = None;
    let needs = filter::Needs {
        limit: gw.config.limits.max_inspect_bytes,
        timeout: gw.config.limits.upstream_timeout,
        dependencies: &gw.dependencies,
        proxy: &gw.proxy,
    };
    let body = if callback {
        let limits = &gw.config.limits;
        let bytes = read_body(body, limits.max_inspect_bytes, limits.body_read_timeout).await?;
        let cb = dash::parse(&bytes).map_err(|e| {
            tracing::debug!(error = %e, "refused a Dash callback");
            Error::BadRequest("malformed Dash callback")
        })?;
        let asker = Asker {
            who,
            user: user.as_deref(),
            restricted: restricted.as_ref(),
        };
        let app = pages::app_prefix(&path.forward);
        let allowed = judge_callback(
            &policy,
            &needs,
            app,
            &cb,
            &asker,
            Way::Renderer,
            &path.forward,
        )
        .await?;
        if allowed.background {
            filter = Some(Filter::Callback);
        }
        full(bytes)
    } else if mcp && method == Method::POST {
        let limits = &gw.config.limits;
        let bytes = read_body(body, limits.max_inspect_bytes, limits.body_read_timeout).await?;
        let asker = Asker {
            who,
            user: user.as_deref(),
            restricted: restricted.as_ref(),
        };
        let app = dash_mcp::McpApp {
            prefix: pages::app_prefix(&path.forward),
            registries: &gw.registries,
        };
        match dash_mcp::judge_request(&policy, &needs, &app, &bytes, &asker, &path.forward).await {
            Ok(plan) => mcp_plan = Some(plan),
            Err(e) => return Ok(mcp_refusal(&bytes, &e)),
        }
        full(bytes)
    } else if output_bound && !upgrade && !csrf::is_safe_method(&method) {
        match api_endpoint(gw, &policy, &needs, &path.forward).await? {
            Some((app, keys)) => {
                let limits = &gw.config.limits;
                let bytes =
                    read_body(body, limits.max_inspect_bytes, limits.body_read_timeout).await?;
                let arguments: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
                let asker = Asker {
                    who,
                    user: user.as_deref(),
                    restricted: restricted.as_ref(),
                };
                for key in &keys {
                    let cb = dash::Callback::from_key(key, arguments.as_ref()).map_err(|_| {
                        tracing::warn!(endpoint = %path.forward, key = %key, "an API endpoint's callback key cannot be read; refused");
                        Error::BadGateway
                    })?;
                    judge_callback(
                        &policy,
                        &needs,
                        &app,
                        &cb,
                        &asker,
                        Way::Direct,
                        &path.forward,
                    )
                    .await?;
                }
                full(bytes)
            }
            None => gw.proxy.stream_body(body),
        }
    } else {
        gw.proxy.stream_body(body)
    };
    let mcp_filter = mcp_plan.filter(|_| output_bound || restricted.is_some());

    proxy_headers::sanitize_request(&mut parts.headers, &gw.sessions.cookies);
    if filter.is_some_and(|f| f.asks_identity(navigation)) || mcp_filter.is_some() {
        // An answer the gateway will read comes whole and uncompressed.
        for name in [header::ACCEPT_ENCODING, header::RANGE, header::IF_RANGE] {
            parts.headers.remove(name);
        }
    }
    if session.as_ref().is_some_and(|s| s.via == Via::Bearer) {
        // The token is the gateway's, not the app's.
        parts.headers.remove(header::AUTHORIZATION);
    }
    if let (true, Some(u)) = (upgrade, upgrade_header) {
        parts.headers.insert(header::UPGRADE, u);
    }
    if dash_socket {
        // Every frame is read: no compression the relay would have to undo.
        parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let upgrade = client_upgrade.map(|client| {
        let claims = session.as_ref().map(|s| Arc::clone(&s.claims));
        let ends: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match &claims {
            Some(c) => Box::pin(crate::session::session_end(
                Arc::clone(&gw.sessions.revocations),
                Arc::clone(c),
            )),
            None => Box::pin(std::future::pending()),
        };
        if dash_socket {
            let services = dash_socket::SocketServices {
                policy: Arc::clone(&gw.policy),
                dependencies: Arc::clone(&gw.dependencies),
                proxy: Arc::clone(&gw.proxy),
                limit: gw.config.limits.max_inspect_bytes,
                timeout: gw.config.limits.upstream_timeout,
            };
            let owner = dash_socket::SocketOwner {
                claims,
                app: pages::app_prefix(&path.forward).to_owned(),
                path: path.forward.clone(),
            };
            dash_socket::relay(client, services, owner, ends)
        } else {
            crate::proxy::Upgrade::tunnel(client, ends)
        }
    });
    let assertion = match &session {
        Some(s) => Some(gw.assertions.get(
            &gw.sessions.keys.current(),
            &s.claims,
            &gw.config.token.assertion_audience,
            secs(gw.config.token.assertion_ttl),
            now,
        )?),
        None => None,
    };
    proxy_headers::add_forwarding(
        &mut parts.headers,
        &proxy_headers::Forwarded {
            client_ip: peer.ip().to_string(),
            proto: if gw.tls.is_some() { "https" } else { "http" },
            host,
            identity: session.as_ref().map(|s| proxy_headers::Identity {
                user: &s.claims.sub,
                roles: &s.claims.roles,
                permissions: &s.claims.permissions,
                assertion: assertion.as_deref(),
            }),
        },
    );
    // The upstream receives the path the policy was checked against.
    let target = match parts.uri.query() {
        Some(q) => format!("{}?{q}", path.forward),
        None => path.forward.clone(),
    };
    parts.uri = target
        .parse()
        .map_err(|_| Error::BadRequest("malformed request target"))?;
    let affinity = session
        .as_ref()
        .filter(|_| gw.config.balancing.affinity)
        .map(|s| s.claims.sid.clone());
    let started = std::time::Instant::now();
    let mut resp = gw
        .proxy
        .forward(
            Request::from_parts(parts, body),
            upgrade,
            affinity.as_deref(),
        )
        .await?;
    gw.metrics.upstream_latency(started.elapsed());
    strip_our_set_cookies(&mut resp, &gw.sessions.cookies);
    if let Some(plan) = mcp_filter {
        let prefix = pages::app_prefix(&path.forward);
        let registry = gw
            .registries
            .get(&gw.proxy, prefix, None, needs.timeout)
            .await?;
        let hidden = restricted.as_ref().filter(|h| h.hides_components());
        resp = mcp_answer(resp, &needs, |bytes| {
            dash_mcp::prune_answer(bytes, &plan, &policy, who, hidden, &registry)
        })
        .await?;
    } else if let (Some(filter), Some(hidden)) = (filter, restricted) {
        resp = filter::apply(resp, filter, hidden, &needs).await?;
    }
    Ok(resp)
}

/// The callbacks the API endpoint at `url` runs, with the prefix of the app that serves them:
/// the policy's `[api_endpoints]` first, then what the helper's Dash plugin reports in the
/// apps the gateway knows (`/`, and every prefix a Dash page has been served under). `None`:
/// not an API endpoint anyone reported.
async fn api_endpoint(
    gw: &Gateway,
    policy: &crate::policy::Policy,
    needs: &filter::Needs<'_>,
    url: &str,
) -> Result<Option<(String, Vec<String>)>, Error> {
    let mut prefixes = gw.dash_configs.prefixes();
    prefixes.extend(gw.dependencies.prefixes());
    prefixes.push("/".to_owned());
    prefixes.sort();
    prefixes.dedup();
    if let Some(key) = policy.api_endpoint(url) {
        return Ok(Some(("/".to_owned(), vec![key.to_owned()])));
    }
    for prefix in prefixes {
        let registry = gw
            .registries
            .get(needs.proxy, &prefix, Some(url), needs.timeout)
            .await?;
        if let Some(keys) = registry.api_endpoints.get(url) {
            return Ok(Some((prefix, keys.clone())));
        }
    }
    Ok(None)
}

/// A refused MCP request: the error's status, and a JSON-RPC error an MCP client can show.
fn mcp_refusal(body: &[u8], e: &Error) -> Response {
    json(e.status(), &dash_mcp::refusal(body, e))
}

/// An MCP answer read whole and rewritten by `rewrite`; fails closed on what cannot be read.
async fn mcp_answer(
    resp: Response,
    needs: &filter::Needs<'_>,
    rewrite: impl FnOnce(&[u8]) -> Result<Vec<u8>, &'static str>,
) -> Result<Response, Error> {
    let (mut parts, bytes) =
        match filter::read(resp, Filter::Callback, needs.limit, needs.timeout).await? {
            filter::Read::Untouched(r) => return Ok(r),
            filter::Read::Whole(parts, bytes) => (parts, bytes),
        };
    if parts.headers.contains_key(header::CONTENT_ENCODING) {
        tracing::warn!("a compressed MCP answer cannot be filtered; refused");
        return Err(Error::BadGateway);
    }
    let out = rewrite(&bytes).map_err(|why| {
        tracing::warn!(
            error = why,
            "an MCP answer that must be filtered could not be read; refused"
        );
        Error::BadGateway
    })?;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(Response::from_parts(parts, full(out)))
}

/// The upstream must not overwrite the gateway's cookies (an app with its own `_csrf_token`
/// would otherwise break every Dash callback).
fn strip_our_set_cookies(resp: &mut Response, names: &CookieNames) {
    if !resp.headers().contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            let name = text.split(['=', ';']).next().unwrap_or("").trim();
            !names.is_ours(name)
        })
        .cloned()
        .collect();
    resp.headers_mut().remove(header::SET_COOKIE);
    for v in kept {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Navigations go to the login page; XHRs (Dash's `_dash-*`) and API calls get 401 JSON.
fn unauthenticated(gw: &Gateway, req: &Request<Incoming>, clear: Vec<HeaderValue>) -> Response {
    let navigation = matches!(*req.method(), Method::GET | Method::HEAD)
        && wants_html(req.headers(), req.uri().path());
    let mut r = if navigation {
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let location = format!(
            "{}/login?next={}",
            gw.config.auth_prefix,
            utf8_percent_encode(target, QUERY_VALUE)
        );
        redirect(StatusCode::FOUND, &location)
    } else {
        let mut r = json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({"error": "unauthenticated", "message": "authentication required", "login": format!("{}/login", gw.config.auth_prefix)}),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    for c in clear {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}
