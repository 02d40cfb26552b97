//! Who may not see what: [`Hidden`], the `dash_components` and `dash_outputs` rules one user
//! fails, asked by id or by component object. The byte scanner ([`super::scan`]) and the
//! pruning of answers ([`super::prune`]) both read it; it reads only the policy's rules.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::dash::ComponentId;
use super::{OutputPattern, Policy, Rule, dict_matches, glob};

/// What one user may not see or write: the `dash_components` and `dash_outputs` rules they
/// fail, from [`Policy::restrictions`] (or [`Policy::hidden_components`] when only the
/// components matter).
pub struct Hidden {
    pub(super) policy: Arc<Policy>,
    /// Per rule index: does this user fail it?
    pub(super) denied: Vec<bool>,
    /// Do they fail a `dash_components` rule (so components are removed from what they get)?
    pub(super) components: bool,
}

impl Hidden {
    /// Does this user fail a `dash_components` rule?
    pub fn hides_components(&self) -> bool {
        self.components
    }

    /// The first failed rule that forbids this user to write to an output (a `dash_outputs`
    /// rule, or the output rule of a `dash_components` rule).
    pub fn denies_output(&self, id: &ComponentId) -> Option<&Rule> {
        self.policy.output_rules(id).find_map(|i| self.denies(i))
    }

    fn denies(&self, i: usize) -> Option<&Rule> {
        if self.denied.get(i).copied().unwrap_or(false) {
            self.policy.rules.get(i)
        } else {
            None
        }
    }

    /// The first failed rule that covers a component with this string id.
    pub fn rule_for_str(&self, s: &str) -> Option<&Rule> {
        let p = &*self.policy;
        if p.exact_components.is_empty() {
            // (Not even a hash to compute.)
        } else if let Some(rule) = p
            .exact_components
            .get(s)
            .into_iter()
            .flatten()
            .find_map(|i| self.denies(*i))
        {
            return Some(rule);
        }
        p.pattern_components.iter().find_map(|(pat, i)| match pat {
            OutputPattern::Glob(g) if glob(g, s) => self.denies(*i),
            _ => None,
        })
    }

    /// The first failed rule that covers a component with this id.
    pub fn rule_for(&self, id: &Json) -> Option<&Rule> {
        match id {
            Json::String(s) => self.rule_for_str(s),
            Json::Object(m) => self.rule_for_dict(m),
            _ => None,
        }
    }

    /// The first failed rule that covers a component with this dict id.
    fn rule_for_dict(&self, m: &Map<String, Json>) -> Option<&Rule> {
        let p = &*self.policy;
        // Exact patterns and globs see the text Dash writes for a dict id (made only when some
        // pattern needs it).
        let canonical = std::cell::OnceCell::new();
        let text = || canonical.get_or_init(|| super::dash::dict_id_text(m));
        if !p.exact_components.is_empty() {
            if let Some(rule) = p
                .exact_components
                .get(text().as_str())
                .into_iter()
                .flatten()
                .find_map(|i| self.denies(*i))
            {
                return Some(rule);
            }
        }
        p.pattern_components.iter().find_map(|(pat, i)| {
            let hit = match pat {
                OutputPattern::Glob(g) => glob(g, text()),
                OutputPattern::Dict(pairs) => dict_matches(pairs, m),
            };
            if hit { self.denies(*i) } else { None }
        })
    }

    /// Is the component with this id hidden from this user?
    pub fn hides_id(&self, id: &ComponentId) -> bool {
        match id {
            ComponentId::Str(s) => self.rule_for_str(s).is_some(),
            ComponentId::Dict(m) => self.rule_for_dict(m).is_some(),
        }
    }

    /// If `v` is a component this user may not see, the rule that hides it.
    pub fn hides(&self, v: &Json) -> Option<&Rule> {
        let Json::Object(m) = v else { return None };
        let props = component_props(m)?;
        self.rule_for(props.get("id")?)
    }
}

/// The props of a component object, if it is one.
pub(super) fn component_props(m: &Map<String, Json>) -> Option<&Map<String, Json>> {
    match (m.get("type"), m.get("namespace"), m.get("props")) {
        (Some(Json::String(_)), Some(Json::String(_)), Some(Json::Object(props))) => Some(props),
        _ => None,
    }
}

/// What stands in for a component `rule` hides: its placeholder text, or `null`.
pub(super) fn replacement(rule: &Rule) -> Json {
    rule.placeholder.clone().map_or(Json::Null, Json::String)
}

/// Why an answer that must be pruned cannot be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot filter the app's answer: {0}")]
pub struct PruneError(pub &'static str);
