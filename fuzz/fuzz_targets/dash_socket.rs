//! What the app sends on a Dash 4 WebSocket, as a viewer with hidden components gets it
//! (`dash_socket::prune_app_frame`): any text gives a frame or a clean refusal (the socket is
//! closed), never a panic; whatever frame comes out holds no component the viewer may not see
//! and no `set_props` for one.
#![no_main]

use std::sync::{Arc, LazyLock};

use dashgate::dash_socket::prune_app_frame;
use dashgate::policy::Policy;
use dashgate::policy::dash::ComponentId;
use dashgate::policy::prune::Hidden;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const POLICY: &str = include_str!("../../tests/fixtures/components.toml");

#[path = "shared/viewer.rs"]
mod viewer;
use viewer::Viewer;

static HIDDEN: LazyLock<Hidden> = LazyLock::new(|| {
    let policy = Arc::new(Policy::parse(POLICY).unwrap_or_else(|e| panic!("{e}")));
    policy
        .hidden_components(Some(&Viewer))
        .unwrap_or_else(|| panic!("the viewer fails both rules"))
});

fn leaks(v: &Value) -> bool {
    if HIDDEN.hides(v).is_some() {
        return true;
    }
    match v {
        Value::Array(items) => items.iter().any(leaks),
        Value::Object(map) => map.values().any(leaks),
        _ => false,
    }
}

/// A `set_props` message for a component the viewer may not see.
fn sets_hidden(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("set_props")
        && m["payload"]["componentId"]
            .as_str()
            .is_some_and(|id| HIDDEN.hides_id(&ComponentId::Str(id.to_owned())))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(out)) = prune_app_frame(text, &HIDDEN) {
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("a frame that does not parse: {e}"));
        assert!(!leaks(&v), "{v}");
        let messages = match &v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            one => vec![one],
        };
        assert!(!messages.iter().any(|m| sets_hidden(m)), "{v}");
    }
});
