//! Filtering the app's answers for one user: the components `dash_components` rules hide from
//! them are removed before the answer leaves the gateway (see [`crate::policy::prune`]), with
//! everything that would write into them (side updates, progress values, `Patch` operations,
//! `running` values, clientside functions), and a background callback's progress values for
//! outputs `dash_outputs` rules forbid them. Only answers that can carry these, for users who
//! fail such a rule, are read; every other answer streams through untouched.
//!
//! The gateway asks the app for uncompressed layouts, callback answers and page navigations;
//! an answer that comes compressed anyway (or an HTML page a non-browser client asked for
//! with compression) is decompressed here (gzip, deflate, br), within the same size limit as
//! the compressed bytes, and sent on uncompressed. A coding it cannot read is a 502.

use std::io::Read as _;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};

use super::Proxy;
use super::dependencies::DependencyCache;
use crate::error::Error;
use crate::http_util::{Response, content_type, full};
use crate::policy::dash::INLINE_CLIENTSIDE;
use crate::policy::path::NormalPath;
use crate::policy::prune::{self, Hidden};

/// Answers larger than this (or compressed) are decoded and pruned on the blocking pool
/// (about 0.3 ms of scanning).
const OFF_THREAD: usize = 256 * 1024;

/// Which kind of answer a request will get, when it may carry components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `GET …/_dash-layout`: the layout tree.
    Layout,
    /// `POST …/_dash-update-component`: outputs (Pages content among them) and `sideUpdate`.
    Callback,
    /// `GET …/_dash-dependencies`: `running` values and clientside callbacks.
    Dependencies,
    /// Any other `GET`: if the answer is an HTML page, its `_dash-config` may embed layouts
    /// and its inline scripts clientside functions (whatever the client said it accepts); any
    /// other answer streams through.
    Page,
}

impl Filter {
    pub fn for_request(path: &NormalPath, method: &Method) -> Option<Filter> {
        match (path.last(), method) {
            (Some("_dash-layout"), &Method::GET) => Some(Filter::Layout),
            (Some("_dash-dependencies"), &Method::GET) => Some(Filter::Dependencies),
            (Some(crate::policy::dash::UPDATE_COMPONENT), &Method::POST) => Some(Filter::Callback),
            (_, &Method::GET) => Some(Filter::Page),
            _ => None,
        }
    }

