//! The one judgement of a Dash callback request, however it reaches the app: an HTTP
//! `POST …/_dash-update-component`, a `callback_request` frame on a Dash 4 WebSocket, an MCP
//! tool call or an API endpoint. Output rules, the Dash Pages rules of the pathname it would
//! render, and the outputs its `running` option writes (read from the app's callback list) are
//! checked here and nowhere else.

use http::Method;

use crate::error::Error;
use crate::policy::dash::Callback;
use crate::policy::prune::Hidden;
use crate::policy::{Policy, Subject, Verdict, pages};
use crate::proxy::filter::Needs;

/// Who asks, as the judgement needs it.
pub struct Asker<'a> {
    pub who: Option<&'a dyn Subject>,
    /// Their name, for the log.
    pub user: Option<&'a str>,
    /// What the rules they fail hide from them ([`Policy::restrictions`]).
    pub restricted: Option<&'a Hidden>,
}

/// How the callback reaches the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From dash-renderer (HTTP POST, WebSocket): its `running` outputs are written too, and a
    /// background callback answers with progress values.
    Renderer,
    /// An API endpoint or an MCP tool: the function runs and answers by itself.
    Direct,
}

/// What an allowed callback's answer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// A background callback asked by someone the rules restrict: its answers (progress
    /// values) must be read and filtered.
    pub background: bool,
}

/// May `asker` run callback `cb` of the app under `app` (its prefix)? `what` names the way in
/// for the log (the request path). A refusal is the error that answers it.
pub async fn judge_callback(
    policy: &Policy,
    needs: &Needs<'_>,
    app: &str,
    cb: &Callback,
    asker: &Asker<'_>,
    way: Way,
    what: &str,
) -> Result<Allowed, Error> {
    let method = &Method::POST;
    // A refusal names the callback beside the way it came.
    let enforce = |verdict: Verdict| match verdict {
        Verdict::Allow => Ok(()),
        v => v.enforce(method, &format!("{what} {}", cb.key), asker.user),
    };
    enforce(policy.check_outputs(&cb.outputs, asker.who))?;
    for page in &cb.page_paths {
        let readings = pages::readings(app, page).map_err(|e| {
            tracing::debug!(error = %e, "refused a Dash Pages pathname");
            Error::BadRequest("malformed Dash Pages pathname")
        })?;
        policy
            .check_page(&readings, asker.who)
            .enforce(method, page, asker.user)?;
    }
    // For someone the output rules restrict, what the app's callback list says about this
    // callback: the outputs its `running` option writes count as its outputs, and a
    // background callback's answers (their `progress` values) are read.
    let mut allowed = Allowed { background: false };
    let restricted = asker.who.is_none() || asker.restricted.is_some();
    if way == Way::Renderer && policy.has_output_rules() && restricted {
        let deps = needs
            .dependencies
            .get(needs.proxy, app, Some(&cb.key), needs.timeout)
            .await?;
        if let Some(spec) = deps.callbacks.get(&cb.key) {
            enforce(policy.check_outputs(&spec.running, asker.who))?;
            allowed.background = spec.background && asker.restricted.is_some();
        }
    }
    Ok(allowed)
}
