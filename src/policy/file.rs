//! The policy file as it is written: one serde type per table and per rule kind, unknown
//! keys refused, read into checked rules ([`RuleSpec`] with its [`RuleKind`]) before the
//! policy indexes them. Errors name the rule (its number and first pattern) and the key.
//!
//! Rule kinds: `paths` (first match wins; they also decide Dash Pages, a page being judged as
//! a `GET` of its pathname), `dash_outputs` (who may write these callback outputs) and
//! `dash_components` (who may see these components, and so write them).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use http::Method;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Value;

use super::matcher::Segment;
use super::{DefaultAccess, OutputPattern, dash, parse_output_pattern, parse_path_pattern};
use crate::names::{canonical_name, canonical_permission};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: DefaultAccess,
    /// Each rule is read alone ([`RuleFile`]), so that its errors can name it.
    #[serde(default)]
    rule: Vec<Value>,
    /// Endpoint URL → the output key of the callback it runs.
    #[serde(default)]
    api_endpoints: BTreeMap<String, String>,
    #[serde(default)]
    mcp: McpFile,
}

/// One `[[rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    paths: Option<List<String>>,
    dash_outputs: Option<List<IdPattern>>,
    dash_components: Option<List<IdPattern>>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    roles: List<String>,
    #[serde(default)]
    permissions: List<String>,
    methods: Option<List<String>>,
    placeholder: Option<String>,
}

/// The `[mcp]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct McpFile {
    open: Option<bool>,
    roles: Option<List<String>>,
    permissions: Option<List<String>>,
    path: Option<String>,
}

/// A component id pattern: a string (with `*`), or a table matching dict ids.
#[derive(Deserialize)]
#[serde(try_from = "Value")]
struct IdPattern(OutputPattern);

impl TryFrom<Value> for IdPattern {
    type Error = String;
    fn try_from(v: Value) -> Result<IdPattern, String> {
        parse_output_pattern(&v).map(IdPattern)
    }
}

/// A TOML array, called "a list" in errors as the documentation calls it.
struct List<T>(Vec<T>);

impl<T> Default for List<T> {
    fn default() -> List<T> {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<List<T>, D::Error> {
        struct Items<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Items<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(List(out))
            }
        }
        d.deserialize_seq(Items(PhantomData))
    }
}

impl<'de> Deserialize<'de> for DefaultAccess {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DefaultAccess, D::Error> {
        let v = Value::deserialize(d)?;
        match v.as_str() {
            Some("authenticated") => Ok(DefaultAccess::Authenticated),
            Some("deny") => Ok(DefaultAccess::Deny),
            _ => Err(de::Error::custom(format!(
                "must be \"authenticated\" or \"deny\", got {v}"
            ))),
        }
    }
}

/// What a rule is about, with what only that kind has.
#[derive(Debug)]
pub(super) enum RuleKind {
    Paths {
        patterns: Vec<Vec<Segment>>,
        public: bool,
        /// Only for these methods (None: all).
        methods: Option<Vec<Method>>,
    },
    DashOutputs(Vec<OutputPattern>),
    DashComponents {
        patterns: Vec<OutputPattern>,
        /// What stands in for a removed component (None: nothing).
        placeholder: Option<String>,
    },
}

/// A checked rule: its kind, and who it lets through.
#[derive(Debug)]
pub(super) struct RuleSpec {
    /// 1-based position in the file.
    pub number: usize,
    pub kind: RuleKind,
    /// Any of these roles (empty: no role needed).
    pub roles: Vec<String>,
    /// All of these permissions.
    pub permissions: Vec<String>,
}

/// The `[mcp]` table, checked.
pub(super) struct McpSpec {
    pub open: bool,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub path: Option<String>,
}

/// A policy file, read and checked.
pub(super) struct PolicySpec {
    pub default: DefaultAccess,
    pub rules: Vec<RuleSpec>,
    pub api_endpoints: Vec<(String, String)>,
    pub mcp: McpSpec,
}

