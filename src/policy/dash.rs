//! Reading what Dash sends: callback requests (`POST …/_dash-update-component`: which
//! component ids a callback writes to, and which page a Dash Pages navigation asks for), and
//! the app's callback list (`GET …/_dash-dependencies`: the outputs a callback writes besides
//! its declared ones, while it runs, and which callbacks run in the browser).
//!
//! Dash picks the callback to run from the body's `output` key, so that key is the authority;
//! the concrete ids in `outputs` are checked as well. A body that cannot be read is refused —
//! never treated as "no outputs".

use serde_json::{Map, Value};

/// Last path segment of Dash's callback endpoint.
pub const UPDATE_COMPONENT: &str = "_dash-update-component";
/// Id of the `dcc.Location` and of the content div of a Dash Pages `page_container`.
const PAGES_LOCATION: &str = "_pages_location";
const PAGES_CONTENT: &str = "_pages_content";

/// A component id: a string, or a pattern-matching dict (keys sorted, canonical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentId {
    Str(String),
    Dict(Map<String, Value>),
}

impl ComponentId {
    /// Canonical text: the string itself, or the dict as Dash writes it in callback keys.
    pub fn canonical(&self) -> String {
        match self {
            ComponentId::Str(s) => s.clone(),
            ComponentId::Dict(m) => dict_id_text(m),
        }
    }

    fn from_value(v: &Value) -> Result<ComponentId, DashError> {
        match v {
            Value::String(s) => Ok(ComponentId::Str(s.clone())),
            Value::Object(m) => Ok(ComponentId::Dict(m.clone())),
            _ => Err(DashError("component id must be a string or an object")),
        }
    }
}

/// A dict id as Dash writes it (`stringify_id`: Python's `json.dumps(id, sort_keys=True,
/// separators=(",", ":"))`): keys sorted, no spaces, every character beyond ASCII escaped as
/// `\uXXXX`. Keys are sorted here whatever order the map keeps.
pub fn dict_id_text(m: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_python_json(&Value::Object(m.clone()), &mut out);
    out
}

fn write_python_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python_string(k, out);
                out.push(':');
                if let Some(item) = m.get(k) {
                    write_python_json(item, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_python_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_python_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A callback body the gateway could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Dash callback: {0}")]
pub struct DashError(pub &'static str);

/// What a callback request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Callback {
    /// The `output` key: which callback Dash runs (as `_dash-dependencies` lists it).
    pub key: String,
    /// Every output id named by the `output` key and by `outputs`.
    pub outputs: Vec<ComponentId>,
    /// Page paths this request would render (Dash Pages routing callback).
    pub page_paths: Vec<String>,
}

impl Callback {
    /// The callback with key `key` run another way than `_dash-update-component` (an API
    /// endpoint, an MCP tool) with `arguments`: its outputs are the key's; for the Dash Pages
    /// router every string argument counts as a pathname it would render, since those ways
    /// pass arguments by name and the gateway does not know which one is the pathname.
    pub fn from_key(key: &str, arguments: Option<&Value>) -> Result<Callback, DashError> {
        let outputs: Vec<ComponentId> = parse_output_key(key)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let is_pages = outputs
            .iter()
            .any(|id| matches!(id, ComponentId::Str(s) if s == PAGES_CONTENT));
        let mut page_paths = Vec::new();
        if is_pages {
            fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
                match v {
                    Value::String(s) => out.push(s),
                    Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                    Value::Object(o) => o.values().for_each(|x| strings(x, out)),
                    _ => {}
                }
            }
            let mut found = Vec::new();
            if let Some(a) = arguments {
                strings(a, &mut found);
            }
            page_paths = found.into_iter().map(str::to_owned).collect();
            page_paths.sort();
            page_paths.dedup();
        }
        Ok(Callback {
            key: key.to_owned(),
            outputs,
            page_paths,
        })
    }
}

/// Parse a `_dash-update-component` body.
pub fn parse(body: &[u8]) -> Result<Callback, DashError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| DashError("body is not JSON"))?;
    let obj = v.as_object().ok_or(DashError("body is not an object"))?;
    let key = obj
        .get("output")
        .and_then(Value::as_str)
        .ok_or(DashError("missing `output`"))?;
    let mut cb = Callback {
        key: key.to_owned(),
        outputs: parse_output_key(key)?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        page_paths: Vec::new(),
    };
    let outputs = obj.get("outputs").ok_or(DashError("missing `outputs`"))?;
    collect_ids(outputs, &mut cb.outputs, 0)?;
    let inputs = obj
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or(DashError("missing `inputs`"))?;
    let state = match obj.get("state") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(DashError("`state` must be a list")),
    };

    let is_pages = cb
        .outputs
        .iter()
        .any(|id| matches!(id, ComponentId::Str(s) if s == PAGES_CONTENT));
    if is_pages {
        // Dash passes inputs to the function by position and does not check their ids, so the
        // router's first argument is the pathname whatever id the client wrote.
        match inputs.first() {
            Some(Value::Object(item)) => push_path(item.get("value"), &mut cb.page_paths)?,
            _ => return Err(DashError("Dash Pages callback without a pathname input")),
        }
    }
    for item in inputs.iter().chain(state) {
        for_each_item(item, 0, &mut |o| {
            let is_location = o.get("id").and_then(Value::as_str) == Some(PAGES_LOCATION);
            if is_location && o.get("property").and_then(Value::as_str) == Some("pathname") {
                push_path(o.get("value"), &mut cb.page_paths)?;
            }
            Ok(())
        })?;
    }
    cb.page_paths.sort();
    cb.page_paths.dedup();
    Ok(cb)
}

