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

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::scan::{self, Splice};
use super::{OutputPattern, Policy, Rule, dict_matches, glob};

/// The `dash_components` rules one user fails, from [`Policy::hidden_components`].
pub struct Hidden {
    pub(super) policy: Arc<Policy>,
    /// Per rule index: does this user fail it?
    pub(super) denied: Vec<bool>,
}

impl Hidden {
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
        let p = &*self.policy;
        match id {
            Json::String(s) => self.rule_for_str(s),
            Json::Object(m) => {
                // Exact patterns and globs see the text Dash writes for a dict id (made only
                // when some pattern needs it).
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
            _ => None,
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
fn component_props(m: &Map<String, Json>) -> Option<&Map<String, Json>> {
    match (m.get("type"), m.get("namespace"), m.get("props")) {
        (Some(Json::String(_)), Some(Json::String(_)), Some(Json::Object(props))) => Some(props),
        _ => None,
    }
}

/// What stands in for a component `rule` hides: its placeholder text, or `null`.
pub(super) fn replacement(rule: &Rule) -> Json {
    rule.placeholder.clone().map_or(Json::Null, Json::String)
}

/// Replace hidden components anywhere below `v` (a parsed value); count them in `n`.
fn walk(v: &mut Json, hidden: &Hidden, n: &mut usize) {
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

/// The empty component that stands in for a hidden layout root (the renderer needs one).
const EMPTY_ROOT: &str =
    r#"{"type":"Div","namespace":"dash_html_components","props":{"children":null}}"#;

/// Prune a `_dash-layout` answer. `None`: nothing hidden in it, send it as it is.
pub fn layout(b: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    let mut found = scan::scan(b, hidden)?;
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

/// Prune a `_dash-update-component` answer (`{"response": {id: {prop: value}}, "sideUpdate":
/// {id: {prop: value}}}`): hidden components inside any value are replaced, and updates of
/// hidden components in `sideUpdate` are dropped. `None`: nothing hidden in it.
pub fn callback(b: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    let mut found = scan::scan(b, hidden)?;
    if let Some((start, end)) = found.side_update {
        let mut side: Json = b
            .get(start..end)
            .and_then(|raw| serde_json::from_slice(raw).ok())
            .ok_or(PruneError("bad sideUpdate"))?;
        if side_update(&mut side, hidden) > 0 {
            found.splices.retain(|s| s.end <= start || s.start >= end);
            let at = found.splices.partition_point(|s| s.start < start);
            found.splices.insert(
                at,
                Splice {
                    start,
                    end,
                    with: side.to_string(),
                },
            );
        }
    }
    if found.splices.is_empty() {
        return Ok(None);
    }
    Ok(Some(scan::apply(b, &found.splices)))
}

/// Drop the entries of hidden components from a parsed `sideUpdate` and replace hidden
/// components in the rest; how many went.
fn side_update(side: &mut Json, hidden: &Hidden) -> usize {
    let mut n = 0;
    if let Json::Object(entries) = side {
        entries.retain(|key, _| {
            // Dict ids arrive as their JSON text.
            let id = if key.starts_with('{') {
                serde_json::from_str::<Json>(key).unwrap_or_else(|_| Json::String(key.clone()))
            } else {
                Json::String(key.clone())
            };
            let keep = hidden.rule_for(&id).is_none();
            if !keep {
                n += 1;
            }
            keep
        });
    }
    walk(side, hidden, &mut n);
    n
}

/// Prune the `_dash-config` script of an index page (its `validation_layout`, present when an
/// app does not set `suppress_callback_exceptions`: Dash then embeds every page's layout).
/// Returns the new page when something was removed.
pub fn index_page(html: &[u8], hidden: &Hidden) -> Result<Option<Vec<u8>>, PruneError> {
    const OPEN: &[u8] = b"<script id=\"_dash-config\" type=\"application/json\">";
    let Some(start) = memchr::memmem::find(html, OPEN).map(|i| i + OPEN.len()) else {
        return Ok(None);
    };
    let end = memchr::memmem::find(&html[start..], b"</script>")
        .map(|i| start + i)
        .ok_or(PruneError("the _dash-config script does not end"))?;
    let config = &html[start..end];
    let mut found = scan::scan(config, hidden)?;
    if found.splices.is_empty() {
        return Ok(None);
    }
    for s in &mut found.splices {
        // `</` inside a script element would end it early.
        s.with = s.with.replace("</", "<\\/");
    }
    let mut out = Vec::with_capacity(html.len());
    out.extend_from_slice(&html[..start]);
    out.extend_from_slice(&scan::apply(config, &found.splices));
    out.extend_from_slice(&html[end..]);
    Ok(Some(out))
}

/// An answer the gateway had to filter but could not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot filter the app's answer: {0}")]
pub struct PruneError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Verdict;
    use crate::policy::tests::Who;
    use serde_json::json;

    const POLICY: &str = include_str!("../../tests/fixtures/components.toml");

    const VIEWER: Who = Who(&["viewer"], &[]);
    const ADMIN: Who = Who(&["admin"], &["budget:read"]);
    const ADMIN_NO_BUDGET: Who = Who(&["admin"], &[]);

    fn policy() -> Result<Arc<Policy>, String> {
        Policy::parse(POLICY).map(Arc::new)
    }

    fn c(kind: &str, props: Json) -> Json {
        json!({"type": kind, "namespace": "dash_html_components", "props": props})
    }

    fn pruned(v: &Json, hidden: &Hidden) -> Result<Json, String> {
        match layout(v.to_string().as_bytes(), hidden).map_err(|e| e.to_string())? {
            Some(out) => serde_json::from_slice(&out).map_err(|e| e.to_string()),
            None => Ok(v.clone()),
        }
    }

    fn layout_tree() -> Json {
        c(
            "Div",
            json!({"id": "root", "children": [
                c("H1", json!({"children": "Dashboard"})),
                c("Div", json!({"id": "admin-panel", "children": [
                    c("P", json!({"children": "top secret admin data"}))
                ]})),
                c("Section", json!({"children": c("Table", json!({"id": "salary-table", "data": [{"name": "ann", "salary": 123456}]}))})),
                c("Ul", json!({"children": [
                    c("Li", json!({"id": {"type": "secret-row", "index": 1}, "children": "row one secret"})),
                    c("Li", json!({"id": {"type": "public-row", "index": 2}, "children": "row two"})),
                ]})),
                c("Div", json!({"id": "budget", "children": "budget 9999"})),
                // A component as a prop other than children.
                c("Card", json!({"id": "card", "header": c("Span", json!({"id": "salary-header", "children": "salary band"}))})),
                "plain text child",
                null,
                42,
            ]}),
        )
    }

    #[test]
    fn a_viewer_loses_every_hidden_component_and_nothing_else() -> Result<(), String> {
        let p = policy()?;
        let hidden = p
            .hidden_components(Some(&VIEWER))
            .ok_or("viewer hides something")?;
        let v = pruned(&layout_tree(), &hidden)?;
        let text = v.to_string();
        for gone in [
            "admin-panel",
            "top secret",
            "salary",
            "123456",
            "secret-row",
            "row one",
            "9999",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        for kept in [
            "Dashboard",
            "public-row",
            "row two",
            "plain text child",
            "\"card\"",
            "Restricted",
        ] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
        let children = v["props"]["children"].as_array().ok_or("children")?;
        // Hidden components become null (rendered as nothing) or their placeholder, in place.
        assert_eq!(children.len(), 9);
        assert_eq!(children[1], Json::Null, "admin-panel");
        assert_eq!(children[2]["props"]["children"], Json::Null, "salary-table");
        assert_eq!(
            children[3]["props"]["children"][0],
            Json::Null,
            "secret row"
        );
        assert_eq!(
            children[3]["props"]["children"][1]["props"]["children"],
            "row two"
        );
        assert_eq!(children[4], "Restricted");
        assert_eq!(children[5]["props"]["header"], Json::Null);
        Ok(())
    }

    #[test]
    fn who_passes_every_rule_gets_no_filter_and_rules_apply_one_by_one() -> Result<(), String> {
        let p = policy()?;
        assert!(p.hidden_components(Some(&ADMIN)).is_none());
        let hidden = p
            .hidden_components(Some(&ADMIN_NO_BUDGET))
            .ok_or("budget is hidden")?;
        let text = pruned(&layout_tree(), &hidden)?.to_string();
        assert!(text.contains("top secret") && text.contains("123456") && !text.contains("9999"));
        // Nothing hidden in an answer: it is left exactly as it was.
        let plain = c("Div", json!({"id": "root", "children": "nothing to hide"})).to_string();
        assert_eq!(layout(plain.as_bytes(), &hidden), Ok(None));
        // Nobody signed in: every component rule hides.
        assert!(p.hidden_components(None).is_some());
        // No component rules at all: nothing to do for anyone.
        let none = Arc::new(Policy::parse(
            "[[rule]]\npaths = [\"/a\"]\nroles = [\"admin\"]\n",
        )?);
        assert!(none.hidden_components(Some(&VIEWER)).is_none());
        Ok(())
    }

    #[test]
    fn a_hidden_component_cannot_be_written_by_callbacks() -> Result<(), String> {
        use crate::policy::dash::ComponentId;
        let p = policy()?;
        let out = |id: &str| vec![ComponentId::Str(id.to_owned())];
        assert!(matches!(
            p.check_outputs(&out("admin-panel"), Some(&VIEWER)),
            Verdict::Forbidden(_)
        ));
        assert!(matches!(
            p.check_outputs(&out("salary-x"), Some(&VIEWER)),
            Verdict::Forbidden(_)
        ));
        assert_eq!(
            p.check_outputs(&out("admin-panel"), Some(&ADMIN)),
            Verdict::Allow
        );
        assert_eq!(
            p.check_outputs(&out("other"), Some(&VIEWER)),
            Verdict::Allow
        );
        Ok(())
    }

    #[test]
    fn callback_answers_lose_hidden_trees_and_side_updates() -> Result<(), String> {
        let p = policy()?;
        let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
        // Dash Pages: the page arrives as _pages_content.children.
        let v = json!({
            "multi": true,
            "response": {
                "_pages_content": {"children": layout_tree()},
                "_pages_store": {"data": {"title": "Home"}},
            },
            "sideUpdate": {
                "admin-panel": {"children": "pushed secret"},
                "{\"index\":3,\"type\":\"secret-row\"}": {"children": "pushed row"},
                "status": {"children": c("Div", json!({"id": "salary-inside", "children": "9999"}))},
                "ok": {"children": "ok"},
            },
        });
        let out = callback(v.to_string().as_bytes(), &hidden)
            .map_err(|e| e.to_string())?
            .ok_or("changed")?;
        let v: Json = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        let text = v.to_string();
        assert!(
            !text.contains("secret") && !text.contains("salary") && !text.contains("9999"),
            "{text}"
        );
        assert_eq!(v["sideUpdate"]["ok"]["children"], "ok");
        assert_eq!(v["sideUpdate"]["status"]["children"], Json::Null);
        assert_eq!(v["response"]["_pages_store"]["data"]["title"], "Home");
        assert!(text.contains("Restricted") && text.contains("row two"));
        Ok(())
    }

    #[test]
    fn a_hidden_root_becomes_an_empty_div() -> Result<(), String> {
        let p = policy()?;
        let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
        let v = pruned(
            &c("Div", json!({"id": "admin-panel", "children": "secret"})),
            &hidden,
        )?;
        assert_eq!(v["props"], json!({"children": null}));
        Ok(())
    }

    #[test]
    fn the_validation_layout_of_an_index_page_is_pruned() -> Result<(), String> {
        let p = policy()?;
        let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
        let config = json!({"url_base_pathname": null, "validation_layout": layout_tree()});
        let page = format!(
            "<html><body><footer><script id=\"_dash-config\" type=\"application/json\">{config}</script></footer></body></html>"
        );
        let out = index_page(page.as_bytes(), &hidden)
            .map_err(|e| e.to_string())?
            .ok_or("changed")?;
        let out = String::from_utf8(out).map_err(|e| e.to_string())?;
        assert!(!out.contains("top secret") && !out.contains("123456"));
        assert!(out.starts_with("<html><body><footer><script id=\"_dash-config\""));
        assert!(out.ends_with("</script></footer></body></html>"));
        // A page without it, or with nothing hidden in it, is left alone.
        assert_eq!(index_page(b"<html>no config</html>", &hidden), Ok(None));
        let bad = b"<script id=\"_dash-config\" type=\"application/json\">{not json</script>";
        assert!(index_page(bad, &hidden).is_err());
        Ok(())
    }

    #[test]
    fn the_scanner_agrees_with_a_parser_and_refuses_broken_json() -> Result<(), String> {
        let p = policy()?;
        let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
        // Escapes in keys and ids, odd spacing, numbers, nesting: the same result as walking
        // a parsed tree.
        let tricky = r#" { "type" : "Div", "namespace":"dash_html_components", "props": {"children": [
            {"namespace":"x","props":{"\u0069d":"admin\u002dpanel","children":"secret A"},"type":"Div"},
            {"type":"Div","namespace":"x","props":{"id":{"index":7,"type":"secret-row"},"n":-1.5e3,"children":[true,false,null,"\"quoted\""]}},
            {"type":"Div","namespace":"x","props":{"id":"fine","children":"kept \\ text"}}
        ]}} "#;
        let out = layout(tricky.as_bytes(), &hidden)
            .map_err(|e| e.to_string())?
            .ok_or("changed")?;
        let got: Json = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        let mut want: Json = serde_json::from_str(tricky).map_err(|e| e.to_string())?;
        let mut n = 0;
        walk(&mut want, &hidden, &mut n);
        assert_eq!((got, n), (want, 2));
        for broken in [
            "{",
            "[1,2",
            "{\"a\":}",
            "{\"a\" 1}",
            "\"open",
            "nul",
            "{} {}",
            "[1,]x",
            "{\"type\":\"Div\",}",
        ] {
            assert!(layout(broken.as_bytes(), &hidden).is_err(), "{broken}");
        }
        // A repeated `props` member: a parser keeps the last one, but the bytes of the first
        // would still be sent, so a hidden id in either hides the component.
        for twice in [
            r#"{"type":"Div","namespace":"x","props":{"id":"salary-1","children":"secret"},"props":{"id":"ok"}}"#,
            r#"{"type":"Div","namespace":"x","props":{"id":"ok","children":"x"},"props":{"id":"salary-1","children":"secret"}}"#,
        ] {
            let out = layout(twice.as_bytes(), &hidden).map_err(|e| e.to_string())?;
            let out = String::from_utf8(out.ok_or("hidden")?).map_err(|e| e.to_string())?;
            assert!(!out.contains("secret"), "{out}");
        }
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        assert!(layout(deep.as_bytes(), &hidden).is_err());
        Ok(())
    }

    #[test]
    fn component_rules_are_validated() {
        for (text, says) in [
            (
                "[[rule]]\ndash_components = [\"x\"]\n",
                "needs `roles` or `permissions`",
            ),
            (
                "[[rule]]\ndash_components = [\"x\"]\ndash_outputs = [\"y\"]\nroles = [\"a\"]\n",
                "write two rules",
            ),
            (
                "[[rule]]\npaths = [\"/a\"]\nroles = [\"a\"]\nplaceholder = \"x\"\n",
                "only for `dash_components`",
            ),
            (
                "[[rule]]\ndash_components = []\nroles = [\"a\"]\n",
                "must not be empty",
            ),
            (
                "[[rule]]\ndash_components = [\"x\"]\nroles = [\"a\"]\nplaceholder = 1\n",
                "expected a string",
            ),
        ] {
            match Policy::parse(text) {
                Err(m) => assert!(m.contains(says), "{text}: {m}"),
                Ok(_) => assert!(text.is_empty(), "{text} was accepted"),
            }
        }
    }
}
