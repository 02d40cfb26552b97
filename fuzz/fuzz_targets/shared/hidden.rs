//! What the role-less viewer may not see under tests/fixtures/components.toml, and whether a
//! parsed value still holds any of it: for the targets that prune answers.

use std::sync::{Arc, LazyLock};

use dashgate::policy::Policy;
use dashgate::policy::prune::Hidden;
use serde_json::Value;

#[path = "viewer.rs"]
mod viewer;
use viewer::Viewer;

const POLICY: &str = include_str!("../../../tests/fixtures/components.toml");

pub static HIDDEN: LazyLock<Hidden> = LazyLock::new(|| {
    let policy = Arc::new(Policy::parse(POLICY).unwrap_or_else(|e| panic!("{e}")));
    policy
        .hidden_components(Some(&Viewer))
        .unwrap_or_else(|| panic!("the viewer fails both rules"))
});

/// Any component below `v` (or `v` itself) that the viewer may not see.
pub fn leaks(v: &Value) -> bool {
    if HIDDEN.hides(v).is_some() {
        return true;
    }
    match v {
        Value::Array(items) => items.iter().any(leaks),
        Value::Object(map) => map.values().any(leaks),
        _ => false,
    }
}