/// Read policy text.
pub(super) fn read(text: &str) -> Result<PolicySpec, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let file: PolicyFile = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| top_level_error(&e))?;
    let rules = file
        .rule
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let number = i + 1;
            let t = v
                .as_table()
                .ok_or(format!("rule {number} must be a table"))?;
            let what = label(t);
            let rule: RuleFile = v.clone().try_into().map_err(|e: toml::de::Error| {
                format!("rule {number} ({what}): {}", field_error(&e))
            })?;
            rule.check(number)
                .map_err(|m| format!("rule {number} ({what}): {m}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let api_endpoints = file
        .api_endpoints
        .into_iter()
        .map(|(url, key)| {
            if !url.starts_with('/') {
                return Err(format!(
                    "[api_endpoints] {url:?}: expected a path starting with /"
                ));
            }
            dash::parse_output_key(&key).map_err(|e| {
                format!("[api_endpoints] {url:?}: {key:?} is not a callback key: {e}")
            })?;
            Ok((url, key))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(PolicySpec {
        default: file.default,
        rules,
        api_endpoints,
        mcp: file.mcp.check()?,
    })
}

/// A serde error's message, and the key path toml gives on a line of its own (`in `a.b``).
fn split(e: &toml::de::Error) -> (Option<String>, String) {
    let text = e.to_string();
    let text = text.trim_end();
    let (message, path) = match text.rsplit_once("\nin `") {
        Some((m, p)) => (m, p.strip_suffix('`').map(str::to_owned)),
        None => (text, None),
    };
    // "invalid type: X, expected Y" reads better the other way round.
    let message = match message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.rsplit_once(", expected "))
    {
        Some((got, want)) => format!("expected {want}, got {got}"),
        None => message.to_owned(),
    };
    (path, message)
}

/// An error inside a rule, naming the field.
fn field_error(e: &toml::de::Error) -> String {
    match split(e) {
        (Some(field), m) => format!("field `{field}`: {m}"),
        (None, m) => m,
    }
}

/// An error at the top of the file, naming the table or key.
fn top_level_error(e: &toml::de::Error) -> String {
    let (path, message) = split(e);
    let Some(path) = path else {
        return match message.strip_prefix("unknown field `") {
            Some(rest) => format!(
                "unknown top-level key `{}` (expected `default`, [[rule]], [api_endpoints] or [mcp])",
                rest.split('`').next().unwrap_or(rest)
            ),
            None => message,
        };
    };
    let (top, inner) = match path.split_once('.') {
        Some((top, inner)) => (top, Some(inner)),
        None => (path.as_str(), None),
    };
    match (top, inner) {
        ("default", _) => format!("`default` {message}"),
        ("rule", _) => "`rule` must be an array of tables ([[rule]])".to_owned(),
        ("api_endpoints", Some(url)) => {
            format!("[api_endpoints] {url}: expected the callback's output key as a string")
        }
        ("mcp", Some(key)) => format!("[mcp] {key}: {message}"),
        ("mcp", None) if message.starts_with("unknown field") => format!("[mcp] {message}"),
        (k @ ("api_endpoints" | "mcp"), None) => format!("`{k}` must be a table ([{k}])"),
        (other, _) => format!("`{other}`: {message}"),
    }
}

/// How a rule is named in errors: its first path or output pattern.
fn label(t: &toml::Table) -> String {
    let first = |k: &str| {
        t.get(k)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .map(ToString::to_string)
    };
    first("paths")
        .map(|p| format!("paths {p}…"))
        .or_else(|| first("dash_outputs").map(|o| format!("dash_outputs {o}…")))
        .unwrap_or_else(|| "no paths".to_owned())
}

/// Canonical role names.
fn roles(field: &str, names: Vec<String>) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|r| canonical_name(r).map_err(|e| format!("{field}: {r:?}: {e}")))
        .collect()
}

/// Canonical permission names.
fn permissions(field: &str, names: Vec<String>) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|p| canonical_permission(p).map_err(|e| format!("{field}: {p:?}: {e}")))
        .collect()
}

/// Methods a path rule may name.
fn method(m: &str) -> Result<Method, String> {
    let up = m.to_ascii_uppercase();
    match up.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
            Method::from_bytes(up.as_bytes()).map_err(|_| format!("bad method {m:?}"))
        }
        _ => Err(format!("unknown method {m:?}")),
    }
}

