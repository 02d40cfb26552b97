//! Removing the components a user may not see (`dash_components` rules) from what the Dash
//! app sends: the `_dash-layout` tree, the component trees inside `_dash-update-component`
//! answers (Dash Pages content among them) and their `sideUpdate`s, and the
//! `validation_layout` an index page may embed in `_dash-config`. A removed component's props
//! and children never leave the gateway: it becomes `null` (which Dash renders as nothing) or
//! the rule's placeholder text. The answers are scanned as bytes ([`super::scan`]), not parsed
//! into a tree, so a large layout costs one pass.
//!
//! A component is a JSON object with a string `type`, a string `namespace` and an object
//! `props`; its id is `props.id`, a string or a pattern-matching dict.

use serde_json::{Map, Value as Json};

use super::dash::{CallbackSpec, Dependencies, INLINE_CLIENTSIDE};
pub use super::hidden::{Hidden, PruneError};
use super::hidden::{component_props, replacement};
use super::scan::{self, Kind, Member, PATCH_KEY, Splice};

/// Clean a parsed value for this user; how many things were removed. Hidden components
/// anywhere below `v` are replaced (as in the byte scan), and `Patch` objects lose the
/// operations that could write into a hidden component ([`reaches_into_a_component`]).
fn walk(v: &mut Json, hidden: &Hidden, n: &mut usize) {
    if let Json::Object(map) = v {
        if map.contains_key(PATCH_KEY) {
            *n += patch_operations(map, hidden);
        }
    }
    let children: Box<dyn Iterator<Item = &mut Json>> = match v {
        Json::Array(items) => Box::new(items.iter_mut()),
        Json::Object(map) => Box::new(map.values_mut()),
        _ => return,
    };
    for child in children {
        match hidden.hides(child) {
            Some(rule) => {
                *n += 1;
                *child = replacement(rule);
            }
            None => walk(child, hidden, n),
        }
    }
}

/// Drop the operations of a `Patch` (`{"__dash_patch_update": …, "operations": [{"operation",
/// "location", "params"}, …]}`) that could write into a component hidden from this user;
/// how many went. Only for users who fail a `dash_components` rule: for them, the child at a
/// position of a list may be one the gateway removed, and the gateway keeps no copy of what
/// each browser holds to tell which. An operations list it cannot read goes whole.
fn patch_operations(patch: &mut Map<String, Json>, hidden: &Hidden) -> usize {
    if !hidden.hides_components() {
        return 0;
    }
    match patch.get_mut("operations") {
        Some(Json::Array(ops)) => {
            let before = ops.len();
            ops.retain(|op| !reaches_into_a_component(op));
            before - ops.len()
        }
        Some(other) => {
            *other = Json::Array(Vec::new());
            1
        }
        None => 0,
    }
}

/// Could this `Patch` operation write into an existing component's props? Its location goes
/// through a `props` member (`p[1]["props"]["children"] = …`), or the value it writes has a
/// `props` member outside a whole component (`p[1].update({"props": …})` merges into the
/// child at a position). Whole components in a value are judged by their ids like any other.
fn reaches_into_a_component(op: &Json) -> bool {
    let Some(op) = op.as_object() else {
        return true;
    };
    let through_props = match op.get("location") {
        Some(Json::Array(keys)) => keys.iter().any(|k| k.as_str() == Some("props")),
        _ => return true,
    };
    through_props || op.get("params").is_some_and(loose_props)
}

/// A `props` member in an object that is not a whole component, anywhere in `v`.
fn loose_props(v: &Json) -> bool {
    match v {
        Json::Object(m) => {
            (m.contains_key("props") && component_props(m).is_none()) || m.values().any(loose_props)
        }
        Json::Array(items) => items.iter().any(loose_props),
        _ => false,
    }
}

/// The empty component that stands in for a hidden layout root (the renderer needs one).
const EMPTY_ROOT: &str =
    r#"{"type":"Div","namespace":"dash_html_components","props":{"children":null}}"#;

/// Prune a `_dash-layout` answer. `None`: nothing hidden in it, send it as it is.
pub fn layout(b: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    let mut found = scan::scan(b, hidden, Kind::Layout)?;
    if found.splices.is_empty() {
        return Ok(None);
    }
    if let [only] = found.splices.as_mut_slice() {
        if (only.start, only.end) == found.root {
            only.with = EMPTY_ROOT.to_owned();
        }
    }
    Ok(Some(scan::apply(b, &found.splices)))
}

/// Prune a value already parsed (a WebSocket message's data, an MCP result): as a callback
/// answer when it has a member only answers have (`multi`, `response`, `sideUpdate`,
/// `progress`), otherwise as a layout (hidden
/// components anywhere in it). Unchanged when nothing is hidden in it.
pub fn value(v: &Json, hidden: &Hidden) -> Result<Json, PruneError> {
    let bytes = serde_json::to_vec(v).map_err(|_| PruneError("a value that cannot be written"))?;
    let is_answer = ["multi", "response", "sideUpdate", "progress"]
        .iter()
        .any(|k| v.get(k).is_some());
    let pruned = if is_answer {
        callback(&bytes, hidden)?
    } else {
        layout(&bytes, hidden)?
    };
    match pruned {
        Some(new) => {
            serde_json::from_slice(&new).map_err(|_| PruneError("a pruned value that is not JSON"))
        }
        None => Ok(v.clone()),
    }
}

