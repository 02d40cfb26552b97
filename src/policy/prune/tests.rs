//! Unit tests of removing hidden components from layouts and callback answers.

use super::*;
use crate::policy::Policy;
use crate::policy::Verdict;
use crate::policy::dash::ComponentId;
use crate::policy::tests::Who;
use serde_json::json;
use std::sync::Arc;

const POLICY: &str = include_str!("../../../tests/fixtures/components.toml");

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
    let out = index_page(page.as_bytes(), &hidden, &[])
        .map_err(|e| e.to_string())?
        .ok_or("changed")?;
    let out = String::from_utf8(out).map_err(|e| e.to_string())?;
    assert!(!out.contains("top secret") && !out.contains("123456"));
    assert!(out.starts_with("<html><body><footer><script id=\"_dash-config\""));
    assert!(out.ends_with("</script></footer></body></html>"));
    // A page without it, or with nothing hidden in it, is left alone.
    assert_eq!(
        index_page(b"<html>no config</html>", &hidden, &[]),
        Ok(None)
    );
    let bad = b"<script id=\"_dash-config\" type=\"application/json\">{not json</script>";
    assert!(index_page(bad, &hidden, &[]).is_err());
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

/// A callback answer, pruned for `hidden`, parsed back (or as it was when nothing changed).
fn pruned_answer(v: &Json, hidden: &Hidden) -> Result<Json, String> {
    pruned_text(&v.to_string(), hidden)
}

