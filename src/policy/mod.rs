//! Authorization policy: ordered path rules (first match wins), Dash callback-output rules
//! (every matching rule must pass) and Dash component rules (components a user may not see are
//! removed from layouts and callback answers, and their callbacks refused), loaded from a TOML
//! file, validated with errors that name the rule and the field, and reloaded without a
//! restart.

pub mod dash;
pub mod hidden;
pub mod matcher;
pub mod pages;
pub mod path;
pub mod prune;
pub mod scan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http::Method;
use serde_json::Value as Json;
use toml::Value;

use crate::names::{canonical_name, canonical_permission};
use dash::ComponentId;
use matcher::{PathMatcher, Segment};

/// An invalid policy file; the message names the rule and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {file}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub message: String,
}

/// What applies to paths no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAccess {
    /// Any signed-in user.
    Authenticated,
    /// Nobody (403 for signed-in users).
    Deny,
}

/// Who is asking: the roles and permissions carried by the access token.
pub trait Subject: Sync {
    fn has_role(&self, role: &str) -> bool;
    fn has_permission(&self, perm: &str) -> bool;
}

impl Subject for crate::token::AccessClaims {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    fn has_permission(&self, perm: &str) -> bool {
        self.permissions.iter().any(|p| p == perm)
    }
}

/// One rule of the file.
#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position in the file, for messages and logs.
    pub number: usize,
    pub public: bool,
    /// Any of these roles (empty: no role needed).
    pub roles: Vec<String>,
    /// All of these permissions.
    pub permissions: Vec<String>,
    /// Only for these methods (None: all).
    pub methods: Option<Vec<Method>>,
    /// `dash_components` rules: what stands in for a removed component (None: nothing).
    pub placeholder: Option<String>,
}

impl Rule {
    fn allows(&self, who: &dyn Subject) -> bool {
        (self.roles.is_empty() || self.roles.iter().any(|r| who.has_role(r)))
            && self.permissions.iter().all(|p| who.has_permission(p))
    }

    fn applies_to(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| {
            ms.iter()
                .any(|m| m == method || (m == Method::GET && method == Method::HEAD))
        })
    }
}

/// A request as [`Policy::decide`] judges it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The normalised path's segments.
    pub segments: &'a [String],
    /// The path as logged with a refusal.
    pub what: &'a str,
    pub method: &'a Method,
    /// Is it for the app's MCP server (`[mcp] path`)?
    pub mcp: bool,
}

/// What the policy lets through with a request it allows.
pub struct Grant {
    /// The `dash_components` and `dash_outputs` rules the asker fails (None: none).
    pub restricted: Option<hidden::Hidden>,
    /// An output rule restricts the asker, or could (nobody signed in): the app's ways in
    /// besides its callback endpoint (API endpoints, MCP answers) are read for them.
    pub output_bound: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Nobody is signed in and this needs someone.
    NeedLogin,
    /// Signed in, not allowed; names the rule (`rule 3`, `default`).
    Forbidden(String),
}

impl Verdict {
    /// "Go on", or the error that answers the request; refusals are logged with what was
    /// asked (`method`, `what`: a path, a page, a callback) and by whom.
    pub fn enforce(
        self,
        method: &http::Method,
        what: &str,
        user: Option<&str>,
    ) -> Result<(), crate::error::Error> {
        match self {
            Verdict::Allow => Ok(()),
            Verdict::NeedLogin => Err(crate::error::Error::Unauthenticated),
            Verdict::Forbidden(rule) => {
                tracing::info!(event = "forbidden", user = user.unwrap_or("-"), path = %what, method = %method, rule = %rule, "request refused by policy");
                Err(crate::error::Error::Forbidden(
                    "you do not have access to this page",
                ))
            }
        }
    }
}