/// Prune a `_dash-update-component` answer (`{"response": {id: {prop: value}}, "sideUpdate":
/// {id: {prop: value}}, "progress": {"id.prop": value}, …}`): hidden components inside any
/// value are replaced; entries for components hidden from this user — or, in `progress` and
/// `progressDefault`, for outputs they may not write — are dropped from the side members; and
/// `Patch` operations that could write into a hidden component are dropped. `None`: nothing
/// to remove.
pub fn callback(b: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    let found = scan::scan(b, hidden, Kind::Callback)?;
    // Side members and patches are read as parsed values; what the scan found inside them
    // goes with them.
    let mut parsed: Vec<(usize, usize, Option<Member>)> = found
        .members
        .iter()
        .map(|(m, (start, end))| (*start, *end, Some(*m)))
        .collect();
    parsed.extend(
        found
            .patches
            .iter()
            .filter(|(ps, pe)| !found.members.iter().any(|(_, (s, e))| s <= ps && pe <= e))
            .map(|(start, end)| (*start, *end, None)),
    );
    let mut splices: Vec<Splice> = found
        .splices
        .into_iter()
        .filter(|sp| {
            !parsed
                .iter()
                .any(|(s, e, _)| *s <= sp.start && sp.end <= *e)
        })
        .collect();
    for (start, end, member) in parsed {
        let mut value: Json = b
            .get(start..end)
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .ok_or(PruneError("a side member or Patch that is not JSON"))?;
        let mut n = 0;
        if let Some(member) = member {
            n += side_entries(&mut value, member, hidden);
        }
        match hidden.hides(&value) {
            // A Patch object that is itself a hidden component.
            Some(rule) => {
                value = replacement(rule);
                n += 1;
            }
            None => walk(&mut value, hidden, &mut n),
        }
        if n > 0 {
            splices.push(Splice {
                start,
                end,
                with: value.to_string(),
            });
        }
    }
    if splices.is_empty() {
        return Ok(None);
    }
    splices.sort_by_key(|s| s.start);
    Ok(Some(scan::apply(b, &splices)))
}

/// Drop the entries of a side member this user must not get: in `sideUpdate` (keyed by id)
/// those of hidden components, in `progress`/`progressDefault` (keyed `"id.prop"`) those of
/// outputs they may not write (hidden components among them) and those whose key names no
/// output. How many went.
fn side_entries(side: &mut Json, member: Member, hidden: &Hidden) -> usize {
    let Json::Object(entries) = side else {
        // Not what Dash sends; the renderer would ignore it. Gone, since it cannot be read.
        *side = Json::Object(Map::new());
        return 1;
    };
    let before = entries.len();
    entries.retain(|key, _| match member {
        Member::SideUpdate => {
            // Dict ids arrive as their JSON text.
            let id = match serde_json::from_str::<Json>(key) {
                Ok(id @ Json::Object(_)) => id,
                _ => Json::String(key.clone()),
            };
            hidden.rule_for(&id).is_none()
        }
        Member::Progress => {
            super::dash::prop_key_id(key).is_ok_and(|id| hidden.denies_output(&id).is_none())
        }
    });
    before - entries.len()
}

/// Prune an index page: the `_dash-config` script's `validation_layout` (present when an app
/// does not set `suppress_callback_exceptions`: Dash then embeds every page's layout), and
/// the inline `<script>`s that define the clientside functions named in `functions` (those
/// whose callbacks write to hidden components: [`hidden_clientside_functions`]). Returns the
/// new page when something was removed.
pub fn index_page(
    html: &[u8],
    hidden: &Hidden,
    functions: &[String],
) -> Result<Option<Vec<u8>>, PruneError> {
    let mut cuts: Vec<Splice> = Vec::new();
    if let Some((start, end)) = config_script(html)? {
        let config = &html[start..end];
        let mut found = scan::scan(config, hidden, Kind::Layout)?;
        if !found.splices.is_empty() {
            for s in &mut found.splices {
                // `</` inside a script element would end it early.
                s.with = s.with.replace("</", "<\\/");
            }
            cuts.push(Splice {
                start,
                end,
                with: String::from_utf8_lossy(&scan::apply(config, &found.splices)).into_owned(),
            });
        }
    }
    for name in functions {
        if let Some(range) = clientside_script(html, name)? {
            cuts.push(Splice {
                start: range.0,
                end: range.1,
                with: String::new(),
            });
        }
    }
    if cuts.is_empty() {
        return Ok(None);
    }
    cuts.sort_by_key(|s| s.start);
    if cuts.windows(2).any(|w| w[0].end > w[1].start) {
        return Err(PruneError("overlapping scripts in an index page"));
    }
    Ok(Some(scan::apply(html, &cuts)))
}

