//! Path-rule lookup in a segment trie: the cost of a lookup depends on the depth of the path
//! and the wildcards along it, not on how many rules the policy has. Two readings of `*`:
//! one segment (HTTP paths), or one or more segments ([`PathMatcher::first_spanning`], for
//! Dash Pages pathnames, which Dash matches against `path_template`s with `fnmatch`, whose
//! `*` crosses `/`).

use std::collections::HashMap;

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches this segment exactly (patterns are lower-cased like paths).
    Literal(String),
    /// `*`: any one segment.
    One,
    /// `**`: any rest, including nothing; only last.
    Rest,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    one: Option<Box<Node>>,
    /// Rules whose pattern ends here (sorted: rules are inserted in order).
    here: Vec<usize>,
    /// Rules whose pattern ends here with `**`.
    rest: Vec<usize>,
}

/// Maps normalised paths to the ordered rules whose patterns match them.
#[derive(Debug, Default)]
pub struct PathMatcher {
    root: Node,
}

impl PathMatcher {
    /// Add a pattern for rule `rule`. Rules must be inserted in increasing order.
    pub fn insert(&mut self, pattern: &[Segment], rule: usize) {
        let mut node = &mut self.root;
        for seg in pattern {
            match seg {
                Segment::Literal(s) => node = node.literal.entry(s.clone()).or_default(),
                Segment::One => node = node.one.get_or_insert_with(Box::default),
                Segment::Rest => {
                    push_sorted(&mut node.rest, rule);
                    return;
                }
            }
        }
        push_sorted(&mut node.here, rule);
    }

    /// The first (lowest-numbered) rule matching `segments` that `accept` agrees to (the
    /// method filter).
    pub fn first(&self, segments: &[String], accept: &dyn Fn(usize) -> bool) -> Option<usize> {
        let mut best = None;
        walk(&self.root, segments, accept, &mut best);
        best
    }
}

impl PathMatcher {
    /// Like [`PathMatcher::first`], with every `*` standing for one or more segments. Each
    /// (trie node, position) pair is visited once, so the cost is bounded by the trie's nodes
    /// along the path times the path's length, however many `*` a pattern has.
    pub fn first_spanning(
        &self,
        segments: &[String],
        accept: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut best = None;
        let mut seen = std::collections::HashSet::new();
        walk_spanning(&self.root, segments, 0, accept, &mut best, &mut seen);
        best
    }
}

fn walk_spanning(
    node: &Node,
    segments: &[String],
    at: usize,
    accept: &dyn Fn(usize) -> bool,
    best: &mut Option<usize>,
    seen: &mut std::collections::HashSet<(usize, usize)>,
) {
    if !seen.insert((std::ptr::from_ref(node) as usize, at)) {
        return;
    }
    consider(&node.rest, accept, best);
    let Some(first) = segments.get(at) else {
        consider(&node.here, accept, best);
        return;
    };
    if let Some(child) = node.literal.get(first) {
        walk_spanning(child, segments, at + 1, accept, best, seen);
    }
    if let Some(child) = &node.one {
        for next in at + 1..=segments.len() {
            walk_spanning(child, segments, next, accept, best, seen);
        }
    }
}

fn push_sorted(v: &mut Vec<usize>, rule: usize) {
    if v.last() != Some(&rule) {
        v.push(rule);
    }
}

fn consider(list: &[usize], accept: &dyn Fn(usize) -> bool, best: &mut Option<usize>) {
    for &r in list {
        if best.is_some_and(|b| b <= r) {
            return;
        }
        if accept(r) {
            *best = Some(r);
            return;
        }
    }
}

fn walk(
    node: &Node,
    segments: &[String],
    accept: &dyn Fn(usize) -> bool,
    best: &mut Option<usize>,
) {
    consider(&node.rest, accept, best);
    let Some((first, rest)) = segments.split_first() else {
        consider(&node.here, accept, best);
        return;
    };
    if let Some(child) = node.literal.get(first) {
        walk(child, rest, accept, best);
    }
    if let Some(child) = &node.one {
        walk(child, rest, accept, best);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Vec<Segment> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "*" => Segment::One,
                "**" => Segment::Rest,
                s => Segment::Literal(s.to_owned()),
            })
            .collect()
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn first_match_wins_across_branches() {
        let mut m = PathMatcher::default();
        for (i, p) in ["/assets/*", "/admin", "/admin/**", "/*/reports", "/**"]
            .iter()
            .enumerate()
        {
            m.insert(&pat(p), i);
        }
        let any = |_: usize| true;
        assert_eq!(m.first(&segs("/assets/app.css"), &any), Some(0));
        assert_eq!(m.first(&segs("/assets/css/app.css"), &any), Some(4));
        assert_eq!(m.first(&segs("/admin"), &any), Some(1));
        assert_eq!(m.first(&segs("/admin/users"), &any), Some(2));
        assert_eq!(
            m.first(&segs("/admin/reports"), &any),
            Some(2),
            "earlier rule wins"
        );
        assert_eq!(m.first(&segs("/x/reports"), &any), Some(3));
        assert_eq!(m.first(&segs("/"), &any), Some(4));
        assert_eq!(
            m.first(&segs("/admin"), &|r| r != 1),
            Some(2),
            "`**` matches the bare prefix too"
        );
    }

    #[test]
    fn spanning_stars_cross_segments() {
        let mut m = PathMatcher::default();
        for (i, p) in ["/reports/*", "/*/view", "/a/*/*/z", "/exact"]
            .iter()
            .enumerate()
        {
            m.insert(&pat(p), i);
        }
        let any = |_: usize| true;
        for (path, one, spanning) in [
            ("/reports/q1", Some(0), Some(0)),
            ("/reports/q1/x", None, Some(0)),
            ("/reports", None, None),
            ("/x/y/view", None, Some(1)),
            ("/a/b/c/z", Some(2), Some(2)),
            ("/a/b/c/d/e/z", None, Some(2)),
            ("/a/b/z", None, None),
            ("/exact", Some(3), Some(3)),
            ("/exact/more", None, None),
        ] {
            assert_eq!(m.first(&segs(path), &any), one, "{path}");
            assert_eq!(m.first_spanning(&segs(path), &any), spanning, "{path}");
        }
        // Many stars and a long path stay cheap: each node is entered once per position.
        let mut m = PathMatcher::default();
        m.insert(&pat("/*/*/*/*/*/*/*/*/none"), 0);
        let long: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
        let visited = std::cell::Cell::new(0);
        let counting = |_: usize| {
            visited.set(visited.get() + 1);
            true
        };
        assert_eq!(m.first_spanning(&long, &counting), None);
        assert_eq!(visited.get(), 0);
    }

    #[test]
    fn lookup_cost_does_not_depend_on_rule_count() {
        // 10 000 rules: a lookup still only walks its own path.
        let mut m = PathMatcher::default();
        for i in 0..10_000 {
            m.insert(&pat(&format!("/team{i}/reports/*")), i);
        }
        m.insert(&pat("/admin"), 10_000);
        let visited = std::cell::Cell::new(0);
        let counting = |_: usize| {
            visited.set(visited.get() + 1);
            true
        };
        assert_eq!(m.first(&segs("/admin"), &counting), Some(10_000));
        assert_eq!(
            m.first(&segs("/team9999/reports/q3"), &counting),
            Some(9_999)
        );
        assert_eq!(
            visited.get(),
            2,
            "only the candidates on the path were considered"
        );
    }
}
