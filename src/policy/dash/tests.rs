//! Unit tests of reading Dash callbacks and callback lists.

use super::*;
use serde_json::json;

fn ids(key: &str) -> Vec<String> {
    parse_output_key(key)
        .map(|v| {
            v.into_iter()
                .map(|(id, p)| format!("{}|{p}", id.canonical()))
                .collect()
        })
        .unwrap_or_else(|e| vec![e.to_string()])
}

#[test]
fn output_keys() {
    assert_eq!(ids("out.children"), vec!["out|children"]);
    assert_eq!(
        ids("..a.children...b.value.."),
        vec!["a|children", "b|value"]
    );
    assert_eq!(ids("out.children@a1b2c3"), vec!["out|children"]);
    assert_eq!(
        ids("..a.children@x...b.data@y.."),
        vec!["a|children", "b|data"]
    );
    assert_eq!(
        ids("my\\.dotted\\.id.children"),
        vec!["my.dotted.id|children"]
    );
    assert_eq!(ids("café.children"), vec!["café|children"]);
    assert_eq!(
        ids(r#"{"index":["MATCH"],"type":"salary-row"}.children"#),
        vec![r#"{"index":["MATCH"],"type":"salary-row"}|children"#]
    );
    // Keys in any order canonicalise to sorted; dots and "..." inside dict values do not split.
    assert_eq!(
        ids(r#"..{"type":"a...b","index":1}.children...{"x":"y.z"}.value.."#),
        vec![
            r#"{"index":1,"type":"a...b"}|children"#,
            r#"{"x":"y.z"}|value"#
        ]
    );
    assert_eq!(
        ids("4f2a9c0e1b"),
        Vec::<String>::new(),
        "no_output callback"
    );
    for bad in [
        "",
        "....",
        ".children",
        "out.",
        "{\"a\":1",
        "{\"a\":1}}.x",
        "{not json}.children",
        "..a.children...b..",
        "[1].x",
    ] {
        assert!(parse_output_key(bad).is_err(), "{bad}: {:?}", ids(bad));
    }
}

#[test]
fn bodies() -> Result<(), DashError> {
    let body = json!({
        "output": "..out.children...salary-table.data..",
        "outputs": [{"id": "out", "property": "children"}, [{"id": {"type": "row", "index": 2}, "property": "data"}]],
        "inputs": [{"id": "in", "property": "value", "value": 1}],
        "changedPropIds": ["in.value"],
    });
    let cb = parse(body.to_string().as_bytes())?;
    let c: Vec<String> = cb.outputs.iter().map(ComponentId::canonical).collect();
    assert_eq!(
        c,
        vec!["out", "salary-table", "out", r#"{"index":2,"type":"row"}"#]
    );
    assert!(cb.page_paths.is_empty());
    for bad in [
        json!([]),
        json!({"outputs": {}, "inputs": []}),
        json!({"output": "a.b", "inputs": []}),
        json!({"output": "a.b", "outputs": {"property": "b"}, "inputs": []}),
        json!({"output": "a.b", "outputs": {"id": 5, "property": "b"}, "inputs": []}),
        json!({"output": "a.b", "outputs": {"id": "a", "property": "b"}}),
        json!({"output": "a.b", "outputs": {"id": "a", "property": "b"}, "inputs": [], "state": {}}),
        json!({"output": "a.b", "outputs": {"id": "a", "property": "b"}, "inputs": [7]}),
    ] {
        assert!(parse(bad.to_string().as_bytes()).is_err(), "{bad}");
    }
    assert!(parse(b"not json").is_err());
    assert!(parse(&[0xff, 0xfe]).is_err());
    Ok(())
}

#[test]
fn pages_pathname_by_position_and_by_id() -> Result<(), DashError> {
    let pages = |inputs: serde_json::Value| {
        let body = json!({
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": inputs,
        });
        parse(body.to_string().as_bytes()).map(|c| c.page_paths)
    };
    let normal = json!([{"id": "_pages_location", "property": "pathname", "value": "/admin"}, {"id": "_pages_location", "property": "search", "value": ""}]);
    assert_eq!(pages(normal)?, vec!["/admin"]);
    // A forged input id does not hide the pathname: Dash passes inputs by position.
    let forged = json!([{"id": "innocent", "property": "value", "value": "/admin"}, {"id": "x", "property": "y", "value": ""}]);
    assert_eq!(pages(forged)?, vec!["/admin"]);
    assert_eq!(
        pages(json!([{"id": "_pages_location", "property": "pathname", "value": null}]))?,
        vec!["/"]
    );
    assert!(pages(json!([{"id": "_pages_location", "property": "pathname", "value": 5}])).is_err());
    assert!(pages(json!([])).is_err());
    Ok(())
}