/// The contents of the `_dash-config` script of an index page, if it has one.
fn config_script(html: &[u8]) -> Result<Option<(usize, usize)>, PruneError> {
    const OPEN: &[u8] = b"<script id=\"_dash-config\" type=\"application/json\">";
    let Some(start) = memchr::memmem::find(html, OPEN).map(|i| i + OPEN.len()) else {
        return Ok(None);
    };
    let end = memchr::memmem::find(&html[start..], b"</script>")
        .map(|i| start + i)
        .ok_or(PruneError("the _dash-config script does not end"))?;
    Ok(Some((start, end)))
}

/// An index page's `_dash-config` (the app's settings for dash-renderer), if it has one.
pub fn dash_config(html: &[u8]) -> Result<Option<Json>, PruneError> {
    let Some((start, end)) = config_script(html)? else {
        return Ok(None);
    };
    serde_json::from_slice(&html[start..end])
        .map(Some)
        .map_err(|_| PruneError("the _dash-config script is not JSON"))
}

/// The app's `requests_pathname_prefix`, from an index page's `_dash-config` (where its
/// `_dash-dependencies` are).
pub fn requests_prefix(html: &[u8]) -> Result<Option<String>, PruneError> {
    Ok(dash_config(html)?.and_then(|config| {
        config
            .get("requests_pathname_prefix")
            .and_then(Json::as_str)
            .map(str::to_owned)
    }))
}

/// The whole `<script>…</script>` element in which Dash defines the inline clientside
/// function `name` (`ns["name"] = function …` inside its own element), if the page has it.
fn clientside_script(html: &[u8], name: &str) -> Result<Option<(usize, usize)>, PruneError> {
    let marker = format!("ns[\"{name}\"]");
    let Some(at) = memchr::memmem::find(html, marker.as_bytes()) else {
        return Ok(None);
    };
    let open = memchr::memmem::rfind(&html[..at], b"<script>")
        .ok_or(PruneError("a clientside function outside a script"))?;
    let close = memchr::memmem::find(&html[at..], b"</script>")
        .map(|i| at + i + b"</script>".len())
        .ok_or(PruneError("a clientside script that does not end"))?;
    // Dash's own template, and nothing else ends between the two.
    let inside = &html[open..close];
    let ends = memchr::memmem::find_iter(inside, b"</script>").count();
    if ends != 1 || memchr::memmem::find(inside, INLINE_CLIENTSIDE.as_bytes()).is_none() {
        return Err(PruneError("a clientside script in an unexpected shape"));
    }
    Ok(Some((open, close)))
}

/// Inline clientside functions (declared with source text, so Dash writes them into the index
/// page) of callbacks that write to a component hidden from this user — whose code, and the
/// data it may embed, must not reach them — unless a callback they may keep uses the same
/// function.
pub fn hidden_clientside_functions(deps: &Dependencies, hidden: &Hidden) -> Vec<String> {
    let mut hide = std::collections::BTreeSet::new();
    let mut keep = std::collections::BTreeSet::new();
    for spec in deps.callbacks.values() {
        let Some((namespace, name)) = &spec.clientside else {
            continue;
        };
        if namespace != INLINE_CLIENTSIDE {
            continue;
        }
        if writes_hidden(spec, hidden) {
            hide.insert(name.clone());
        } else {
            keep.insert(name.clone());
        }
    }
    hide.difference(&keep).cloned().collect()
}

fn writes_hidden(spec: &CallbackSpec, hidden: &Hidden) -> bool {
    spec.outputs.iter().any(|id| hidden.hides_id(id))
}

/// Prune a `_dash-dependencies` answer: clientside callbacks that write to a component hidden
/// from this user are left out (the browser would run them), and the `running` values of
/// hidden components are removed from every callback. `None`: nothing to remove.
pub fn dependencies(b: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    let mut list: Json =
        serde_json::from_slice(b).map_err(|_| PruneError("dependencies are not JSON"))?;
    let Json::Array(items) = &mut list else {
        return Err(PruneError("dependencies are not a list"));
    };
    let mut n = 0;
    let mut kept = Vec::with_capacity(items.len());
    for mut item in std::mem::take(items) {
        let (_, spec) = super::dash::callback_spec(&item)
            .map_err(|_| PruneError("a callback that cannot be read"))?;
        if spec.clientside.is_some() && writes_hidden(&spec, hidden) {
            n += 1;
            continue;
        }
        if let Some(Json::Object(running)) = item.get_mut("running") {
            for member in ["running", "runningOff"] {
                if let Some(Json::Object(values)) = running.get_mut(member) {
                    let before = values.len();
                    values.retain(|key, _| {
                        super::dash::prop_key_id(key).is_ok_and(|id| !hidden.hides_id(&id))
                    });
                    n += before - values.len();
                }
            }
        }
        kept.push(item);
    }
    *items = kept;
    Ok((n > 0).then(|| list.to_string().into_bytes()))
}

#[cfg(test)]
mod tests;
