//! Filtering the app's answers for one user: the components `dash_components` rules hide from
//! them are removed before the answer leaves the gateway (see [`crate::policy::prune`]). Only
//! answers that can carry components, for users who fail a component rule, are read; every
//! other answer streams through untouched.

use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;

use crate::error::Error;
use crate::http_util::{Response, content_type, full};
use crate::policy::path::NormalPath;
use crate::policy::prune::{self, Hidden};

/// Which kind of answer a request will get, when it may carry components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `GET …/_dash-layout`: the layout tree.
    Layout,
    /// `POST …/_dash-update-component`: outputs (Pages content among them) and `sideUpdate`.
    Callback,
    /// A page navigation: the index page, whose `_dash-config` may embed layouts.
    Page,
}

impl Filter {
    pub fn for_request(path: &NormalPath, method: &Method, navigation: bool) -> Option<Filter> {
        match (path.last(), method) {
            (Some("_dash-layout"), &Method::GET) => Some(Filter::Layout),
            (Some(crate::policy::dash::UPDATE_COMPONENT), &Method::POST) => Some(Filter::Callback),
            (_, &Method::GET) if navigation => Some(Filter::Page),
            _ => None,
        }
    }
}

fn unreadable(why: &str) -> Error {
    tracing::warn!(
        error = why,
        "an answer that must be filtered could not be read; refused"
    );
    Error::BadGateway
}

/// An answer as [`read`] left it.
pub enum Read {
    /// Nothing to filter here (not a 200, not HTML for a page): send it as it is.
    Untouched(Response),
    /// The whole answer, to be filtered by [`rewrite`].
    Whole(http::response::Parts, bytes::Bytes),
}

/// Read an answer that must be filtered. Fails closed: an answer that cannot be read
/// (compressed despite the request, larger than the limit) is a 502, never passed on.
pub async fn read(
    resp: Response,
    filter: Filter,
    limit: usize,
    timeout: Duration,
) -> Result<Read, Error> {
    if resp.status() != StatusCode::OK {
        return Ok(Read::Untouched(resp));
    }
    if filter == Filter::Page && content_type(resp.headers()).as_deref() != Some("text/html") {
        return Ok(Read::Untouched(resp));
    }
    if resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(unreadable("compressed although identity was asked for"));
    }
    let (parts, mut body) = resp.into_parts();
    let collect = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Error::BadGateway)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(unreadable("larger than limits.max_inspect_bytes"));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(Error::GatewayTimeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(bytes)) => Ok(Read::Whole(parts, bytes)),
    }
}

/// Remove what `hidden` covers from a whole answer. Fails closed on JSON that does not parse.
pub fn rewrite(
    mut parts: http::response::Parts,
    bytes: bytes::Bytes,
    hidden: &Hidden,
    filter: Filter,
) -> Result<Response, Error> {
    let pruned = match filter {
        Filter::Layout => prune::layout(&bytes, hidden),
        Filter::Callback => prune::callback(&bytes, hidden),
        Filter::Page => prune::index_page(&bytes, hidden),
    }
    .map_err(|e| unreadable(e.0))?;
    let out = match pruned {
        Some(new) => {
            tracing::debug!(?filter, "removed hidden components");
            bytes::Bytes::from(new)
        }
        None => bytes,
    };
    let h = &mut parts.headers;
    // What this user got is theirs alone, and no longer what the app's validators describe.
    for name in [header::ETAG, header::LAST_MODIFIED, header::CONTENT_LENGTH] {
        h.remove(name);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&out.len().to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    Ok(Response::from_parts(parts, full(out)))
}
