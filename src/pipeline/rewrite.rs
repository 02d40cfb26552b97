//! The rewrite stage: the app's answer as the client receives it — the gateway's cookies
//! kept out of the app's reach, components the asker may not see pruned (from layouts,
//! callback and MCP answers), the cookies of an inline refresh added whatever the answer is —
//! and what every answer carries (the request id, HSTS under TLS).

use http::{HeaderValue, header};

use crate::dash_mcp::{self, McpPlan};
use crate::error::Error;
use crate::http_util::{Response, full};
use crate::policy::hidden::Hidden;
use crate::policy::{Policy, Subject};
use crate::proxy::callback_registry::CallbackRegistry;
use crate::proxy::filter::{self, Filter, Needs};
use crate::session::cookies::CookieNames;

use super::guard::REQUEST_ID;

/// The upstream must not overwrite the gateway's cookies (an app with its own `_csrf_token`
/// would otherwise break every Dash callback).
pub fn strip_our_set_cookies(resp: &mut Response, names: &CookieNames) {
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

/// Filter an MCP answer for the asker: tools, layouts and results they may not see go. The
/// answer is read whole; what cannot be read (too large, compressed, not JSON-RPC) is refused.
pub async fn prune_mcp(
    resp: Response,
    needs: &Needs<'_>,
    plan: &McpPlan,
    policy: &Policy,
    who: Option<&dyn Subject>,
    hidden: Option<&Hidden>,
    registry: &CallbackRegistry,
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
    let out =
        dash_mcp::prune_answer(&bytes, plan, policy, who, hidden, registry).map_err(|why| {
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

/// Add `Set-Cookie` values (an inline refresh's) to an answer, whatever it is: a 403 or a 502
/// too, or the browser would keep a refresh token that is already spent and, after the grace
/// window, look like a thief replaying it.
pub fn carry_cookies(resp: &mut Response, cookies: Vec<HeaderValue>) {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
}

/// What every answer carries: the request's id, and under TLS HSTS (unless the app set its
/// own).
pub fn finish(resp: &mut Response, request_id: &str, https: bool) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if https
        && !resp
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}