impl McpAccess {
    fn parse(t: &toml::Table) -> Result<McpAccess, String> {
        let mut m = McpAccess::default();
        for (k, v) in t {
            let list = |what: &str| -> Result<Vec<String>, String> {
                v.as_array()
                    .ok_or(format!("[mcp] {what}: expected a list"))?
                    .iter()
                    .map(|x| {
                        let s = x
                            .as_str()
                            .ok_or(format!("[mcp] {what}: expected strings"))?;
                        let canonical = if what == "roles" {
                            canonical_name(s).map_err(|e| e.to_string())
                        } else {
                            canonical_permission(s).map_err(|e| e.to_string())
                        };
                        canonical.map_err(|e| format!("[mcp] {what}: {s:?}: {e}"))
                    })
                    .collect()
            };
            match k.as_str() {
                "open" => m.open = v.as_bool().ok_or("[mcp] open: expected true or false")?,
                "roles" => m.roles = list("roles")?,
                "permissions" => m.permissions = list("permissions")?,
                "path" => {
                    let p = v.as_str().ok_or("[mcp] path: expected a string")?;
                    let p = p.trim_start_matches('/');
                    if p.is_empty() || p.contains('/') || p == "." || p == ".." {
                        return Err(format!(
                            "[mcp] path: expected the app's mcp_path (one segment, like _mcp), got {p:?}"
                        ));
                    }
                    m.path = p.to_owned();
                }
                other => {
                    return Err(format!(
                        "[mcp] unknown field `{other}` (expected open, roles, permissions, path)"
                    ));
                }
            }
        }
        Ok(m)
    }
}

/// A pattern of a `dash_outputs` rule.
#[derive(Debug, Clone)]
enum OutputPattern {
    /// `*` wildcards, matched against string ids and the canonical JSON of dict ids.
    Glob(String),
    /// A table: matches dict ids whose listed keys have these values (strings may use `*`;
    /// a wildcard in the id, like `["MATCH"]`, matches anything).
    Dict(Vec<(String, Json)>),
}

/// A validated policy.
#[derive(Debug)]
pub struct Policy {
    pub default: DefaultAccess,
    rules: Vec<Rule>,
    paths: PathMatcher,
    exact_outputs: HashMap<String, Vec<usize>>,
    pattern_outputs: Vec<(OutputPattern, usize)>,
    /// `dash_components` rules: string ids, and other patterns.
    exact_components: HashMap<String, Vec<usize>>,
    pattern_components: Vec<(OutputPattern, usize)>,
    /// Indexes of the `dash_outputs` and `dash_components` rules.
    output_rule_list: Vec<usize>,
    restricts_paths: bool,
    /// `[api_endpoints]`: endpoint URL → the key of the callback it runs, for apps without
    /// the helper's Dash plugin.
    api_endpoints: HashMap<String, String>,
    /// `[mcp]`: who may use the app's MCP server, and where it is.
    pub mcp: McpAccess,
}

/// The `[mcp]` table: the app's MCP server (`Dash(enable_mcp=True)`).
#[derive(Debug, Clone)]
pub struct McpAccess {
    /// `open = false` closes it to everyone.
    pub open: bool,
    /// Only users with one of these roles or permissions (none listed: every user the paths
    /// let through).
    roles: Vec<String>,
    permissions: Vec<String>,
    /// The app's `mcp_path` (default `_mcp`), under its routes prefix.
    pub path: String,
}

impl std::default::Default for McpAccess {
    fn default() -> McpAccess {
        McpAccess {
            open: true,
            roles: Vec::new(),
            permissions: Vec::new(),
            path: "_mcp".to_owned(),
        }
    }
}

impl std::default::Default for Policy {
    fn default() -> Policy {
        Policy {
            default: DefaultAccess::Authenticated,
            rules: Vec::new(),
            paths: PathMatcher::default(),
            exact_outputs: HashMap::new(),
            pattern_outputs: Vec::new(),
            exact_components: HashMap::new(),
            pattern_components: Vec::new(),
            output_rule_list: Vec::new(),
            restricts_paths: false,
            api_endpoints: HashMap::new(),
            mcp: McpAccess::default(),
        }
    }
}