    /// Whether the app should be asked for an uncompressed answer: always for layouts and
    /// callbacks, and for browser navigations (which get HTML); other `GET`s (scripts, styles,
    /// data) keep their compression, since they are not read.
    pub fn asks_identity(self, navigation: bool) -> bool {
        self != Filter::Page || navigation
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

/// Read an answer that must be filtered: every successful answer with a body (for
/// [`Filter::Page`], every HTML one). Fails closed: an answer that cannot be read (larger than
/// the limit, cut off) is an error, never passed on.
pub async fn read(
    resp: Response,
    filter: Filter,
    limit: usize,
    timeout: Duration,
) -> Result<Read, Error> {
    let status = resp.status();
    if !status.is_success() || status == StatusCode::NO_CONTENT {
        return Ok(Read::Untouched(resp));
    }
    if filter == Filter::Page && content_type(resp.headers()).as_deref() != Some("text/html") {
        return Ok(Read::Untouched(resp));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        // A fragment cannot be parsed, so it cannot be shown to be free of hidden components.
        return Err(unreadable(
            "a byte range of an answer that must be filtered",
        ));
    }
    let (parts, body) = resp.into_parts();
    match super::read_answer(body, limit, timeout).await? {
        Some(bytes) => Ok(Read::Whole(parts, bytes)),
        None => Err(unreadable("larger than limits.max_inspect_bytes")),
    }
}

/// What filtering an answer needs besides the answer itself.
pub struct Needs<'a> {
    pub limit: usize,
    pub timeout: Duration,
    pub dependencies: &'a DependencyCache,
    pub proxy: &'a Proxy,
}

/// Filter one answer for one user: read it whole (when [`read`] says it must be), decompress
/// it, and remove what `hidden` covers. Fails closed: an answer that must be filtered but
/// cannot be read is an error, never passed on.
pub async fn apply(
    resp: Response,
    filter: Filter,
    hidden: Hidden,
    needs: &Needs<'_>,
) -> Result<Response, Error> {
    let (mut parts, bytes) = match read(resp, filter, needs.limit, needs.timeout).await? {
        Read::Untouched(r) => return Ok(r),
        Read::Whole(parts, bytes) => (parts, bytes),
    };
    let limit = needs.limit;
    let bytes = match parts.headers.remove(header::CONTENT_ENCODING) {
        // What a compressed answer inflates to is not known in advance: off the request thread.
        Some(codings) => tokio::task::spawn_blocking(move || decode(&codings, bytes, limit))
            .await
            .map_err(|_| Error::BadGateway)??,
        None => bytes,
    };
    // An index page's inline clientside functions: which of them write to hidden components
    // is in the app's callback list.
    let functions = if filter == Filter::Page
        && hidden.hides_components()
        && memchr::memmem::find(&bytes, INLINE_CLIENTSIDE.as_bytes()).is_some()
    {
        let prefix = prune::requests_prefix(&bytes)
            .map_err(|e| unreadable(e.0))?
            .filter(|p| p.starts_with('/') && p.ends_with('/'))
            .unwrap_or_else(|| "/".to_owned());
        let deps = needs
            .dependencies
            .get(needs.proxy, &prefix, None, needs.timeout)
            .await?;
        prune::hidden_clientside_functions(&deps, &hidden)
    } else {
        Vec::new()
    };
    let big = bytes.len() > OFF_THREAD;
    let prune = move || rewrite(parts, bytes, &hidden, filter, &functions);
    if big {
        tokio::task::spawn_blocking(prune)
            .await
            .map_err(|_| Error::BadGateway)?
    } else {
        prune()
    }
}

/// Remove what `hidden` covers from a whole, decoded answer (`functions`: the inline
/// clientside functions to take out of an index page). Fails closed on JSON that does not
/// parse.
pub fn rewrite(
    mut parts: http::response::Parts,
    bytes: bytes::Bytes,
    hidden: &Hidden,
    filter: Filter,
    functions: &[String],
) -> Result<Response, Error> {
    let pruned = match filter {
        Filter::Layout => prune::layout(&bytes, hidden),
        Filter::Callback => prune::callback(&bytes, hidden),
        Filter::Dependencies => prune::dependencies(&bytes, hidden),
        Filter::Page => prune::index_page(&bytes, hidden, functions),
    }
    .map_err(|e| unreadable(e.0))?;
    let out = match pruned {
        Some(new) => {
            tracing::debug!(?filter, "removed what this user may not see");
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

/// Undo the content codings of an answer (RFC 9110 8.4: listed in the order they were
/// applied), each result no larger than `limit` (a small bomb cannot inflate past it).
fn decode(
    codings: &HeaderValue,
    mut bytes: bytes::Bytes,
    limit: usize,
) -> Result<bytes::Bytes, Error> {
    let codings = codings
        .to_str()
        .map_err(|_| unreadable("unreadable Content-Encoding"))?;
    for coding in codings.rsplit(',').map(str::trim) {
        let input = &bytes[..];
        bytes = match coding.to_ascii_lowercase().as_str() {
            "identity" => continue,
            "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(input), limit)?,
            // HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2).
            "deflate" => inflate(flate2::read::ZlibDecoder::new(input), limit)?,
            "br" => inflate(brotli_decompressor::Decompressor::new(input, 4096), limit)?,
            _ => {
                return Err(unreadable(
                    "compressed with a coding the gateway cannot read",
                ));
            }
        };
    }
    Ok(bytes)
}

fn inflate(reader: impl std::io::Read, limit: usize) -> Result<bytes::Bytes, Error> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| unreadable("a compressed answer does not decompress"))?;
    if out.len() > limit {
        return Err(unreadable(
            "larger than limits.max_inspect_bytes once decompressed",
        ));
    }
    Ok(out.into())
}