impl RuleFile {
    /// Settle the rule's kind and check what that kind allows.
    fn check(self, number: usize) -> Result<RuleSpec, String> {
        let roles = roles("field `roles`", self.roles.0)?;
        let permissions = permissions("field `permissions`", self.permissions.0)?;
        let methods = self
            .methods
            .map(|ms| {
                ms.0.iter()
                    .map(|m| method(m))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|m| format!("field `methods`: {m}"))?;
        if self.public && (!roles.is_empty() || !permissions.is_empty()) {
            return Err(
                "field `public`: a public rule cannot also require roles or permissions".to_owned(),
            );
        }
        let kind = match (self.paths, self.dash_outputs, self.dash_components) {
            (Some(paths), None, None) => {
                if self.placeholder.is_some() {
                    return Err("field `placeholder`: only for `dash_components` rules".to_owned());
                }
                if paths.0.is_empty() {
                    return Err("field `paths`: must not be empty".to_owned());
                }
                let patterns = paths
                    .0
                    .iter()
                    .map(|p| {
                        parse_path_pattern(p).map_err(|m| format!("field `paths`: {p:?}: {m}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                RuleKind::Paths {
                    patterns,
                    public: self.public,
                    methods,
                }
            }
            (None, Some(outputs), None) => {
                if self.placeholder.is_some() {
                    return Err("field `placeholder`: only for `dash_components` rules".to_owned());
                }
                let who = !roles.is_empty() || !permissions.is_empty();
                RuleKind::DashOutputs(Self::ids(
                    "dash_outputs",
                    outputs,
                    self.public,
                    &methods,
                    who,
                )?)
            }
            (None, None, Some(components)) => {
                let who = !roles.is_empty() || !permissions.is_empty();
                RuleKind::DashComponents {
                    patterns: Self::ids("dash_components", components, self.public, &methods, who)?,
                    placeholder: self.placeholder,
                }
            }
            (None, None, None) => {
                return Err("needs `paths`, `dash_outputs` or `dash_components`".to_owned());
            }
            (paths, outputs, _) => {
                let (a, b) = match (paths.is_some(), outputs.is_some()) {
                    (true, true) => ("paths", "dash_outputs"),
                    (true, false) => ("paths", "dash_components"),
                    _ => ("dash_outputs", "dash_components"),
                };
                return Err(format!("has both `{a}` and `{b}`; write two rules"));
            }
        };
        Ok(RuleSpec {
            number,
            kind,
            roles,
            permissions,
        })
    }

    /// The id patterns of a Dash rule, which takes no `public` and no `methods` and must name
    /// who it lets through (`who`: roles or permissions).
    fn ids(
        field: &str,
        items: List<IdPattern>,
        public: bool,
        methods: &Option<Vec<Method>>,
        who: bool,
    ) -> Result<Vec<OutputPattern>, String> {
        if public {
            return Err(format!("field `public`: not allowed on `{field}` rules"));
        }
        if methods.is_some() {
            return Err(format!(
                "field `methods`: not allowed on `{field}` rules (callbacks are POSTs)"
            ));
        }
        if !who {
            return Err(format!("field `{field}`: needs `roles` or `permissions`"));
        }
        if items.0.is_empty() {
            return Err(format!("field `{field}`: must not be empty"));
        }
        Ok(items.0.into_iter().map(|p| p.0).collect())
    }
}

impl McpFile {
    fn check(self) -> Result<McpSpec, String> {
        let path = match self.path {
            None => None,
            Some(p) => {
                let p = p.trim_start_matches('/');
                if p.is_empty() || p.contains('/') || p == "." || p == ".." {
                    return Err(format!(
                        "[mcp] path: expected the app's mcp_path (one segment, like _mcp), got {p:?}"
                    ));
                }
                Some(p.to_owned())
            }
        };
        Ok(McpSpec {
            open: self.open.unwrap_or(true),
            roles: roles("[mcp] roles", self.roles.unwrap_or_default().0)?,
            permissions: permissions("[mcp] permissions", self.permissions.unwrap_or_default().0)?,
            path,
        })
    }
}
