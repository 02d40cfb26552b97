//! Dash Pages pathnames against a model of Dash's own resolution (2.18 to 4.x:
//! `strip_relative_path`, then the first page whose `path_template` matches with `fnmatch` or
//! whose `path` is equal): whatever page Dash would render for a pathname, a viewer whose
//! rules deny that page is refused it by the gateway (a 400 for a malformed pathname, or a
//! denying verdict). The rules are the pages' paths with each template variable written `*`.
//! The model itself is checked against real Dash apps in tests/dash (the app's oracle).
//! Input: one byte picks the app's prefix, the rest is the pathname.
#![no_main]

use std::sync::{Arc, LazyLock};

use dashgate::policy::pages::readings;
use dashgate::policy::{Policy, Verdict};
use libfuzzer_sys::fuzz_target;

/// The app's pages, relative to its prefix: templates (with `<var>`) and a literal path.
const PAGES: &[&str] = &[
    "/reports/<rid>",
    "/<team>/view",
    "/r/<a>/<b>/z",
    "/admin",
    "/deep/<x>/<y>",
];
const PREFIXES: &[&str] = &["/", "/app/", "/a/b/"];

#[path = "shared/viewer.rs"]
mod viewer;
use viewer::Viewer;

/// One policy per prefix: every page for admins only.
static POLICIES: LazyLock<Vec<Arc<Policy>>> = LazyLock::new(|| {
    PREFIXES
        .iter()
        .map(|prefix| {
            let mut text = String::new();
            for page in PAGES {
                let rule: Vec<&str> = page
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| if s.starts_with('<') { "*" } else { s })
                    .collect();
                text.push_str(&format!(
                    "[[rule]]\npaths = [\"{}{}\"]\nroles = [\"admin\"]\n",
                    prefix,
                    rule.join("/")
                ));
            }
            Arc::new(Policy::parse(&text).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect()
});

/// `app_strip_relative_path`: a plain `startswith`, then every leading and trailing `/` off.
fn dash_strip(prefix: &str, path: &str) -> Option<String> {
    let base = prefix.trim_end_matches('/');
    if (prefix != "/" && !path.starts_with(base)) || (prefix == "/" && !path.starts_with('/')) {
        return None; // UnsupportedRelativePath: the callback fails
    }
    let rest = if prefix != "/" {
        &path[base.len()..]
    } else {
        path
    };
    Some(rest.trim_matches('/').to_owned())
}

/// `fnmatch` for patterns whose only special character is `*` (any run, `/` included).
fn fnmatch(name: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return name.is_empty(),
    };
    let Some(mut left) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return left.is_empty();
    };
    for part in middle {
        match left.find(part) {
            Some(i) => left = &left[i + part.len()..],
            None => return false,
        }
    }
    left.len() >= last.len() && left.ends_with(last)
}

/// `_path_to_page`: the first page whose template matches or whose path is the same.
fn dash_page(path_id: &str) -> Option<usize> {
    PAGES.iter().position(|page| {
        let id = page.trim_matches('/');
        if page.contains('<') {
            let mut pattern = String::new();
            let mut in_var = false;
            for c in id.chars() {
                match (c, in_var) {
                    ('<', _) => in_var = true,
                    ('>', true) => {
                        in_var = false;
                        pattern.push('*');
                    }
                    (_, true) => {}
                    (c, false) => pattern.push(c),
                }
            }
            fnmatch(path_id, &pattern)
        } else {
            path_id == id
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(pathname) = std::str::from_utf8(rest) else {
        return;
    };
    let which = usize::from(*pick) % PREFIXES.len();
    let prefix = PREFIXES[which];
    let Some(page) = dash_strip(prefix, pathname).and_then(|id| dash_page(&id)) else {
        return;
    };
    // Dash renders page `page`, which the viewer may not open.
    if let Ok(rs) = readings(prefix, pathname) {
        let verdict = POLICIES[which].check_page(&rs, Some(&Viewer));
        assert!(
            matches!(verdict, Verdict::Forbidden(_)),
            "{pathname:?} under {prefix:?} renders {:?} but is {verdict:?}",
            PAGES[page]
        );
    }
});
