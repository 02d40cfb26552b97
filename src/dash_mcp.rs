//! Dash 4's MCP server (`Dash(enable_mcp=True)`: JSON-RPC 2.0 over `POST <prefix>_mcp`) under
//! the policy. The `[mcp]` table can close it to everyone or to all but some roles. Beyond
//! that, every request is read before it reaches the app:
//!
//! - batches (JSON arrays) are refused: Dash does not serve them, and one request is judged at
//!   a time;
//! - `tools/call` of a callback's tool is judged by [`crate::dash_guard`] against that
//!   callback's outputs (and, for the Dash Pages router, the pages its arguments name), the
//!   tool matched to its callback by the helper's Dash plugin
//!   ([`crate::proxy::callback_registry`]); a tool the gateway cannot match is refused to
//!   anyone an output rule restricts. `tasks/*` and the background-task tools are judged as
//!   the tool their task id names. `get_dash_component` of a hidden component is refused;
//! - `resources/read` is allowed for the URIs Dash serves, exactly (`dash://page-layout/…`
//!   also passes the Pages rules of its path); any other URI is refused;
//! - for someone `dash_components` rules hide components from, answers are pruned: tool
//!   results, layouts and page layouts lose hidden components (inside the JSON text Dash
//!   embeds too), `dash://components` and `dash://clientside-callbacks` lose their entries,
//!   and `tools/list` leaves out the tools they may not call and the input descriptions
//!   (which carry components' current values).

use http::Method;
use serde_json::{Value as Json, json};

use crate::dash_guard::{Asker, Way, judge_callback};
use crate::error::Error;
use crate::policy::dash::{Callback, ComponentId};
use crate::policy::prune::{self, Hidden};
use crate::policy::{Policy, Subject, Verdict, pages};
use crate::proxy::callback_registry::{CallbackRegistry, RegistryCache};
use crate::proxy::filter::Needs;

/// URIs Dash's MCP server reads (besides `dash://page-layout/{path}`).
const RESOURCES: &[&str] = &[
    "dash://layout",
    "dash://components",
    "dash://pages",
    "dash://clientside-callbacks",
];
const PAGE_LAYOUT: &str = "dash://page-layout/";
/// Tools Dash builds in: the component reader, and the background-task tools (judged as the
/// tool their task id names).
const GET_COMPONENT: &str = "get_dash_component";
const TASK_TOOLS: &[&str] = &["get_background_task_result", "cancel_background_task"];

/// What the gateway must do with the answer of an allowed MCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpPlan {
    /// The JSON-RPC method.
    pub method: String,
    /// For `resources/read`: the URI.
    pub uri: Option<String>,
}

/// The MCP server's place in an app: where its callbacks' prefix is, and what the plugin says.
pub struct McpApp<'a> {
    pub prefix: &'a str,
    pub registries: &'a RegistryCache,
}

fn bad(why: &'static str) -> Error {
    Error::BadRequest(why)
}

/// Judge one MCP request body. A refusal is the error that answers it.
pub async fn judge_request(
    policy: &Policy,
    needs: &Needs<'_>,
    app: &McpApp<'_>,
    body: &[u8],
    asker: &Asker<'_>,
    what: &str,
) -> Result<McpPlan, Error> {
    let value: Json = serde_json::from_slice(body).map_err(|_| bad("MCP request is not JSON"))?;
    let request = match value {
        Json::Object(o) => o,
        Json::Array(_) => return Err(bad("MCP batch requests are not supported")),
        _ => return Err(bad("MCP request is not a JSON-RPC object")),
    };
    let method = request
        .get("method")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let params = request.get("params").cloned().unwrap_or(Json::Null);
    let text = |key: &str| params.get(key).and_then(Json::as_str);
    let mut plan = McpPlan {
        method: method.clone(),
        uri: None,
    };
    match method.as_str() {
        "tools/call" => {
            let name = text("name").ok_or(bad("tools/call without a tool name"))?;
            judge_tool(
                policy,
                needs,
                app,
                name,
                params.get("arguments"),
                asker,
                what,
                0,
            )
            .await?;
        }
        "tasks/get" | "tasks/result" | "tasks/cancel" => {
            let task = text("taskId").ok_or(bad("an MCP task request without a taskId"))?;
            let tool = task.split(':').next().unwrap_or_default();
            judge_tool(policy, needs, app, tool, None, asker, what, 1).await?;
        }
        "resources/read" => {
            let uri = text("uri").ok_or(bad("resources/read without a uri"))?;
            if let Some(page) = uri.strip_prefix(PAGE_LAYOUT) {
                let page = page.trim_start_matches('/');
                let pathname = format!("{}{page}", app.prefix);
                let readings = pages::readings(app.prefix, &pathname)
                    .map_err(|_| bad("malformed Dash Pages path"))?;
                policy.check_page(&readings, asker.who).enforce(
                    &Method::POST,
                    &pathname,
                    asker.user,
                )?;
            } else if !RESOURCES.contains(&uri) {
                return Err(Error::Forbidden(
                    "an MCP resource the gateway does not know",
                ));
            }
            plan.uri = Some(uri.to_owned());
        }
        _ => {}
    }
    Ok(plan)
}

