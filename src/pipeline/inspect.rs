//! The inspect stage: the request bodies the policy must read before the app sees them — a
//! Dash callback, an MCP request, an API endpoint's arguments — judged with the one callback
//! judgement ([`judge_callback`]); every other body streams through untouched.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::AppReads;
use super::authorize::Authorized;
use super::guard::Target;
use crate::dash_guard::{Asker, Way, judge_callback};
use crate::dash_mcp::{self, McpApp, McpPlan};
use crate::error::Error;
use crate::http_util::{Body, ClientBody, Response, full, json};
use crate::policy::{Policy, dash};
use crate::proxy::filter::Filter;
use crate::proxy::read_body;
use crate::session::csrf;

/// The outcome of the inspect stage.
pub enum Inspection {
    /// Go on, with the body to send and how the answer must be read.
    Pass {
        body: Body,
        /// The answer's filter: the authorize stage's, or for a background callback (whose
        /// answer is a callback answer whatever the request looked like) the callback one.
        filter: Option<Filter>,
        /// An MCP answer to filter for the asker.
        mcp: Option<McpPlan>,
    },
    /// A refused MCP request: answered as JSON-RPC, never forwarded.
    Refused(Response),
}

/// Inspect a request's body. Reads at most `app.limit` bytes within `read_timeout`.
pub async fn inspect<B: ClientBody>(
    app: &AppReads<'_>,
    policy: &Arc<Policy>,
    target: &Target,
    authorized: &Authorized,
    asker: &Asker<'_>,
    body: B,
    read_timeout: Duration,
) -> Result<Inspection, Error> {
    let needs = app.needs();
    let what = &target.path.forward;
    let grant = &authorized.grant;
    let mut filter = authorized.filter;
    let mut mcp = None;
    let body = if target.callback {
        let bytes = read_body(body, app.limit, read_timeout).await?;
        let cb = dash::parse(&bytes).map_err(|e| {
            tracing::debug!(error = %e, "refused a Dash callback");
            Error::BadRequest("malformed Dash callback")
        })?;
        let allowed = judge_callback(
            policy,
            &needs,
            target.app(),
            &cb,
            asker,
            Way::Renderer,
            what,
        )
        .await?;
        if allowed.background {
            filter = Some(Filter::Callback);
        }
        full(bytes)
    } else if target.mcp && target.method == Method::POST {
        let bytes = read_body(body, app.limit, read_timeout).await?;
        let mcp_app = McpApp {
            prefix: target.app(),
            registries: app.registries,
        };
        match dash_mcp::judge_request(policy, &needs, &mcp_app, &bytes, asker, what).await {
            Ok(plan) => mcp = Some(plan),
            Err(e) => {
                return Ok(Inspection::Refused(json(
                    e.status(),
                    &dash_mcp::refusal(&bytes, &e),
                )));
            }
        }
        full(bytes)
    } else if grant.output_bound && !target.upgrade && !csrf::is_safe_method(&target.method) {
        match api_endpoint(app, policy, what).await? {
            Some((prefix, keys)) => {
                let bytes = read_body(body, app.limit, read_timeout).await?;
                let arguments: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
                for key in &keys {
                    let cb = dash::Callback::from_key(key, arguments.as_ref()).map_err(|_| {
                        tracing::warn!(endpoint = %what, key = %key, "an API endpoint's callback key cannot be read; refused");
                        Error::BadGateway
                    })?;
                    judge_callback(policy, &needs, &prefix, &cb, asker, Way::Direct, what).await?;
                }
                full(bytes)
            }
            None => app.proxy.stream_body(body),
        }
    } else {
        app.proxy.stream_body(body)
    };
    Ok(Inspection::Pass {
        body,
        filter,
        mcp: mcp.filter(|_| grant.output_bound || grant.restricted.is_some()),
    })
}

/// The callbacks the API endpoint at `url` runs, with the prefix of the app that serves them:
/// the policy's `[api_endpoints]` first, then what the helper's Dash plugin reports in the
/// apps the gateway knows (`/`, and every prefix a Dash page has been served under). `None`:
/// not an API endpoint anyone reported.
async fn api_endpoint(
    app: &AppReads<'_>,
    policy: &Policy,
    url: &str,
) -> Result<Option<(String, Vec<String>)>, Error> {
    if let Some(key) = policy.api_endpoint(url) {
        return Ok(Some(("/".to_owned(), vec![key.to_owned()])));
    }
    let mut prefixes = app.dash_configs.prefixes();
    prefixes.extend(app.dependencies.prefixes());
    prefixes.push("/".to_owned());
    prefixes.sort();
    prefixes.dedup();
    for prefix in prefixes {
        let registry = app
            .registries
            .get(app.proxy, &prefix, Some(url), app.timeout)
            .await?;
        if let Some(keys) = registry.api_endpoints.get(url) {
            return Ok(Some((prefix, keys.clone())));
        }
    }
    Ok(None)
}