impl Policy {
    /// Read and validate a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Policy::parse(&text).map_err(|message| PolicyError {
            file: path.display().to_string(),
            message,
        })
    }

    /// Parse policy text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let mut policy = Policy::default();
        for (k, v) in &table {
            match (k.as_str(), v) {
                ("default", Value::String(s)) if s == "authenticated" => {
                    policy.default = DefaultAccess::Authenticated
                }
                ("default", Value::String(s)) if s == "deny" => {
                    policy.default = DefaultAccess::Deny
                }
                ("default", other) => {
                    return Err(format!(
                        "`default` must be \"authenticated\" or \"deny\", got {other}"
                    ));
                }
                ("rule", Value::Array(rules)) => {
                    for (i, r) in rules.iter().enumerate() {
                        let t = r
                            .as_table()
                            .ok_or(format!("rule {} must be a table", i + 1))?;
                        policy
                            .add_rule(i + 1, t)
                            .map_err(|m| format!("rule {} ({}): {m}", i + 1, label(t)))?;
                    }
                }
                ("rule", _) => {
                    return Err("`rule` must be an array of tables ([[rule]])".to_owned());
                }
                ("api_endpoints", Value::Table(t)) => {
                    for (url, key) in t {
                        let key = key.as_str().ok_or(format!(
                            "[api_endpoints] {url:?}: expected the callback's output key as a string"
                        ))?;
                        if !url.starts_with('/') {
                            return Err(format!(
                                "[api_endpoints] {url:?}: expected a path starting with /"
                            ));
                        }
                        dash::parse_output_key(key).map_err(|e| {
                            format!("[api_endpoints] {url:?}: {key:?} is not a callback key: {e}")
                        })?;
                        policy.api_endpoints.insert(url.clone(), key.to_owned());
                    }
                }
                ("mcp", Value::Table(t)) => policy.mcp = McpAccess::parse(t)?,
                ("api_endpoints" | "mcp", _) => {
                    return Err(format!("`{k}` must be a table ([{k}])"));
                }
                (other, _) => {
                    return Err(format!(
                        "unknown top-level key `{other}` (expected `default`, [[rule]], [api_endpoints] or [mcp])"
                    ));
                }
            }
        }
        policy.restricts_paths =
            policy.default == DefaultAccess::Deny || policy.rules.iter().any(|r| !r.public);
        Ok(policy)
    }

    /// The key of the callback the API endpoint at `url` runs, when the policy names it.
    pub fn api_endpoint(&self, url: &str) -> Option<&str> {
        self.api_endpoints.get(url).map(String::as_str)
    }

    /// The endpoint URLs `[api_endpoints]` names, sorted.
    pub fn api_endpoint_urls(&self) -> Vec<&str> {
        let mut urls: Vec<&str> = self.api_endpoints.keys().map(String::as_str).collect();
        urls.sort_unstable();
        urls
    }

    /// May `who` use the app's MCP server at all?
    pub fn check_mcp(&self, who: Option<&dyn Subject>) -> Verdict {
        let m = &self.mcp;
        if !m.open {
            return Verdict::Forbidden("[mcp] open = false".to_owned());
        }
        if m.roles.is_empty() && m.permissions.is_empty() {
            return Verdict::Allow;
        }
        match who {
            None => Verdict::NeedLogin,
            Some(w)
                if m.roles.iter().any(|r| w.has_role(r))
                    || m.permissions.iter().any(|p| w.has_permission(p)) =>
            {
                Verdict::Allow
            }
            Some(_) => Verdict::Forbidden("[mcp]".to_owned()),
        }
    }

    fn add_rule(&mut self, number: usize, t: &toml::Table) -> Result<(), String> {
        const FIELDS: &[&str] = &[
            "paths",
            "dash_outputs",
            "dash_components",
            "public",
            "roles",
            "permissions",
            "methods",
            "placeholder",
        ];
        if let Some(unknown) = t.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field `{unknown}` (expected one of {})",
                FIELDS.join(", ")
            ));
        }
        let strings = |field: &str| -> Result<Option<Vec<String>>, String> {
            match t.get(field) {
                None => Ok(None),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or(format!("field `{field}`: expected strings, got {v}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(other) => Err(format!("field `{field}`: expected a list, got {other}")),
            }
        };
        let public = match t.get("public") {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "field `public`: expected true or false, got {other}"
                ));
            }
        };
        let roles = strings("roles")?
            .unwrap_or_default()
            .iter()
            .map(|r| canonical_name(r).map_err(|e| format!("field `roles`: {r:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let permissions = strings("permissions")?
            .unwrap_or_default()
            .iter()
            .map(|p| {
                canonical_permission(p).map_err(|e| format!("field `permissions`: {p:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let methods = strings("methods")?
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        let up = m.to_ascii_uppercase();
                        match up.as_str() {
                            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => {
                                Method::from_bytes(up.as_bytes())
                                    .map_err(|_| format!("field `methods`: bad method {m:?}"))
                            }
                            _ => Err(format!("field `methods`: unknown method {m:?}")),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if public && (!roles.is_empty() || !permissions.is_empty()) {
            return Err(
                "field `public`: a public rule cannot also require roles or permissions".to_owned(),
            );
        }
        let paths = strings("paths")?;
        let kinds: Vec<&str> = ["paths", "dash_outputs", "dash_components"]
            .into_iter()
            .filter(|k| t.contains_key(*k))
            .collect();
        match kinds.as_slice() {
            [_] => {}
            [] => return Err("needs `paths`, `dash_outputs` or `dash_components`".to_owned()),
            [a, b, ..] => return Err(format!("has both `{a}` and `{b}`; write two rules")),
        }
        let placeholder = match t.get("placeholder") {
            None => None,
            Some(_) if !t.contains_key("dash_components") => {
                return Err("field `placeholder`: only for `dash_components` rules".to_owned());
            }
            Some(Value::String(p)) => Some(p.clone()),
            Some(other) => {
                return Err(format!(
                    "field `placeholder`: expected a string, got {other}"
                ));
            }
        };
        let idx = self.rules.len();
        if let Some(paths) = paths {
            if paths.is_empty() {
                return Err("field `paths`: must not be empty".to_owned());
            }
            for p in &paths {
                let pattern =
                    parse_path_pattern(p).map_err(|m| format!("field `paths`: {p:?}: {m}"))?;
                self.paths.insert(&pattern, idx);
            }
        } else {
            let field = kinds.first().copied().unwrap_or("dash_outputs");
            if public {
                return Err(format!("field `public`: not allowed on `{field}` rules"));
            }
            if methods.is_some() {
                return Err(format!(
                    "field `methods`: not allowed on `{field}` rules (callbacks are POSTs)"
                ));
            }
            if roles.is_empty() && permissions.is_empty() {
                return Err(format!("field `{field}`: needs `roles` or `permissions`"));
            }
            let Some(Value::Array(items)) = t.get(field) else {
                return Err(format!("field `{field}`: expected a list"));
            };
            if items.is_empty() {
                return Err(format!("field `{field}`: must not be empty"));
            }
            let components = field == "dash_components";
            self.output_rule_list.push(idx);
            for item in items {
                let pattern =
                    parse_output_pattern(item).map_err(|m| format!("field `{field}`: {m}"))?;
                // A component nobody may see here cannot be written by its callbacks either:
                // the component rule is an output rule too.
                if components {
                    match &pattern {
                        OutputPattern::Glob(g) if !g.contains('*') => self
                            .exact_components
                            .entry(g.clone())
                            .or_default()
                            .push(idx),
                        p => self.pattern_components.push((p.clone(), idx)),
                    }
                }
                match pattern {
                    OutputPattern::Glob(g) if !g.contains('*') => {
                        self.exact_outputs.entry(g).or_default().push(idx)
                    }
                    p => self.pattern_outputs.push((p, idx)),
                }
            }
        }
        self.rules.push(Rule {
            number,
            public,
            roles,
            permissions,
            methods,
            placeholder,
        });
        Ok(())
    }

    /// The first path rule for a normalised path and method.
    pub fn path_rule(&self, segments: &[String], method: &Method) -> Option<&Rule> {
        self.first_path_rule(segments, method, false)
    }

    /// The first path rule; with `spanning`, a `*` stands for one or more segments.
    fn first_path_rule(
        &self,
        segments: &[String],
        method: &Method,
        spanning: bool,
    ) -> Option<&Rule> {
        let accept = |i: usize| self.rules.get(i).is_some_and(|r| r.applies_to(method));
        let first = if spanning {
            self.paths.first_spanning(segments, &accept)
        } else {
            self.paths.first(segments, &accept)
        };
        first.and_then(|i| self.rules.get(i))
    }

    /// The one decision over every rule kind that needs no request body: the path rules
    /// (first match wins) for `method` on `segments`, and `[mcp]` when the request is for the
    /// app's MCP server; then what the Dash rules (outputs, components) withhold from the
    /// asker. Refusals are logged and come back as the error that answers the request
    /// ([`Verdict::enforce`]). What a callback body asks for is judged against the same policy
    /// once it is read (`dash_guard`).
    pub fn decide(
        self: &Arc<Self>,
        asked: &Asked<'_>,
        who: Option<&dyn Subject>,
        user: Option<&str>,
    ) -> Result<Grant, crate::error::Error> {
        self.check_path(asked.segments, asked.method, who).enforce(
            asked.method,
            asked.what,
            user,
        )?;
        if asked.mcp {
            self.check_mcp(who)
                .enforce(asked.method, asked.what, user)?;
        }
        let restricted = self.restrictions(who);
        Ok(Grant {
            output_bound: self.has_output_rules() && (who.is_none() || restricted.is_some()),
            restricted,
        })
    }

    /// Is this path public (no sign-in needed at all)?
    pub fn is_public(&self, segments: &[String], method: &Method) -> bool {
        self.path_rule(segments, method).is_some_and(|r| r.public)
    }

    /// May `who` (None: anonymous) request this path?
    pub fn check_path(
        &self,
        segments: &[String],
        method: &Method,
        who: Option<&dyn Subject>,
    ) -> Verdict {
        self.verdict(self.path_rule(segments, method), who)
    }

    /// May `who` open the Dash Pages page a pathname stands for? Every reading of it
    /// ([`pages::readings`]) is judged as a `GET` of that path, with `*` as one segment and as
    /// one or more; the first that is not allowed decides.
    pub fn check_page(&self, readings: &[Vec<String>], who: Option<&dyn Subject>) -> Verdict {
        for reading in readings {
            for spanning in [false, true] {
                let rule = self.first_path_rule(reading, &Method::GET, spanning);
                match self.verdict(rule, who) {
                    Verdict::Allow => {}
                    refused => return refused,
                }
            }
        }
        Verdict::Allow
    }

    fn verdict(&self, rule: Option<&Rule>, who: Option<&dyn Subject>) -> Verdict {
        match (rule, who) {
            (Some(r), _) if r.public => Verdict::Allow,
            (_, None) => Verdict::NeedLogin,
            (Some(r), Some(w)) if r.allows(w) => Verdict::Allow,
            (Some(r), Some(_)) => Verdict::Forbidden(format!("rule {}", r.number)),
            (None, Some(_)) if self.default == DefaultAccess::Authenticated => Verdict::Allow,
            (None, Some(_)) => Verdict::Forbidden("default".to_owned()),
        }
    }

    /// Must callback bodies be read? Only when some rule could refuse a callback.
    pub fn inspects_callbacks(&self) -> bool {
        self.restricts_paths || !self.exact_outputs.is_empty() || !self.pattern_outputs.is_empty()
    }

    /// May `who` write to all of these outputs? Every rule matching any id must allow it.
    pub fn check_outputs(&self, ids: &[ComponentId], who: Option<&dyn Subject>) -> Verdict {
        for id in ids {
            for i in self.output_rules(id) {
                let Some(rule) = self.rules.get(i) else {
                    continue;
                };
                match who {
                    None => return Verdict::NeedLogin,
                    Some(w) if !rule.allows(w) => {
                        return Verdict::Forbidden(format!("rule {}", rule.number));
                    }
                    Some(_) => {}
                }
            }
        }
        Verdict::Allow
    }

    /// The rules (by index) that govern writing to this output: `dash_outputs` rules, and the
    /// output rule every `dash_components` rule implies.
    fn output_rules<'a>(&'a self, id: &'a ComponentId) -> impl Iterator<Item = usize> + 'a {
        let canonical = id.canonical();
        // String ids by themselves, dict ids by the text Dash writes for them.
        let exact = self
            .exact_outputs
            .get(&canonical)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let patterned = self
            .pattern_outputs
            .iter()
            .filter(move |(p, _)| output_matches(p, id, &canonical))
            .map(|(_, i)| *i);
        exact.iter().copied().chain(patterned)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Are there `dash_components` rules at all?
    pub fn has_component_rules(&self) -> bool {
        !self.exact_components.is_empty() || !self.pattern_components.is_empty()
    }

    /// Are there rules on callback outputs (`dash_outputs`, or the ones `dash_components`
    /// rules imply)?
    pub fn has_output_rules(&self) -> bool {
        !self.exact_outputs.is_empty() || !self.pattern_outputs.is_empty()
    }

    /// The components `who` (None: anonymous) may not see, or None when every component rule
    /// allows them (then nothing needs to be read or changed).
    pub fn hidden_components(self: &Arc<Self>, who: Option<&dyn Subject>) -> Option<prune::Hidden> {
        self.restrictions(who)
            .filter(prune::Hidden::hides_components)
    }

    /// What `who` (None: anonymous) may not see or write: the `dash_components` and
    /// `dash_outputs` rules they fail. None when they fail none.
    pub fn restrictions(self: &Arc<Self>, who: Option<&dyn Subject>) -> Option<prune::Hidden> {
        let fails = |r: &Rule| who.is_none_or(|w| !r.allows(w));
        // Most requests come from someone every rule allows: nothing to allocate for them.
        let fails_one = self
            .output_rule_list
            .iter()
            .any(|i| self.rules.get(*i).is_some_and(fails));
        if !fails_one {
            return None;
        }
        let denied: Vec<bool> = self.rules.iter().map(fails).collect();
        let components = self
            .exact_components
            .values()
            .flatten()
            .chain(self.pattern_components.iter().map(|(_, i)| i))
            .any(|i| denied.get(*i).copied().unwrap_or(false));
        // Every rule of `output_rule_list` governs outputs (component rules imply output
        // rules), so failing one is failing an output rule.
        Some(prune::Hidden {
            policy: Arc::clone(self),
            denied,
            components,
        })
    }
}

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

fn parse_path_pattern(p: &str) -> Result<Vec<Segment>, String> {
    if !p.starts_with('/') {
        return Err("must start with /".to_owned());
    }
    let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        out.push(match *s {
            "*" => Segment::One,
            "**" if i + 1 == segs.len() => Segment::Rest,
            "**" => return Err("`**` may only be the last segment".to_owned()),
            "." | ".." => return Err("dot segments are not allowed".to_owned()),
            s if s.contains('*') => return Err("`*` must be a whole segment".to_owned()),
            s if s.contains(['%', ';', '\\', '?', '#']) => {
                return Err("write paths decoded, without %, ;, \\, ? or #".to_owned());
            }
            s => Segment::Literal(s.to_lowercase()),
        });
    }
    Ok(out)
}

fn parse_output_pattern(v: &Value) -> Result<OutputPattern, String> {
    match v {
        Value::String(s) if s.is_empty() => Err("empty pattern".to_owned()),
        // A dict id written as its JSON text names that id exactly, however it is spaced or
        // ordered: kept as the text Dash writes, which is what ids are looked up by.
        Value::String(s) if !s.contains('*') && s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Json>(s) {
                Ok(Json::Object(m)) => Ok(OutputPattern::Glob(dash::dict_id_text(&m))),
                _ => Err(format!(
                    "{s:?} looks like a dict id but is not a JSON object"
                )),
            }
        }
        Value::String(s) => Ok(OutputPattern::Glob(s.clone())),
        Value::Table(t) if !t.is_empty() => {
            let mut pairs = Vec::new();
            for (k, v) in t {
                let j = match v {
                    Value::String(s) => Json::String(s.clone()),
                    Value::Integer(i) => Json::from(*i),
                    Value::Boolean(b) => Json::Bool(*b),
                    other => {
                        return Err(format!(
                            "id key `{k}`: expected a string, integer or boolean, got {other}"
                        ));
                    }
                };
                pairs.push((k.clone(), j));
            }
            Ok(OutputPattern::Dict(pairs))
        }
        other => Err(format!(
            "expected an id pattern (string) or a dict-id table, got {other}"
        )),
    }
}

fn output_matches(p: &OutputPattern, id: &ComponentId, canonical: &str) -> bool {
    match (p, id) {
        (OutputPattern::Glob(g), _) => glob(g, canonical),
        (OutputPattern::Dict(pairs), ComponentId::Dict(m)) => dict_matches(pairs, m),
        (OutputPattern::Dict(_), ComponentId::Str(_)) => false,
    }
}

/// Does a dict id have these keys with these values (strings may use `*`)?
fn dict_matches(pairs: &[(String, Json)], m: &serde_json::Map<String, Json>) -> bool {
    pairs.iter().all(|(k, want)| match (m.get(k), want) {
        (None, _) => false,
        // ["MATCH"], ["ALL"], ["ALLSMALLER"] in a callback key stand for any value.
        (Some(Json::Array(_)), _) => true,
        (Some(Json::String(have)), Json::String(w)) => glob(w, have),
        (Some(Json::Number(have)), Json::Number(w)) => have.as_f64() == w.as_f64(),
        (Some(have), w) => have == w,
    })
}

/// `*` matches any run of characters (including none); everything else is literal. Works on
/// bytes without allocating: `*` is ASCII, and a literal run of a valid UTF-8 pattern can only
/// match at a character boundary of the text.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The live policy, swapped atomically on reload.
pub struct PolicyHandle {
    path: Option<PathBuf>,
    current: RwLock<Arc<Policy>>,
    /// Text of the last file content we tried, to reload only on change.
    last_text: RwLock<Option<String>>,
}

impl PolicyHandle {
    /// Load the file (or the built-in default: every path needs a signed-in user).
    pub fn load(path: Option<&Path>) -> Result<PolicyHandle, PolicyError> {
        let (policy, text) = match path {
            Some(p) => (Policy::load(p)?, std::fs::read_to_string(p).ok()),
            None => (Policy::default(), None),
        };
        Ok(PolicyHandle {
            path: path.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(policy)),
            last_text: RwLock::new(text),
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-read the file if it changed. A new valid policy replaces the old one; an invalid
    /// one is reported and the old one stays. `force` re-reads even when unchanged (SIGHUP).
    pub fn reload(&self, force: bool) -> Result<bool, PolicyError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        let unchanged = self
            .last_text
            .read()
            .is_ok_and(|t| t.as_deref() == Some(text.as_str()));
        if unchanged && !force {
            return Ok(false);
        }
        if let Ok(mut t) = self.last_text.write() {
            *t = Some(text.clone());
        }
        let policy = Policy::parse(&text).map_err(|message| PolicyError {
            file: path.display().to_string(),
            message,
        })?;
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(policy);
        }
        Ok(true)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests;
