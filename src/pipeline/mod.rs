//! The request pipeline: the one place that says in which order a request is checked. Every
//! request passes [`guard`] (client address, request id, one `Host`); those under the auth
//! prefix go to the `/auth` endpoints ([`crate::auth`]); every other request to the app goes,
//! in order, through
//!
//! 1. [`guard::target`]: declared body size, a path that reads one way only, what it is;
//! 2. [`identify`]: credentials → session (with an inline refresh), or the login page / 401;
//! 3. [`authorize::check_forgery`]: the CSRF stage;
//! 4. [`authorize::authorize`]: the policy's one decision over the rule kinds;
//! 5. [`inspect`]: callback, MCP and API endpoint bodies judged before the app sees them;
//! 6. [`forward`]: the upstream's request head, and the hop;
//! 7. [`rewrite`]: the answer filtered for the asker, the refresh cookies added.
//!
//! Stages work on `http::Request<B>` for any [`ClientBody`] and take the narrow services they
//! need, so each is unit-tested in process (`tests.rs`); only this file sees all of [`Services`].

pub mod app_page;
pub mod authorize;
pub mod forward;
pub mod guard;
pub mod identify;
pub mod inspect;
pub mod rewrite;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, header};

use crate::auth::Desk;
use crate::cidr::Cidr;
use crate::clock;
use crate::config::Limits;
use crate::dash_guard::Asker;
use crate::dash_socket::SocketServices;
use crate::error::Error;
use crate::http_util::{ClientBody, Response, wants_html};
use crate::metrics::Metrics;
use crate::policy::PolicyHandle;
use crate::policy::Subject;
use crate::proxy::Proxy;
use crate::proxy::app_config::DashConfigCache;
use crate::proxy::callback_registry::RegistryCache;
use crate::proxy::dependencies::DependencyCache;
use crate::proxy::filter::Needs;
use crate::session::Sessions;
use crate::session::{Session, secs};
use crate::token::assertion::AssertionCache;
use guard::Target;
use identify::Identified;
use inspect::Inspection;

/// What the pipeline works with, and all it sees of the gateway; assembled with the rest of
/// the shared state (`state`). Each stage is handed the part it needs.
pub struct Services<'a> {
    /// The session service: the only reader of credentials.
    pub sessions: &'a Sessions,
    pub policy: &'a Arc<PolicyHandle>,
    pub proxy: &'a Arc<Proxy>,
    /// The apps' callback lists, shared with the WebSocket relays.
    pub dependencies: &'a Arc<DependencyCache>,
    pub dash_configs: &'a DashConfigCache,
    pub registries: &'a RegistryCache,
    /// The app prefixes whose API and MCP coverage has been reported.
    pub coverage_reported: &'a Mutex<HashSet<String>>,
    pub assertions: &'a AssertionCache,
    pub metrics: &'a Metrics,
    /// The `/auth` endpoints' services.
    pub desk: Desk<'a>,
    pub limits: &'a Limits,
    pub trusted_proxies: &'a [Cidr],
    /// Does the gateway terminate TLS?
    pub https: bool,
    /// `balancing.affinity`: one session, one upstream.
    pub affinity: bool,
}

/// What the gateway reads from the app to decide: its callbacks, its `_dash-config`, what
/// the helper's Dash plugin reports; at most `limit` bytes, within `timeout`.
pub struct AppReads<'a> {
    pub proxy: &'a Proxy,
    pub dependencies: &'a DependencyCache,
    pub dash_configs: &'a DashConfigCache,
    pub registries: &'a RegistryCache,
    /// `limits.max_inspect_bytes`.
    pub limit: usize,
    /// `limits.upstream_timeout`.
    pub timeout: Duration,
}

impl AppReads<'_> {
    /// The narrower view filtering an answer needs.
    pub fn needs(&self) -> Needs<'_> {
        Needs {
            limit: self.limit,
            timeout: self.timeout,
            dependencies: self.dependencies,
            proxy: self.proxy,
        }
    }
}

impl Services<'_> {
    fn app_reads(&self) -> AppReads<'_> {
        AppReads {
            proxy: self.proxy,
            dependencies: self.dependencies,
            dash_configs: self.dash_configs,
            registries: self.registries,
            limit: self.limits.max_inspect_bytes,
            timeout: self.limits.upstream_timeout,
        }
    }
}

/// One request, start to end. Every error becomes a response here.
pub async fn handle<B: ClientBody>(
    gw: &Services<'_>,
    peer: SocketAddr,
    mut req: Request<B>,
) -> Response {
    let arrival = guard::arrive(&mut req, peer, gw.trusted_proxies);
    let html = wants_html(req.headers(), req.uri().path());
    // Every log line about this request, audit events included, carries its id and client.
    let span =
        tracing::info_span!("request", request_id = %arrival.request_id, ip = %arrival.client.ip());
    let routed = tracing::Instrument::instrument(route(gw, arrival.client, req), span).await;
    let mut resp = routed.unwrap_or_else(|e| e.into_response(html));
    rewrite::finish(&mut resp, &arrival.request_id, gw.https);
    gw.metrics.request(resp.status());
    resp
}

