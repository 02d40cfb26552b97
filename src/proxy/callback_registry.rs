//! Which callback each of an app's other ways in runs — API endpoints (`@callback(…,
//! api_endpoint=…)`) and MCP tools (`Dash(enable_mcp=True)`) — as the Python helper's Dash
//! plugin reports it at `<routes prefix>_dashgate/callbacks` (clients/python, `dash_hooks`
//! entry point). Read from the app by [`super::app_cache`]; an app without the plugin answers
//! 404, which reads as "nothing reported" (the policy's `api_endpoints` table is the
//! fallback). Clients never reach the plugin's route through the gateway.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::app_cache::{AppCache, AppFact};

/// The plugin's route under the app's routes prefix (its last two path segments).
pub const PLUGIN_ROUTE: [&str; 2] = ["_dashgate", "callbacks"];

/// What the plugin reports; callback keys as `_dash-dependencies` writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackRegistry {
    /// Did the app answer at all (is the plugin installed)?
    pub plugin: bool,
    /// API endpoint URL → the callbacks it runs.
    pub api_endpoints: HashMap<String, Vec<String>>,
    /// MCP tool name → the callbacks it runs.
    pub mcp_tools: HashMap<String, Vec<String>>,
}

/// Registries by app prefix.
pub type RegistryCache = AppCache<CallbackRegistry>;

fn keys(entry: &Json) -> Result<Vec<String>, String> {
    if let Some(k) = entry.get("output").and_then(Json::as_str) {
        return Ok(vec![k.to_owned()]);
    }
    entry
        .get("outputs")
        .and_then(Json::as_array)
        .ok_or("an entry without `output` or `outputs`")?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_owned)
                .ok_or("a callback key that is not a string")
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(str::to_owned)
}

fn table(doc: &Json, name: &str) -> Result<HashMap<String, Vec<String>>, String> {
    let Some(t) = doc.get(name) else {
        return Ok(HashMap::new());
    };
    let t = t.as_object().ok_or(format!("`{name}` is not an object"))?;
    t.iter()
        .map(|(k, v)| keys(v).map(|ks| (k.clone(), ks)))
        .collect()
}

impl CallbackRegistry {
    /// Read the plugin's document. An answer that is not one (an app without the plugin whose
    /// catch-all route serves its index page, say) means no plugin; a document of the plugin
    /// that cannot be read is an error.
    pub fn parse(bytes: &[u8]) -> Result<CallbackRegistry, String> {
        let Ok(doc) = serde_json::from_slice::<Json>(bytes) else {
            return Ok(CallbackRegistry::default());
        };
        match doc.get("version").and_then(Json::as_u64) {
            Some(1) => {}
            Some(v) => return Err(format!("version {v} of the plugin's document is unknown")),
            None => return Ok(CallbackRegistry::default()),
        }
        Ok(CallbackRegistry {
            plugin: true,
            api_endpoints: table(&doc, "api_endpoints")?,
            mcp_tools: table(&doc, "mcp_tools")?,
        })
    }
}

impl AppFact for CallbackRegistry {
    const WHAT: &'static str = "_dashgate/callbacks";
    const MAX_BYTES: usize = 8 << 20;
    const ACCEPT: &'static str = "application/json";

    fn path(prefix: &str) -> String {
        format!("{prefix}{}/{}", PLUGIN_ROUTE[0], PLUGIN_ROUTE[1])
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        CallbackRegistry::parse(bytes)
    }

    /// A key is an endpoint URL or a tool name; either may be new since the last read.
    fn knows(&self, key: &str) -> bool {
        self.api_endpoints.contains_key(key) || self.mcp_tools.contains_key(key)
    }

    fn when_absent() -> Option<Self> {
        Some(CallbackRegistry::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plugins_document() -> Result<(), String> {
        let r = CallbackRegistry::parse(
            br#"{"version": 1,
                 "api_endpoints": {"/api/pay": {"output": "pay.children"},
                                   "/api/two": {"outputs": ["a.children", "b.children"]}},
                 "mcp_tools": {"show_pay": {"output": "..pay.children...x.data.."}}}"#,
        )?;
        assert!(r.plugin);
        assert_eq!(r.api_endpoints["/api/pay"], vec!["pay.children"]);
        assert_eq!(r.api_endpoints["/api/two"].len(), 2);
        assert_eq!(r.mcp_tools["show_pay"], vec!["..pay.children...x.data.."]);
        for bad in [
            &br#"{"version": 2}"#[..],
            br#"{"version": 1, "api_endpoints": {"/x": {}}}"#,
            br#"{"version": 1, "mcp_tools": {"t": {"outputs": [1]}}}"#,
        ] {
            assert!(CallbackRegistry::parse(bad).is_err());
        }
        // Not the plugin: a Pages app's index page, some other JSON.
        for other in [
            &b"<!doctype html><html></html>"[..],
            b"[]",
            br#"{"method": "GET"}"#,
        ] {
            assert_eq!(CallbackRegistry::parse(other)?, CallbackRegistry::default());
        }
        Ok(())
    }
}