/// Does an output rule restrict this asker (or could it, for someone not signed in)?
fn restricted(policy: &Policy, asker: &Asker<'_>) -> bool {
    policy.has_output_rules() && (asker.who.is_none() || asker.restricted.is_some())
}

#[allow(clippy::too_many_arguments)]
async fn judge_tool(
    policy: &Policy,
    needs: &Needs<'_>,
    app: &McpApp<'_>,
    name: &str,
    arguments: Option<&Json>,
    asker: &Asker<'_>,
    what: &str,
    depth: u8,
) -> Result<(), Error> {
    if name == GET_COMPONENT {
        let id = arguments
            .and_then(|a| a.get("component_id"))
            .and_then(Json::as_str)
            .unwrap_or_default();
        if asker
            .restricted
            .is_some_and(|h| h.hides_id(&ComponentId::Str(id.to_owned())))
        {
            tracing::info!(event = "forbidden", user = asker.user.unwrap_or("-"), path = %what, component = id, "MCP read of a hidden component refused");
            return Err(Error::Forbidden("you do not have access to this component"));
        }
        return Ok(());
    }
    if TASK_TOOLS.contains(&name) && depth == 0 {
        let task = arguments
            .and_then(|a| a.get("taskId"))
            .and_then(Json::as_str)
            .unwrap_or_default();
        let tool = task.split(':').next().unwrap_or_default();
        return Box::pin(judge_tool(policy, needs, app, tool, None, asker, what, 1)).await;
    }
    if !restricted(policy, asker) {
        return Ok(());
    }
    let registry = app
        .registries
        .get(needs.proxy, app.prefix, Some(name), needs.timeout)
        .await?;
    let Some(keys) = registry.mcp_tools.get(name) else {
        tracing::info!(event = "forbidden", user = asker.user.unwrap_or("-"), path = %what, tool = name, plugin = registry.plugin, "MCP tool not matched to a callback; refused");
        return Err(Error::Forbidden(
            "the gateway cannot tell which callback this MCP tool runs",
        ));
    };
    for key in keys {
        let cb = Callback::from_key(key, arguments).map_err(|_| Error::BadGateway)?;
        judge_callback(policy, needs, app.prefix, &cb, asker, Way::Direct, what).await?;
    }
    Ok(())
}

/// An MCP answer as a user whom a rule restricts may see it. `who`: the user; `hidden`: what
/// `dash_components` rules hide from them, if anything; `registry`: the tools' callbacks, for
/// `tools/list`.
pub fn prune_answer(
    body: &[u8],
    plan: &McpPlan,
    policy: &Policy,
    who: Option<&dyn Subject>,
    hidden: Option<&Hidden>,
    registry: &CallbackRegistry,
) -> Result<Vec<u8>, &'static str> {
    let value: Json = serde_json::from_slice(body).map_err(|_| "an MCP answer that is not JSON")?;
    // Dash answers one object, or a list when it prepends notifications.
    let mut messages = match value {
        Json::Array(items) => items,
        one => vec![one],
    };
    for m in &mut messages {
        let Some(result) = m.get_mut("result") else {
            continue;
        };
        match (plan.method.as_str(), hidden) {
            ("tools/list", _) => prune_tool_list(result, policy, who, hidden, registry),
            ("resources/read", Some(hidden)) => {
                prune_resource(result, plan.uri.as_deref(), hidden)?;
            }
            (_, Some(hidden)) => prune_embedded(result, hidden)?,
            (_, None) => {}
        }
    }
    let out = match messages.len() {
        1 => messages.pop().unwrap_or(Json::Null),
        _ => Json::Array(messages),
    };
    let bytes = serde_json::to_vec(&out).map_err(|_| "an MCP answer that cannot be written")?;
    // Whatever component trees are left anywhere in it (a component's current props).
    match hidden {
        Some(hidden) => match prune::layout(&bytes, hidden).map_err(|e| e.0)? {
            Some(pruned) => Ok(pruned),
            None => Ok(bytes),
        },
        None => Ok(bytes),
    }
}