fn push_path(v: Option<&Value>, out: &mut Vec<String>) -> Result<(), DashError> {
    match v {
        // Before the location is known Dash renders the root page.
        None | Some(Value::Null) => out.push("/".to_owned()),
        // A browser's `location.pathname` never holds a raw `?` or `#`; a crafted one could
        // hide the real path from the policy behind them.
        Some(Value::String(s)) if s.contains(['?', '#']) => {
            return Err(DashError("pathname must not hold a query or fragment"));
        }
        Some(Value::String(s)) => out.push(s.clone()),
        Some(_) => return Err(DashError("pathname must be a string")),
    }
    Ok(())
}

/// Called for every callback item (an object with `id`, `property`, `value`).
type ItemVisitor<'a> = dyn FnMut(&Map<String, Value>) -> Result<(), DashError> + 'a;

/// Walk an item or nested lists of items (`ALL` wildcards produce lists).
fn for_each_item(v: &Value, depth: usize, f: &mut ItemVisitor<'_>) -> Result<(), DashError> {
    if depth > 4 {
        return Err(DashError("nested too deeply"));
    }
    match v {
        Value::Object(o) => f(o),
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| for_each_item(i, depth + 1, f)),
        _ => Err(DashError("callback item must be an object or a list")),
    }
}

fn collect_ids(v: &Value, out: &mut Vec<ComponentId>, depth: usize) -> Result<(), DashError> {
    for_each_item(v, depth, &mut |o| {
        let id = o.get("id").ok_or(DashError("output without `id`"))?;
        out.push(ComponentId::from_value(id)?);
        Ok(())
    })
}

/// Namespace of the clientside functions Dash writes into the index page itself (a callback
/// declared with JavaScript source text rather than a `ClientsideFunction` of an asset file).
pub const INLINE_CLIENTSIDE: &str = "_dashprivate_clientside_funcs";

/// One callback as `_dash-dependencies` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallbackSpec {
    /// Its declared outputs (from its key).
    pub outputs: Vec<ComponentId>,
    /// Outputs its `running` option sets while it runs: the values are in this listing, and
    /// the browser writes them.
    pub running: Vec<ComponentId>,
    /// A background callback (`background`, or `long` before Dash 3): its answers may carry
    /// `progress` values for other outputs.
    pub background: bool,
    /// Runs in the browser: `(namespace, function name)`.
    pub clientside: Option<(String, String)>,
}

/// The app's callbacks by key, from `_dash-dependencies`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dependencies {
    pub callbacks: std::collections::HashMap<String, CallbackSpec>,
}

impl Dependencies {
    /// Parse a `_dash-dependencies` answer (a JSON list of callbacks). Entries this gateway
    /// cannot read are an error: what they would say is unknown.
    pub fn parse(body: &[u8]) -> Result<Dependencies, DashError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|_| DashError("dependencies are not JSON"))?;
        let list = v
            .as_array()
            .ok_or(DashError("dependencies are not a list"))?;
        let mut callbacks = std::collections::HashMap::with_capacity(list.len());
        for item in list {
            let (key, spec) = callback_spec(item)?;
            callbacks.insert(key, spec);
        }
        Ok(Dependencies { callbacks })
    }
}

