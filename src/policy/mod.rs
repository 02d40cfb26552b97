//! Authorization policy: ordered path rules (first match wins), Dash callback-output rules
//! (every matching rule must pass) and Dash component rules (components a user may not see are
//! removed from layouts and callback answers, and their callbacks refused), loaded from a TOML
//! file (read and checked in [`file`], with errors that name the rule and the field), indexed
//! here, and reloaded without a restart. [`Policy::decide`] is the one decision over the rules
//! that need no request body.

pub mod dash;
mod file;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultAccess {
    /// Any signed-in user.
    #[default]
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

    /// Parse policy text ([`file`] reads and checks it) and index its rules.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let spec = file::read(text)?;
        let mut policy = Policy {
            default: spec.default,
            api_endpoints: spec.api_endpoints.into_iter().collect(),
            ..Policy::default()
        };
        let m = spec.mcp;
        policy.mcp.open = m.open;
        policy.mcp.roles = m.roles;
        policy.mcp.permissions = m.permissions;
        if let Some(path) = m.path {
            policy.mcp.path = path;
        }
        for rule in spec.rules {
            policy.add_rule(rule);
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

    /// Index a checked rule: path patterns into the trie, id patterns into the output (and
    /// component) tables.
    fn add_rule(&mut self, spec: file::RuleSpec) {
        let idx = self.rules.len();
        let (public, methods, placeholder) = match spec.kind {
            file::RuleKind::Paths {
                patterns,
                public,
                methods,
            } => {
                for pattern in &patterns {
                    self.paths.insert(pattern, idx);
                }
                (public, methods, None)
            }
            file::RuleKind::DashOutputs(patterns) => {
                self.add_output_patterns(patterns, idx, false);
                (false, None, None)
            }
            file::RuleKind::DashComponents {
                patterns,
                placeholder,
            } => {
                self.add_output_patterns(patterns, idx, true);
                (false, None, placeholder)
            }
        };
        self.rules.push(Rule {
            number: spec.number,
            public,
            roles: spec.roles,
            permissions: spec.permissions,
            methods,
            placeholder,
        });
    }

    /// The id patterns of rule `idx`, an output rule; with `components`, a component rule too.
    fn add_output_patterns(&mut self, patterns: Vec<OutputPattern>, idx: usize, components: bool) {
        self.output_rule_list.push(idx);
        for pattern in patterns {
            // A component nobody may see here cannot be written by its callbacks either: the
            // component rule is an output rule too.
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
