//! The forward stage: the request's head as the upstream receives it — the gateway's own
//! cookies and tokens taken out, the identity headers and signed assertion put in, the path
//! the policy judged — and the hop to the app, with the relay that carries an upgraded
//! connection (Dash's callback socket is read frame by frame, other upgrades are tunnelled)
//! until its session ends.

use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Request, Version, header};

use super::guard::Target;
use crate::dash_socket::{self, SocketOwner, SocketServices};
use crate::error::Error;
use crate::http_util::{Body, Response};
use crate::proxy::headers::{self as proxy_headers, Forwarded, Identity};
use crate::proxy::{Proxy, Upgrade};
use crate::session::cookies::CookieNames;
use crate::session::{Session, Via, session_end};
use crate::store::RevocationSet;

/// What the upstream's request head is made from, besides the client's.
pub struct Head<'a> {
    pub client_ip: String,
    /// Does the gateway terminate TLS?
    pub https: bool,
    /// The client's `Host`, read before hop-by-hop headers went.
    pub host: Option<HeaderValue>,
    /// The client's `Upgrade`, kept for a handshake.
    pub upgrade: Option<HeaderValue>,
    /// Will the gateway read the answer (to filter it)? Then it must come whole and plain.
    pub reads_answer: bool,
    /// The signed assertion of the session, for the app.
    pub assertion: Option<&'a str>,
}

/// Rewrite the client's request head into the upstream's.
pub fn upstream_head(
    parts: &mut Parts,
    target: &Target,
    session: Option<&Session>,
    names: &CookieNames,
    head: Head<'_>,
) -> Result<(), Error> {
    proxy_headers::sanitize_request(&mut parts.headers, names);
    if parts.version >= Version::HTTP_2 {
        // The app is spoken to in HTTP/1.1 whatever the client spoke.
        parts.version = Version::HTTP_11;
    }
    if head.reads_answer {
        // An answer the gateway will read comes whole and uncompressed.
        for name in [header::ACCEPT_ENCODING, header::RANGE, header::IF_RANGE] {
            parts.headers.remove(name);
        }
    }
    if session.is_some_and(|s| s.via == Via::Bearer) {
        // The token is the gateway's, not the app's.
        parts.headers.remove(header::AUTHORIZATION);
    }
    if let (true, Some(u)) = (target.upgrade, head.upgrade) {
        parts.headers.insert(header::UPGRADE, u);
    }
    if target.dash_socket {
        // Every frame is read: no compression the relay would have to undo.
        parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    proxy_headers::add_forwarding(
        &mut parts.headers,
        &Forwarded {
            client_ip: head.client_ip,
            proto: if head.https { "https" } else { "http" },
            host: head.host,
            identity: session.map(|s| Identity {
                user: &s.claims.sub,
                roles: &s.claims.roles,
                permissions: &s.claims.permissions,
                assertion: head.assertion,
            }),
        },
    );
    // The upstream receives the path the policy was checked against.
    let uri = match parts.uri.query() {
        Some(q) => format!("{}?{q}", target.path.forward),
        None => target.path.forward.clone(),
    };
    parts.uri = uri
        .parse()
        .map_err(|_| Error::BadRequest("malformed request target"))?;
    Ok(())
}

/// What carries a client's upgraded connection: Dash's callback socket through the relay
/// that judges every frame (`sockets` builds its services), anything else through a plain
/// tunnel; both end when the session does.
pub fn upgrade_carrier(
    client: hyper::upgrade::OnUpgrade,
    target: &Target,
    session: Option<&Session>,
    revocations: &Arc<RevocationSet>,
    sockets: impl FnOnce() -> SocketServices,
) -> Upgrade {
    let claims = session.map(|s| Arc::clone(&s.claims));
    let ends: Pin<Box<dyn Future<Output = ()> + Send>> = match &claims {
        Some(c) => Box::pin(session_end(Arc::clone(revocations), Arc::clone(c))),
        None => Box::pin(std::future::pending()),
    };
    if target.dash_socket {
        let owner = SocketOwner {
            claims,
            app: target.app().to_owned(),
            path: target.path.forward.clone(),
        };
        dash_socket::relay(client, sockets(), owner, ends)
    } else {
        Upgrade::tunnel(client, ends)
    }
}

/// The hop: send the request to an upstream (`affinity` pins a session to one) and stream
/// its answer back.
pub async fn hop(
    proxy: &Proxy,
    parts: Parts,
    body: Body,
    upgrade: Option<Upgrade>,
    affinity: Option<&str>,
    metrics: &crate::metrics::Metrics,
) -> Result<Response, Error> {
    let started = std::time::Instant::now();
    let resp = proxy
        .forward(Request::from_parts(parts, body), upgrade, affinity)
        .await?;
    metrics.upstream_latency(started.elapsed());
    Ok(resp)
}