/// One entry of `_dash-dependencies`: its key and what it says.
pub fn callback_spec(item: &Value) -> Result<(String, CallbackSpec), DashError> {
    let o = item
        .as_object()
        .ok_or(DashError("a callback is not an object"))?;
    let key = o
        .get("output")
        .and_then(Value::as_str)
        .ok_or(DashError("a callback without `output`"))?;
    let outputs = parse_output_key(key)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let running = match o.get("running") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(r)) => {
            let mut ids = Vec::new();
            for member in ["running", "runningOff"] {
                if let Some(Value::Object(values)) = r.get(member) {
                    for k in values.keys() {
                        ids.push(prop_key_id(k)?);
                    }
                }
            }
            ids
        }
        Some(_) => return Err(DashError("`running` is not an object")),
    };
    let background = ["background", "long"].iter().any(|k| {
        o.get(*k)
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
    });
    let clientside = match o.get("clientside_function") {
        None | Some(Value::Null) => None,
        Some(Value::Object(f)) => Some((
            f.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            f.get("function_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )),
        Some(_) => return Err(DashError("`clientside_function` is not an object")),
    };
    Ok((
        key.to_owned(),
        CallbackSpec {
            outputs,
            running,
            background,
            clientside,
        },
    ))
}

/// The id in an `"id.prop"` key, as Dash writes outputs in `running`, `progress` and
/// `progressDefault` (`str(Output(...))`; dict ids as their JSON text).
pub fn prop_key_id(key: &str) -> Result<ComponentId, DashError> {
    match parse_output_key(key)?.into_iter().next() {
        Some((id, _)) => Ok(id),
        None => Err(DashError("an output key without a property")),
    }
}

/// Split a callback key into `(id, property)` pairs.
///
/// `"out.children"`; multi-output `"..a.children...b.children.."`; dict ids as compact JSON
/// (`"{\"index\":[\"MATCH\"],\"type\":\"row\"}.children"`); `allow_duplicate` outputs end in
/// `@<hash>`; a key without any `.` belongs to a callback without outputs.
pub fn parse_output_key(key: &str) -> Result<Vec<(ComponentId, String)>, DashError> {
    let parts = match key.strip_prefix("..").and_then(|k| k.strip_suffix("..")) {
        Some(inner) if key.len() >= 4 => split_outside_json(inner, "...")?,
        _ => vec![key],
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(DashError("empty output in key"));
    }
    if parts.len() == 1 && find_last_dot(parts[0])?.is_none() && !parts[0].starts_with('{') {
        return Ok(Vec::new()); // no_output callback: a bare hash
    }
    parts
        .into_iter()
        .map(|part| {
            let dot = find_last_dot(part)?.ok_or(DashError("output without a property"))?;
            let (id, prop) = (&part[..dot], &part[dot + 1..]);
            let prop = prop.split('@').next().unwrap_or(prop);
            if id.is_empty() || prop.is_empty() {
                return Err(DashError("empty output id or property"));
            }
            let id = if id.starts_with('{') || id.starts_with('[') {
                let v: Value = serde_json::from_str(id)
                    .map_err(|_| DashError("output dict id is not JSON"))?;
                ComponentId::from_value(&v)?
            } else {
                ComponentId::Str(id.replace("\\.", "."))
            };
            Ok((id, prop.to_owned()))
        })
        .collect()
}

/// Byte offsets of top-level text, skipping JSON objects and strings inside dict ids.
fn scan(s: &str, mut visit: impl FnMut(usize)) -> Result<(), DashError> {
    let bytes = s.as_bytes();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if depth > 0 => in_str = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(DashError("unbalanced braces in output key"))?
            }
            _ if depth == 0 => visit(i),
            _ => {}
        }
    }
    if depth != 0 || in_str {
        return Err(DashError("unbalanced braces in output key"));
    }
    Ok(())
}

fn split_outside_json<'a>(s: &'a str, sep: &str) -> Result<Vec<&'a str>, DashError> {
    let mut cuts = Vec::new();
    let mut skip_until = 0;
    scan(s, |i| {
        if i >= skip_until
            && s.as_bytes()[i..].starts_with(sep.as_bytes())
            && !(i > 0 && s.as_bytes()[i - 1] == b'\\')
        {
            cuts.push(i);
            skip_until = i + sep.len();
        }
    })?;
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for c in cuts {
        parts.push(&s[start..c]);
        start = c + sep.len();
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// The last top-level `.` that is not escaped as `\.`.
fn find_last_dot(s: &str) -> Result<Option<usize>, DashError> {
    let mut last = None;
    scan(s, |i| {
        if s.as_bytes()[i] == b'.' && !(i > 0 && s.as_bytes()[i - 1] == b'\\') {
            last = Some(i);
        }
    })?;
    Ok(last)
}

#[cfg(test)]
mod tests;