/// The `/auth` endpoints, or the app.
async fn route<B: ClientBody>(
    gw: &Services<'_>,
    client: SocketAddr,
    mut req: Request<B>,
) -> Result<Response, Error> {
    guard::authority_as_host(&mut req)?;
    let prefix = gw.desk.prefix;
    if let Some(rest) = req.uri().path().strip_prefix(prefix) {
        if rest.is_empty() || rest.starts_with('/') {
            let sub = rest.to_owned();
            return Ok(crate::auth::serve_endpoint(gw.desk, client, req, &sub).await);
        }
    }
    to_app(gw, client, req).await
}

/// A request to the app: guard, identify, then [`checked`].
async fn to_app<B: ClientBody>(
    gw: &Services<'_>,
    client: SocketAddr,
    req: Request<B>,
) -> Result<Response, Error> {
    let now = clock::now();
    let policy = gw.policy.current();
    let target = guard::target(&req, gw.limits.max_body_bytes, &policy)?;
    let prefix = gw.desk.prefix;
    let mut session = match identify::identify(gw.sessions, &target, &req, prefix, now).await? {
        Identified::Known(s) => s,
        Identified::SignInFirst(answer) => return Ok(answer),
    };
    if target.layout {
        let app = gw.app_reads();
        app_page::report_coverage(&app, &policy, gw.coverage_reported, target.app()).await;
        if let Some(s) = session
            .as_mut()
            .filter(|s| s.via == crate::session::Via::Cookie)
        {
            app_page::learn_csrf_names(&app, gw.sessions, target.app(), s, now).await?;
        }
    }
    // Cookies from an inline refresh go on whatever the answer is.
    let cookies = session
        .as_mut()
        .map(|s| std::mem::take(&mut s.set_cookies))
        .unwrap_or_default();
    let navigation = target.navigation;
    let mut resp = checked(gw, client, req, target, policy, session, now)
        .await
        .unwrap_or_else(|e| e.into_response(navigation));
    rewrite::carry_cookies(&mut resp, cookies);
    Ok(resp)
}

/// CSRF, authorize, inspect, forward, rewrite: a request whose identity is settled.
async fn checked<B: ClientBody>(
    gw: &Services<'_>,
    client: SocketAddr,
    mut req: Request<B>,
    target: Target,
    policy: Arc<crate::policy::Policy>,
    session: Option<Session>,
    now: i64,
) -> Result<Response, Error> {
    let session = session.as_ref();
    authorize::check_forgery(gw.sessions, &target, &req, session, now)?;
    let authorized = authorize::authorize(&policy, &target, session)?;

    let who = session.map(|s| &*s.claims as &dyn Subject);
    let restricted = authorized.grant.restricted.as_ref();
    let asker = Asker {
        who,
        user: session.map(|s| s.claims.sub.as_str()),
        restricted,
    };
    let host = req.headers().get(header::HOST).cloned();
    let upgrade_header = req.headers().get(header::UPGRADE).cloned();
    let client_upgrade = target.upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let app = gw.app_reads();
    let timeout = gw.limits.body_read_timeout;
    let (body, filter, mcp) =
        match inspect::inspect(&app, &policy, &target, &authorized, &asker, body, timeout).await? {
            Inspection::Pass { body, filter, mcp } => (body, filter, mcp),
            Inspection::Refused(answer) => return Ok(answer),
        };

    let assertion = match session {
        Some(s) => Some(gw.assertions.get(
            &gw.sessions.keys.current(),
            &s.claims,
            &gw.sessions.token.assertion_audience,
            secs(gw.sessions.token.assertion_ttl),
            now,
        )?),
        None => None,
    };
    let head = forward::Head {
        client_ip: client.ip().to_string(),
        https: gw.https,
        host,
        upgrade: upgrade_header,
        reads_answer: filter.is_some_and(|f| f.asks_identity(target.navigation)) || mcp.is_some(),
        assertion: assertion.as_deref(),
    };
    forward::upstream_head(&mut parts, &target, session, &gw.sessions.cookies, head)?;
    let upgrade = client_upgrade.map(|client| {
        forward::upgrade_carrier(client, &target, session, &gw.sessions.revocations, || {
            SocketServices {
                policy: Arc::clone(gw.policy),
                dependencies: Arc::clone(gw.dependencies),
                proxy: Arc::clone(gw.proxy),
                limit: app.limit,
                timeout: app.timeout,
            }
        })
    });
    let affinity = session
        .filter(|_| gw.affinity)
        .map(|s| s.claims.sid.as_str());
    let mut resp = forward::hop(gw.proxy, parts, body, upgrade, affinity, gw.metrics).await?;

    rewrite::strip_our_set_cookies(&mut resp, &gw.sessions.cookies);
    let needs = app.needs();
    if let Some(plan) = mcp {
        let registry = gw
            .registries
            .get(gw.proxy, target.app(), None, app.timeout)
            .await?;
        let hidden = restricted.filter(|h| h.hides_components());
        resp = rewrite::prune_mcp(resp, &needs, &plan, &policy, who, hidden, &registry).await?;
    } else if let (Some(filter), Some(hidden)) = (filter, authorized.grant.restricted) {
        resp = crate::proxy::filter::apply(resp, filter, hidden, &needs).await?;
    }
    Ok(resp)
}
