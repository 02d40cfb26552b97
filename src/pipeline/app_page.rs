//! What the gateway learns from an app when one of its pages loads (the page's first
//! `_dash-layout`): the CSRF names its `_dash-config` declares, and which of its API endpoints
//! and MCP tools the policy covers (logged once per app).

use std::collections::HashSet;
use std::sync::Mutex;

use super::AppReads;
use crate::error::Error;
use crate::policy::Policy;
use crate::session::{Session, Sessions, secs};

/// Read the app's `_dash-config` (once per [`crate::proxy::app_cache`] freshness) and answer
/// to the CSRF names it declares: a cookie session gets its token under the names that are
/// new, on this very answer. Nothing is at stake if it cannot be read: the names already known
/// stay in use.
pub async fn learn_csrf_names(
    app: &AppReads<'_>,
    sessions: &Sessions,
    prefix: &str,
    session: &mut Session,
    now: i64,
) -> Result<(), Error> {
    let new = learn_dash_config(app, sessions, prefix).await;
    if new.is_empty() {
        return Ok(());
    }
    let age = session
        .claims
        .exp
        .saturating_sub(now)
        .max(secs(sessions.settings.refresh_idle_ttl));
    let cookies = sessions.csrf_cookies_named(&new, &session.claims.sid, now, age)?;
    session.set_cookies.extend(cookies);
    Ok(())
}

/// The CSRF cookie names the app's `_dash-config` adds.
async fn learn_dash_config(app: &AppReads<'_>, sessions: &Sessions, prefix: &str) -> Vec<String> {
    let Ok(config) = app
        .dash_configs
        .get(app.proxy, prefix, None, app.timeout)
        .await
    else {
        return Vec::new();
    };
    let names = &sessions.cookies.csrf;
    let before = names.current();
    let refused = names.learn(
        config.csrf_cookie.as_deref(),
        config.csrf_header.as_deref(),
        |name| sessions.cookies.is_session_cookie(name),
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

/// Say once per app, when it first serves a page, which of its API endpoints and MCP tools
/// the policy covers: those the helper's Dash plugin reports, or (without the plugin) only
/// those the policy's `[api_endpoints]` names. `reported` holds the prefixes already told.
pub async fn report_coverage(
    app: &AppReads<'_>,
    policy: &Policy,
    reported: &Mutex<HashSet<String>>,
    prefix: &str,
) {
    {
        let mut reported = match reported.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Prefixes come from request paths: a bounded number of reports.
        if reported.len() >= 32 || !reported.insert(prefix.to_owned()) {
            return;
        }
    }
    let Ok(registry) = app
        .registries
        .get(app.proxy, prefix, None, app.timeout)
        .await
    else {
        return;
    };
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