fn pruned_text(text: &str, hidden: &Hidden) -> Result<Json, String> {
    let out = callback(text.as_bytes(), hidden).map_err(|e| e.to_string())?;
    let bytes = out.unwrap_or_else(|| text.as_bytes().to_vec());
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn patch(ops: Json) -> Json {
    json!({"__dash_patch_update": "__dash_patch_update", "operations": ops})
}

fn op(name: &str, location: Json, params: Json) -> Json {
    json!({"operation": name, "location": location, "params": params})
}

#[test]
fn patch_operations_that_could_write_into_a_hidden_child_are_dropped() -> Result<(), String> {
    let p = policy()?;
    let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
    // The output `cards.children` holds [visible card, admin-panel]; the gateway removed the
    // second for the viewer, and cannot tell from a position which child is which.
    let answer = json!({"multi": true, "response": {"cards": {"children": patch(json!([
        op("Assign", json!([1, "props", "children"]), json!({"value": "ASSIGN-SECRET"})),
        op("Merge", json!([1]), json!({"value": {"props": {"children": "MERGE-SECRET"}}})),
        op("Merge", json!([1, "props"]), json!({"value": {"children": "MERGE2-SECRET"}})),
        op("Append", json!([]), json!({"value": c("Div", json!({"id": "admin-panel", "children": "APPEND-SECRET"}))})),
        op("Append", json!([]), json!({"value": c("Div", json!({"id": "fine", "children": "appended"}))})),
        op("Insert", json!([]), json!({"index": 0, "value": "text child"})),
        op("Delete", json!([3]), json!({})),
        op("Assign", json!("not a list"), json!({"value": "BAD-LOCATION-SECRET"})),
    ]))}}});
    let v = pruned_answer(&answer, &hidden)?;
    let text = v.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    let ops = v["response"]["cards"]["children"]["operations"]
        .as_array()
        .ok_or("operations")?;
    let names: Vec<&str> = ops.iter().filter_map(|o| o["operation"].as_str()).collect();
    assert_eq!(names, ["Append", "Append", "Insert", "Delete"], "{text}");
    assert_eq!(
        ops[0]["params"]["value"],
        Json::Null,
        "a hidden component appended"
    );
    assert!(text.contains("appended") && text.contains("text child"));
    // Everywhere in the answer (sideUpdate too), whatever the key's spelling.
    let escaped = r#"{"sideUpdate": {"cards": {"children": {"\u005f_dash_patch_update": "__dash_patch_update", "operations": [{"operation": "Assign", "location": [1, "props", "children"], "params": {"value": "ESCAPED-SECRET"}}]}}}}"#;
    let v = pruned_text(escaped, &hidden)?;
    assert!(!v.to_string().contains("ESCAPED-SECRET"), "{v}");
    // A Patch in a layout means nothing there and is left to the component scan.
    let layout_with_patch = c("Div", json!({"id": "x", "children": patch(json!([]))}));
    assert_eq!(
        layout(layout_with_patch.to_string().as_bytes(), &hidden),
        Ok(None)
    );
    // The admin's answers are not read at all; one who hides nothing keeps every operation.
    assert!(p.hidden_components(Some(&ADMIN)).is_none());
    Ok(())
}

#[test]
fn progress_values_of_hidden_or_forbidden_outputs_are_dropped() -> Result<(), String> {
    let p = Arc::new(Policy::parse(
        r#"
[[rule]]
dash_components = ["ops-*"]
roles = ["admin"]

[[rule]]
dash_outputs = ["salary-*"]
permissions = ["salaries:read"]
"#,
    )?);
    let answer = json!({
        "progress": {"ops-progress.children": "HIDDEN-PROGRESS", "salary-progress.children": "FORBIDDEN-PROGRESS", "bar.value": 40, "nonsense": 1},
        "progressDefault": {"ops-progress.children": "HIDDEN-DEFAULT", "bar.value": 0},
        "sideUpdate": {"ops-status": {"children": "HIDDEN-SIDE"}, "bar": {"max": 100}},
        "response": {"result": {"children": "done"}},
    });
    // A viewer fails both rules.
    let hidden = p.restrictions(Some(&VIEWER)).ok_or("restricted")?;
    let v = pruned_answer(&answer, &hidden)?;
    assert_eq!(v["progress"], json!({"bar.value": 40}));
    assert_eq!(v["progressDefault"], json!({"bar.value": 0}));
    assert_eq!(v["sideUpdate"], json!({"bar": {"max": 100}}));
    assert_eq!(v["response"]["result"]["children"], "done");
    // An admin without the permission sees the components but may not write salaries.
    let hidden = p.restrictions(Some(&ADMIN_NO_BUDGET)).ok_or("restricted")?;
    assert!(!hidden.hides_components());
    let v = pruned_answer(&answer, &hidden)?;
    assert_eq!(
        v["progress"],
        json!({"ops-progress.children": "HIDDEN-PROGRESS", "bar.value": 40})
    );
    assert_eq!(v["sideUpdate"]["ops-status"]["children"], "HIDDEN-SIDE");
    Ok(())
}

const DEPENDENCIES: &str = r#"[
 {"output":"run-out.children","inputs":[{"id":"run-btn","property":"n_clicks"}],"state":[],"clientside_function":null,"prevent_initial_call":true,
  "running":{"running":{"admin-panel.children":"RUNNING-ON-SECRET","ok.disabled":true},"runningOff":{"admin-panel.children":"RUNNING-OFF-SECRET","ok.disabled":false}}},
 {"output":"admin-panel.title","inputs":[{"id":"b","property":"n_clicks"}],"state":[],
  "clientside_function":{"namespace":"_dashprivate_clientside_funcs","function_name":"aaaa"}},
 {"output":"..ok.children...salary-1.children..","inputs":[],"state":[],
  "clientside_function":{"namespace":"_dashprivate_clientside_funcs","function_name":"bbbb"}},
 {"output":"ok.title","inputs":[],"state":[],
  "clientside_function":{"namespace":"_dashprivate_clientside_funcs","function_name":"cccc"}},
 {"output":"other.title","inputs":[],"state":[],
  "clientside_function":{"namespace":"_dashprivate_clientside_funcs","function_name":"aaaa"}},
 {"output":"bg.children","inputs":[],"state":[],"clientside_function":null,"background":{"interval":1000}},
 {"output":"long.children","inputs":[],"state":[],"clientside_function":null,"long":{"interval":1000}}
]"#;

