//! The app's `_dash-config` (the settings dash-renderer reads from the index page), read from
//! the app itself when the gateway needs to know how the app speaks: the CSRF cookie and header
//! names it declares (Dash 4.2's `csrf_token_name`, `csrf_header_name`). Kept per app prefix by
//! [`super::app_cache`].

use serde_json::Value as Json;

use super::app_cache::{AppCache, AppFact};
use crate::policy::prune;

/// What an app's `_dash-config` says that the gateway uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashConfig {
    /// `csrf_token_name`: the cookie the renderer reads the token from.
    pub csrf_cookie: Option<String>,
    /// `csrf_header_name`: the header the renderer sends it in.
    pub csrf_header: Option<String>,
}

/// `_dash-config`s by app prefix.
pub type DashConfigCache = AppCache<DashConfig>;

impl DashConfig {
    /// Read from an index page; a page without `_dash-config` says nothing (Dash's defaults).
    pub fn from_index(html: &[u8]) -> Result<DashConfig, String> {
        let Some(config) = prune::dash_config(html).map_err(|e| e.0.to_owned())? else {
            return Ok(DashConfig::default());
        };
        let text = |key: &str| config.get(key).and_then(Json::as_str).map(str::to_owned);
        Ok(DashConfig {
            csrf_cookie: text("csrf_token_name"),
            csrf_header: text("csrf_header_name"),
        })
    }
}

impl AppFact for DashConfig {
    const WHAT: &'static str = "_dash-config";
    /// Index pages embed every page's layout when callback exceptions are not suppressed.
    const MAX_BYTES: usize = 16 << 20;
    const ACCEPT: &'static str = "text/html";

    fn path(prefix: &str) -> String {
        prefix.to_owned()
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        DashConfig::from_index(bytes)
    }

    fn knows(&self, _key: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_an_index_page() -> Result<(), String> {
        let page = br#"<html><footer><script id="_dash-config" type="application/json">{"url_base_pathname":null,"csrf_token_name":"my_csrf","csrf_header_name":"X-My-Token"}</script></footer></html>"#;
        assert_eq!(
            DashConfig::from_index(page)?,
            DashConfig {
                csrf_cookie: Some("my_csrf".into()),
                csrf_header: Some("X-My-Token".into()),
            }
        );
        // Dash before 4.2 declares nothing.
        let old = br#"<script id="_dash-config" type="application/json">{"ui":false}</script>"#;
        assert_eq!(DashConfig::from_index(old)?, DashConfig::default());
        assert_eq!(
            DashConfig::from_index(b"<p>no app</p>")?,
            DashConfig::default()
        );
        assert!(
            DashConfig::from_index(
                br#"<script id="_dash-config" type="application/json">{</script>"#
            )
            .is_err()
        );
        Ok(())
    }
}
