//! What the app sends on a Dash 4 WebSocket, as a viewer with hidden components gets it
//! (`dash_socket::prune_app_frame`): any text gives a frame or a clean refusal (the socket is
//! closed), never a panic; whatever frame comes out holds no component the viewer may not see
//! and no `set_props` for one.
#![no_main]

use dashgate::dash_socket::prune_app_frame;
use dashgate::policy::dash::ComponentId;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "shared/hidden.rs"]
mod hidden;
use hidden::{HIDDEN, leaks};

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
