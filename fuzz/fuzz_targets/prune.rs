//! Layout pruning (`dash_components`): any bytes give a clean answer or a clean refusal, never
//! a panic; JSON that a parser accepts is never refused; and whatever comes out, read by a
//! parser, holds no component the viewer may not see — and, from a callback answer, no `Patch`
//! operation that could write into a child it may not see.
#![no_main]

use dashgate::policy::prune::{self, Hidden};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "shared/hidden.rs"]
mod hidden;
use hidden::{HIDDEN, leaks};

type Prune = fn(&[u8], &Hidden) -> Result<Option<Vec<u8>>, prune::PruneError>;

/// A `Patch` operation below `v` whose location goes through a component's `props`.
fn patches_into_props(v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            let bad = map.contains_key("__dash_patch_update")
                && map
                    .get("operations")
                    .and_then(Value::as_array)
                    .is_some_and(|ops| {
                        ops.iter().any(|op| {
                            op.get("location")
                                .and_then(Value::as_array)
                                .is_none_or(|l| l.iter().any(|k| k == "props"))
                        })
                    });
            bad || map.values().any(patches_into_props)
        }
        Value::Array(items) => items.iter().any(patches_into_props),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    for (callback, prune) in [(false, prune::layout as Prune), (true, prune::callback)] {
        match prune(data, &HIDDEN) {
            Ok(Some(out)) => {
                if parsed.is_some() {
                    let v: Value = serde_json::from_slice(&out)
                        .unwrap_or_else(|e| panic!("pruned JSON does not parse: {e}"));
                    assert!(!leaks(&v), "{v}");
                    assert!(!(callback && patches_into_props(&v)), "{v}");
                }
            }
            Ok(None) => {
                if let Some(v) = &parsed {
                    assert!(!leaks(v), "passed unchanged: {v}");
                    assert!(
                        !(callback && patches_into_props(v)),
                        "passed unchanged: {v}"
                    );
                }
            }
            Err(e) => assert!(parsed.is_none(), "refused JSON a parser accepts: {e}"),
        }
    }
    let _ = prune::index_page(data, &HIDDEN, &["aaaa".to_owned()]);
    if let Ok(Some(out)) = prune::dependencies(data, &HIDDEN) {
        serde_json::from_slice::<Value>(&out)
            .unwrap_or_else(|e| panic!("pruned dependencies do not parse: {e}"));
    }
});
