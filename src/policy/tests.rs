//! Unit tests of the policy: path, output and component rules, the file's errors, reload.

use super::*;
use crate::policy::path::normalize;

/// A user with these roles and permissions (shared with the other policy modules' tests).
pub(super) struct Who(pub &'static [&'static str], pub &'static [&'static str]);

impl Subject for Who {
    fn has_role(&self, role: &str) -> bool {
        self.0.contains(&role)
    }
    fn has_permission(&self, perm: &str) -> bool {
        self.1.contains(&perm)
    }
}

const ADMIN: Who = Who(&["admin"], &["salaries:read", "reports:read"]);
const VIEWER: Who = Who(&["viewer"], &["reports:read"]);

const EXAMPLE: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/assets/**", "/_favicon.ico"]
public = true

[[rule]]
paths = ["/admin", "/admin/**"]
roles = ["admin"]

[[rule]]
paths = ["/reports/*"]
methods = ["GET"]
permissions = ["reports:read"]

[[rule]]
paths = ["/reports/*"]
roles = ["admin"]

[[rule]]
dash_outputs = ["salary-table", "salary-*", { type = "salary-row" }]
permissions = ["salaries:read"]
"#;

fn check(p: &Policy, path: &str, method: Method, who: Option<&dyn Subject>) -> Verdict {
    let n = normalize(path).map(|n| n.segments).unwrap_or_default();
    p.check_path(&n, &method, who)
}

#[test]
fn path_rules() -> Result<(), String> {
    let p = Policy::parse(EXAMPLE)?;
    assert_eq!(
        check(&p, "/assets/x/y.css", Method::GET, None),
        Verdict::Allow
    );
    assert_eq!(check(&p, "/", Method::GET, None), Verdict::NeedLogin);
    assert_eq!(check(&p, "/", Method::GET, Some(&VIEWER)), Verdict::Allow);
    for path in [
        "/admin",
        "/admin/../admin",
        "//admin",
        "/%61dmin",
        "/admin;x",
        "/admin/",
        "/ADMIN",
        "/admin/users",
        "/x/../Admin/y",
    ] {
        assert_eq!(
            check(&p, path, Method::GET, Some(&VIEWER)),
            Verdict::Forbidden("rule 2".into()),
            "{path}"
        );
        assert_eq!(
            check(&p, path, Method::GET, Some(&ADMIN)),
            Verdict::Allow,
            "{path}"
        );
        assert_eq!(
            check(&p, path, Method::GET, None),
            Verdict::NeedLogin,
            "{path}"
        );
    }
    assert_eq!(
        check(&p, "/reports/q1", Method::GET, Some(&VIEWER)),
        Verdict::Allow
    );
    assert_eq!(
        check(&p, "/reports/q1", Method::HEAD, Some(&VIEWER)),
        Verdict::Allow
    );
    assert_eq!(
        check(&p, "/reports/q1", Method::POST, Some(&VIEWER)),
        Verdict::Forbidden("rule 4".into()),
        "method filter falls through"
    );
    assert!(p.inspects_callbacks());
    let deny = Policy::parse("default = \"deny\"\n[[rule]]\npaths = [\"/ok\"]\n")?;
    assert_eq!(
        check(&deny, "/ok", Method::GET, Some(&VIEWER)),
        Verdict::Allow
    );
    assert_eq!(
        check(&deny, "/other", Method::GET, Some(&VIEWER)),
        Verdict::Forbidden("default".into())
    );
    assert!(!Policy::parse("[[rule]]\npaths = [\"/a\"]\npublic = true\n")?.inspects_callbacks());
    Ok(())
}

#[test]
fn output_rules() -> Result<(), String> {
    use serde_json::json;
    let p = Policy::parse(EXAMPLE)?;
    let s = |x: &str| ComponentId::Str(x.to_owned());
    let d = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => ComponentId::Dict(m),
        _ => ComponentId::Str(String::new()),
    };
    assert_eq!(
        p.check_outputs(&[s("out"), s("graph")], Some(&VIEWER)),
        Verdict::Allow
    );
    assert_eq!(
        p.check_outputs(&[s("out"), s("salary-table")], Some(&VIEWER)),
        Verdict::Forbidden("rule 5".into())
    );
    assert_eq!(
        p.check_outputs(&[s("salary-2024")], Some(&VIEWER)),
        Verdict::Forbidden("rule 5".into())
    );
    assert_eq!(
        p.check_outputs(&[s("salary-2024")], None),
        Verdict::NeedLogin
    );
    assert_eq!(
        p.check_outputs(&[s("salary-2024")], Some(&ADMIN)),
        Verdict::Allow
    );
    assert_eq!(
        p.check_outputs(&[s("Salary-2024")], Some(&VIEWER)),
        Verdict::Allow,
        "ids are case-sensitive, as in Dash"
    );
    assert_eq!(
        p.check_outputs(
            &[d(json!({"type": "salary-row", "index": 3}))],
            Some(&VIEWER)
        ),
        Verdict::Forbidden("rule 5".into())
    );
    assert_eq!(
        p.check_outputs(
            &[d(json!({"type": "salary-row", "index": ["MATCH"]}))],
            Some(&VIEWER)
        ),
        Verdict::Forbidden("rule 5".into())
    );
    assert_eq!(
        p.check_outputs(
            &[d(json!({"type": "other-row", "index": 3}))],
            Some(&VIEWER)
        ),
        Verdict::Allow
    );
    Ok(())
}

#[test]
fn dict_ids_written_as_their_json_match_exactly() -> Result<(), String> {
    use serde_json::json;
    // The README: a string pattern is matched against the canonical JSON of dict ids, so a
    // pattern without `*` that is a dict id's JSON names that id, however it is spaced or
    // ordered.
    let p = Policy::parse(
        r#"
[[rule]]
dash_outputs = ['{"index":1,"type":"vault"}', '{ "type": "vault", "index": "two" }']
roles = ["admin"]

[[rule]]
dash_components = ['{"type":"ops-row","index":7}']
roles = ["admin"]
"#,
    )?;
    let p = Arc::new(p);
    let d = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => ComponentId::Dict(m),
        _ => ComponentId::Str(String::new()),
    };
    for id in [
        json!({"type": "vault", "index": 1}),
        json!({"index": "two", "type": "vault"}),
        json!({"index": 7, "type": "ops-row"}),
    ] {
        assert_eq!(
            p.check_outputs(&[d(id.clone())], Some(&VIEWER)),
            Verdict::Forbidden(
                if id["type"] == "vault" {
                    "rule 1"
                } else {
                    "rule 2"
                }
                .into()
            ),
            "{id}"
        );
        assert_eq!(p.check_outputs(&[d(id)], Some(&ADMIN)), Verdict::Allow);
    }
    for other in [
        json!({"type": "vault", "index": 3}),
        json!({"type": "vault", "index": "1"}),
        json!({"type": "vault", "index": 1, "x": 0}),
    ] {
        assert_eq!(p.check_outputs(&[d(other)], Some(&VIEWER)), Verdict::Allow);
    }
    let hidden = p.hidden_components(Some(&VIEWER)).ok_or("hides ops-row")?;
    assert!(
        hidden
            .rule_for(&json!({"index": 7, "type": "ops-row"}))
            .is_some()
    );
    assert!(
        hidden
            .rule_for(&json!({"index": 8, "type": "ops-row"}))
            .is_none()
    );
    assert!(Policy::parse("[[rule]]\ndash_outputs = ['{oops']\nroles = ['a']\n").is_err());
    Ok(())
}

#[test]
fn dict_id_text_is_what_dash_writes() {
    use serde_json::json;
    // Python's json.dumps(id, sort_keys=True, separators=(",", ":")): sorted keys, no spaces,
    // non-ASCII escaped.
    let text = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => dash::dict_id_text(&m),
        _ => String::new(),
    };
    assert_eq!(
        text(json!({"type": "row", "index": 2, "a": true})),
        r#"{"a":true,"index":2,"type":"row"}"#
    );
    assert_eq!(
        text(json!({"name": "café \"q\" 😀\u{7f}"})),
        r#"{"name":"caf\u00e9 \"q\" \ud83d\ude00\u007f"}"#
    );
    assert_eq!(
        text(json!({"index": ["MATCH"], "type": "row"})),
        r#"{"index":["MATCH"],"type":"row"}"#
    );
}

#[test]
fn errors_name_rule_and_field() {
    let err = |text: &str| Policy::parse(text).err().unwrap_or_default();
    let cases = [
        (
            "[[rule]]\npaths = [\"/a\"]\nrole = [\"x\"]\n",
            "rule 1 (paths \"/a\"…): unknown field `role`",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\n[[rule]]\npaths = [\"a\"]\n",
            "rule 2 (paths \"a\"…): field `paths`: \"a\": must start with /",
        ),
        (
            "[[rule]]\npaths = [\"/a/**/b\"]\n",
            "field `paths`: \"/a/**/b\": `**` may only be the last segment",
        ),
        (
            "[[rule]]\npaths = [\"/a*\"]\n",
            "`*` must be a whole segment",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\npublic = true\nroles = [\"x\"]\n",
            "rule 1 (paths \"/a\"…): field `public`",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\nmethods = [\"BREW\"]\n",
            "field `methods`: unknown method \"BREW\"",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\nroles = [\"Bad Role\"]\n",
            "field `roles`",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\npermissions = [\"x y\"]\n",
            "field `permissions`",
        ),
        (
            "[[rule]]\ndash_outputs = [\"x\"]\n",
            "rule 1 (dash_outputs \"x\"…): field `dash_outputs`: needs `roles` or `permissions`",
        ),
        (
            "[[rule]]\ndash_outputs = [\"x\"]\nroles = [\"a\"]\nmethods = [\"GET\"]\n",
            "field `methods`",
        ),
        (
            "[[rule]]\nroles = [\"a\"]\n",
            "rule 1 (no paths): needs `paths`, `dash_outputs` or `dash_components`",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\ndash_outputs = [\"x\"]\nroles = [\"a\"]\n",
            "has both",
        ),
        ("default = \"allow\"\n", "`default` must be"),
        ("defaults = \"deny\"\n", "unknown top-level key `defaults`"),
        (
            "[[rule]]\npaths = \"/a\"\n",
            "field `paths`: expected a list",
        ),
        (
            "[[rule]]\ndash_outputs = [[1]]\nroles = [\"a\"]\n",
            "field `dash_outputs`",
        ),
        ("[[rule\n", "TOML parse error"),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.contains(want), "{text:?}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn globs() {
    for (p, t, want) in [
        ("salary-*", "salary-table", true),
        ("salary-*", "salary-", true),
        ("salary-*", "salar", false),
        ("*-table", "salary-table", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("*", "", true),
        ("x", "x", true),
        ("x", "xx", false),
        ("**", "anything", true),
    ] {
        assert_eq!(glob(p, t), want, "{p} {t}");
    }
}

#[test]
fn reload_keeps_the_old_policy_when_the_new_one_is_invalid()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "[[rule]]\npaths = [\"/admin\"]\nroles = [\"admin\"]\n",
    )?;
    let h = PolicyHandle::load(Some(&file))?;
    assert!(!h.reload(false)?, "unchanged");
    std::fs::write(
        &file,
        "[[rule]]\npaths = [\"/admin\"]\nrole = [\"admin\"]\n",
    )?;
    assert!(h.reload(false).is_err());
    assert_eq!(h.current().rule_count(), 1, "old policy kept");
    assert!(!h.reload(false)?, "the same broken text is not re-reported");
    std::fs::write(&file, "default = \"deny\"\n")?;
    assert!(h.reload(false)?);
    assert_eq!(h.current().default, DefaultAccess::Deny);
    Ok(())
}

#[test]
fn every_table_names_the_key_in_errors() {
    let err = |text: &str| Policy::parse(text).err().unwrap_or_default();
    let cases = [
        (
            "[[rule]]\npaths = [\"/a\"]\npublic = 3\n",
            "rule 1 (paths \"/a\"…): field `public`: expected a boolean, got integer `3`",
        ),
        (
            "[[rule]]\npaths = [\"/a\"]\nroles = [1]\n",
            "rule 1 (paths \"/a\"…): field `roles`: expected a string, got integer `1`",
        ),
        (
            "[[rule]]\ndash_outputs = [[1]]\nroles = [\"a\"]\n",
            "field `dash_outputs`: expected an id pattern (string) or a dict-id table, got [1]",
        ),
        (
            "[[rule]]\ndash_components = [\"x\"]\nroles = [\"a\"]\npaths = [\"/a\"]\n",
            "has both `paths` and `dash_components`",
        ),
        (
            "[[rule]]\ndash_outputs = [\"x\"]\nroles = [\"a\"]\nplaceholder = \"-\"\n",
            "field `placeholder`: only for `dash_components` rules",
        ),
        ("rule = 1\n", "`rule` must be an array of tables ([[rule]])"),
        ("rule = [1]\n", "rule 1 must be a table"),
        ("mcp = 1\n", "`mcp` must be a table ([mcp])"),
        ("[mcp]\ncolour = 1\n", "[mcp] unknown field `colour`"),
        ("[mcp]\nroles = \"a\"\n", "[mcp] roles: expected a list"),
        (
            "[mcp]\nroles = [\"Bad Role\"]\n",
            "[mcp] roles: \"Bad Role\"",
        ),
        (
            "[mcp]\npath = \"a/b\"\n",
            "[mcp] path: expected the app's mcp_path",
        ),
        ("[mcp]\nopen = \"no\"\n", "[mcp] open: expected a boolean"),
        (
            "[api_endpoints]\n\"x\" = \"out.children\"\n",
            "[api_endpoints] \"x\": expected a path starting with /",
        ),
        (
            "[api_endpoints]\n\"/x\" = \"..\"\n",
            "is not a callback key",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.contains(want), "{text:?}\n got: {got}\nwant: {want}");
    }
    let got = err("[api_endpoints]\n\"/x\" = 1\n");
    assert!(
        got.contains("/x") && got.contains("expected the callback's output key as a string"),
        "{got}"
    );
}
