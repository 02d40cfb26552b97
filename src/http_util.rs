//! Body and response types shared by the auth handlers and the proxy, plus the few helpers
//! every handler needs (content negotiation, JSON and redirect responses) and what a cookie or
//! header name an app or operator hands the gateway may be.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body: a fixed buffer for our pages, a stream for proxied responses.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type Response = http::Response<Body>;

/// A request body from a client: hyper's `Incoming` on a real connection, a `Full` buffer in
/// the pipeline's in-process tests. Everything that handles a request is generic over it.
pub trait ClientBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<T> ClientBody for T where
    T: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// A JSON response with `Cache-Control: no-store` (auth answers must never be cached).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A redirect to a target we built ourselves (never a raw client value).
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    } else {
        // Unreachable for targets we build, but never emit a broken header: go home.
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Does the client want an HTML page (a browser navigation) rather than JSON?
/// Dash's own XHRs send `Accept: application/json` and live under `_dash-`; they must never
/// receive an HTML redirect, which dash-renderer cannot follow.
pub fn wants_html(headers: &HeaderMap, path: &str) -> bool {
    if path.contains("/_dash-") || path.contains("/_reload-hash") {
        return false;
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The media type of a request body, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = raw.split(';').next()?.trim().to_ascii_lowercase();
    Some(mime)
}

/// Is `name` a plain cookie name (RFC 6265 token characters an app would use: letters, digits,
/// `-`, `_`, `.`), at most 64 bytes, without the `__Host-`/`__Secure-` prefixes that bind a
/// cookie to attributes?
pub fn is_plain_cookie_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !lower.starts_with("__host-")
        && !lower.starts_with("__secure-")
}

/// Headers that mean something else to the gateway or the app: credentials, routing, framing,
/// forwarding and identity, Fetch Metadata. No app's CSRF header may be one of them.
pub fn is_free_header_name(name: &str) -> bool {
    const TAKEN: &[&str] = &[
        "authorization",
        "cookie",
        "host",
        "origin",
        "referer",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "forwarded",
        "x-request-id",
        "plotly-user-data",
    ];
    let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
        return false;
    };
    let n = name.as_str();
    !TAKEN.contains(&n)
        && !["x-forwarded-", "x-dashgate-", "x-auth-request-", "sec-"]
            .iter()
            .any(|p| n.starts_with(p))
}