/// `tools/list`: only the tools this user may call; for someone components are hidden from,
/// without the input descriptions (they carry components' current values).
fn prune_tool_list(
    result: &mut Json,
    policy: &Policy,
    who: Option<&dyn Subject>,
    hidden: Option<&Hidden>,
    registry: &CallbackRegistry,
) {
    let Some(tools) = result.get_mut("tools").and_then(Json::as_array_mut) else {
        return;
    };
    tools.retain(|tool| {
        let name = tool.get("name").and_then(Json::as_str).unwrap_or_default();
        if name == GET_COMPONENT || TASK_TOOLS.contains(&name) {
            return true;
        }
        registry.mcp_tools.get(name).is_some_and(|keys| {
            keys.iter().all(|k| {
                Callback::from_key(k, None)
                    .is_ok_and(|cb| policy.check_outputs(&cb.outputs, who) == Verdict::Allow)
            })
        })
    });
    if hidden.is_none_or(|h| !h.hides_components()) {
        return;
    }
    for tool in tools.iter_mut() {
        if let Some(props) = tool
            .get_mut("inputSchema")
            .and_then(|s| s.get_mut("properties"))
            .and_then(Json::as_object_mut)
        {
            for p in props.values_mut() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("description");
                }
            }
        }
    }
}

/// Prune the JSON Dash writes as text inside an answer (`content[].text`), and its
/// `structuredContent` (a callback answer, or anything holding components).
fn prune_embedded(result: &mut Json, hidden: &Hidden) -> Result<(), &'static str> {
    if let Some(items) = result.get_mut("content").and_then(Json::as_array_mut) {
        for item in items.iter_mut() {
            prune_text_member(item, hidden)?;
        }
    }
    if let Some(structured) = result.get_mut("structuredContent") {
        *structured = prune::value(structured, hidden).map_err(|e| e.0)?;
    }
    Ok(())
}

fn prune_text_member(item: &mut Json, hidden: &Hidden) -> Result<(), &'static str> {
    let Some(text) = item.get("text").and_then(Json::as_str) else {
        return Ok(());
    };
    let Ok(inner) = serde_json::from_str::<Json>(text) else {
        return Ok(());
    };
    let pruned = prune::value(&inner, hidden).map_err(|e| e.0)?;
    if pruned != inner {
        item["text"] = Json::String(pruned.to_string());
    }
    Ok(())
}

/// `resources/read`: the layouts lose hidden components; the component and clientside lists
/// lose their entries.
fn prune_resource(
    result: &mut Json,
    uri: Option<&str>,
    hidden: &Hidden,
) -> Result<(), &'static str> {
    let Some(contents) = result.get_mut("contents").and_then(Json::as_array_mut) else {
        return Ok(());
    };
    for item in contents.iter_mut() {
        let Some(text) = item.get("text").and_then(Json::as_str) else {
            continue;
        };
        let Ok(mut inner) = serde_json::from_str::<Json>(text) else {
            continue;
        };
        match uri {
            Some("dash://components") => {
                if let Some(list) = inner.as_array_mut() {
                    // Dash writes dict ids as Python reprs: they cannot be matched, so they go.
                    list.retain(|c| {
                        c.get("id").and_then(Json::as_str).is_some_and(|id| {
                            !id.starts_with('{')
                                && !hidden.hides_id(&ComponentId::Str(id.to_owned()))
                        })
                    });
                }
            }
            Some("dash://clientside-callbacks") => {
                if let Some(list) = inner.get_mut("callbacks").and_then(Json::as_array_mut) {
                    list.retain(|cb| {
                        cb.get("outputs")
                            .and_then(Json::as_array)
                            .is_some_and(|outs| {
                                outs.iter().all(|o| {
                                    o.get("component_id")
                                        .and_then(Json::as_str)
                                        .is_some_and(|id| {
                                            !hidden.hides_id(&ComponentId::Str(id.to_owned()))
                                        })
                                })
                            })
                    });
                }
            }
            _ => inner = prune::value(&inner, hidden).map_err(|e| e.0)?,
        }
        item["text"] = Json::String(inner.to_string());
    }
    Ok(())
}

/// The JSON-RPC error the gateway answers a refused MCP request with (beside its HTTP status).
pub fn refusal(body: &[u8], e: &Error) -> Json {
    let id = serde_json::from_slice::<Json>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Json::Null);
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": e.to_string()}})
}
