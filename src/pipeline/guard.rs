//! The guard stage: what every request passes before anything looks at its credentials — the
//! client's address (a trusted proxy's word only), the request id, one `Host` whatever the
//! HTTP version, and, for requests to the
//! app, the declared body size, a path that reads one way only, the gateway's own routes the
//! app's clients may not reach, and the facts later stages decide on ([`Target`]).

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue, Method, Request, header};

use crate::cidr::Cidr;
use crate::dash_socket::WS_CALLBACK;
use crate::error::Error;
use crate::http_util::wants_html;
use crate::policy::path::{NormalPath, normalize};
use crate::policy::{Policy, dash};
use crate::proxy::callback_registry::PLUGIN_ROUTE;
use crate::proxy::is_upgrade;

/// Header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Who is asking and under which id, settled before anything else.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The client: the socket's address, or behind a trusted proxy the address it reports.
    pub client: SocketAddr,
    /// In every log line about the request, in the answer, and passed to the app.
    pub request_id: String,
}

/// Settle the client's address and the request id, and put the id on the request (a trusted
/// proxy's id is kept so traces join up).
pub fn arrive<B>(req: &mut Request<B>, peer: SocketAddr, trusted: &[Cidr]) -> Arrival {
    let from_proxy = trusted.iter().any(|c| c.contains(peer.ip()));
    let client = crate::proxy::client_ip::client_ip(peer, req.headers(), trusted);
    let request_id = request_id(req.headers(), from_proxy);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    Arrival {
        client: SocketAddr::new(client, peer.port()),
        request_id,
    }
}

/// An HTTP/2 request names its host in `:authority` (and an HTTP/1.1 one may, in an
/// absolute-form target), which the pipeline and the app read as `Host` (RFC 9113 8.3.1):
/// copy it there. A request whose `Host` says otherwise is refused rather than guessed at.
pub fn authority_as_host<B>(req: &mut Request<B>) -> Result<(), Error> {
    let Some(authority) = req.uri().authority() else {
        return Ok(());
    };
    let authority = HeaderValue::from_str(authority.as_str())
        .map_err(|_| Error::BadRequest("malformed :authority"))?;
    match req.headers().get(header::HOST) {
        Some(host) if host != authority => Err(Error::BadRequest("Host and :authority disagree")),
        Some(_) => Ok(()),
        None => {
            req.headers_mut().insert(header::HOST, authority);
            Ok(())
        }
    }
}

/// The request id: a trusted proxy's if it is well-formed, otherwise a new random one.
fn request_id(headers: &HeaderMap, from_proxy: bool) -> String {
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

/// What a request to the app is, as every later stage needs to know it.
#[derive(Debug)]
pub struct Target {
    /// The path the policy judges and the upstream receives.
    pub path: NormalPath,
    pub method: Method,
    /// A Dash callback (`POST …/_dash-update-component`) whose body the policy wants read.
    pub callback: bool,
    /// A WebSocket (or other `Upgrade`) handshake.
    pub upgrade: bool,
    /// A WebSocket of Dash callbacks (`…/_dash-ws-callback`).
    pub dash_socket: bool,
    /// `GET …/_dash-layout`: the first request of a Dash page after its index.
    pub layout: bool,
    /// The app's MCP server (`[mcp] path`).
    pub mcp: bool,
    /// A path rule makes it public (no sign-in needed).
    pub public: bool,
    /// A browser navigation (errors are pages, not JSON).
    pub navigation: bool,
}

impl Target {
    /// The app the request is for: `/`, or the prefix a Dash app is served under.
    pub fn app(&self) -> &str {
        crate::policy::pages::app_prefix(&self.path.forward)
    }

    /// Must the request's credentials be read? Public paths are served without looking at
    /// them, unless a callback body (or a socket of callbacks) must be checked against rules
    /// that may need to know the user.
    pub fn needs_identity(&self) -> bool {
        !self.public || self.callback || self.dash_socket
    }
}

/// Read what a request to the app is; refuse CONNECT and TRACE, a body declared larger than
/// `max_body`, a path that does not read one way only, and the route the helper's Dash plugin answers the
/// gateway on.
pub fn target<B>(req: &Request<B>, max_body: u64, policy: &Policy) -> Result<Target, Error> {
    if matches!(*req.method(), Method::CONNECT | Method::TRACE) {
        // A tunnel would carry what no stage sees; TRACE echoes what the gateway hides.
        return Err(Error::MethodNotAllowed);
    }
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > max_body) {
        return Err(Error::PayloadTooLarge);
    }
    let path =
        normalize(req.uri().path()).map_err(|_| Error::BadRequest("malformed request path"))?;
    let n = path.segments.len();
    if n >= 2 && path.segments[n - 2..] == PLUGIN_ROUTE {
        // What the helper's Dash plugin tells the gateway is the gateway's alone.
        return Err(Error::NotFound);
    }
    let method = req.method().clone();
    let last = path.last();
    let upgrade = is_upgrade(req);
    Ok(Target {
        callback: method == Method::POST
            && last == Some(dash::UPDATE_COMPONENT)
            && policy.inspects_callbacks(),
        dash_socket: upgrade && last == Some(WS_CALLBACK),
        layout: method == Method::GET && last == Some("_dash-layout"),
        mcp: last.is_some_and(|l| l.eq_ignore_ascii_case(&policy.mcp.path)),
        public: policy.is_public(&path.segments, &method),
        navigation: wants_html(req.headers(), req.uri().path()),
        upgrade,
        method,
        path,
    })
}