#[test]
fn the_callback_list_is_read_as_dash_writes_it() -> Result<(), String> {
    let deps = Dependencies::parse(DEPENDENCIES.as_bytes()).map_err(|e| e.to_string())?;
    let spec = |k: &str| deps.callbacks.get(k).ok_or(format!("no {k}"));
    let s = |x: &str| ComponentId::Str(x.to_owned());
    assert_eq!(
        spec("run-out.children")?.running,
        [s("admin-panel"), s("ok"), s("admin-panel"), s("ok")]
    );
    assert!(spec("bg.children")?.background && spec("long.children")?.background);
    assert!(!spec("run-out.children")?.background);
    assert_eq!(
        spec("ok.title")?.clientside,
        Some((INLINE_CLIENTSIDE.to_owned(), "cccc".to_owned()))
    );
    for bad in [
        "{}",
        "[1]",
        r#"[{"inputs":[]}]"#,
        r#"[{"output":"a.b","running":1}]"#,
    ] {
        assert!(Dependencies::parse(bad.as_bytes()).is_err(), "{bad}");
    }
    Ok(())
}

#[test]
fn the_callback_list_loses_hidden_running_values_and_clientside_callbacks() -> Result<(), String> {
    let p = policy()?;
    let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
    let out = dependencies(DEPENDENCIES.as_bytes(), &hidden)
        .map_err(|e| e.to_string())?
        .ok_or("changed")?;
    let text = String::from_utf8(out).map_err(|e| e.to_string())?;
    assert!(!text.contains("SECRET"), "{text}");
    let v: Json = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let keys: Vec<&str> = v
        .as_array()
        .ok_or("list")?
        .iter()
        .filter_map(|c| c["output"].as_str())
        .collect();
    // The clientside callbacks writing to admin-panel and salary-1 are gone, the rest stays.
    assert_eq!(
        keys,
        [
            "run-out.children",
            "ok.title",
            "other.title",
            "bg.children",
            "long.children"
        ]
    );
    assert_eq!(v[0]["running"]["running"], json!({"ok.disabled": true}));
    // Functions to take out of the index page: bbbb only wrote hidden outputs; aaaa is also
    // used by a callback the viewer keeps, so its code ships anyway.
    let deps = Dependencies::parse(DEPENDENCIES.as_bytes()).map_err(|e| e.to_string())?;
    assert_eq!(hidden_clientside_functions(&deps, &hidden), ["bbbb"]);
    let admin = p.restrictions(Some(&ADMIN));
    assert!(admin.is_none(), "the admin's list is not even read");
    Ok(())
}

fn inline_script(name: &str, code: &str) -> String {
    format!(
        "<script>\n(function() {{\n    var clientside = window.dash_clientside = window.dash_clientside || {{}};\n    var ns = clientside[\"_dashprivate_clientside_funcs\"] = clientside[\"_dashprivate_clientside_funcs\"] || {{}};\n    ns[\"{name}\"] = {code};\n}})();\n</script>"
    )
}

#[test]
fn inline_clientside_functions_of_hidden_callbacks_leave_the_index_page() -> Result<(), String> {
    let p = policy()?;
    let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hidden")?;
    let page = format!(
        "<html><body><script id=\"_dash-config\" type=\"application/json\">{{\"requests_pathname_prefix\":\"/app/\"}}</script>\n{}\n{}\n<script src=\"x.js\"></script></body></html>",
        inline_script("bbbb", "function(n) { return 'CLIENTSIDE-SECRET ' + n; }"),
        inline_script("cccc", "function(n) { return 'kept'; }"),
    );
    let out = index_page(page.as_bytes(), &hidden, &["bbbb".to_owned()])
        .map_err(|e| e.to_string())?
        .ok_or("changed")?;
    let out = String::from_utf8(out).map_err(|e| e.to_string())?;
    assert!(
        !out.contains("CLIENTSIDE-SECRET") && !out.contains("bbbb"),
        "{out}"
    );
    assert!(out.contains("'kept'") && out.contains("x.js") && out.contains("_dash-config"));
    assert_eq!(out.matches("<script").count(), 3, "{out}");
    assert_eq!(
        requests_prefix(page.as_bytes()).map_err(|e| e.to_string())?,
        Some("/app/".to_owned())
    );
    // Not there: nothing to do. Not in Dash's shape: refused rather than guessed at.
    assert_eq!(
        index_page(page.as_bytes(), &hidden, &["dddd".to_owned()]),
        Ok(None)
    );
    let odd = "<html><script>ns[\"bbbb\"] = 1;</script></html>";
    assert!(index_page(odd.as_bytes(), &hidden, &["bbbb".to_owned()]).is_err());
    Ok(())
}
