//! The app's callback list (`GET <prefix>_dash-dependencies`), read from the app itself when a
//! decision needs it: which outputs a callback's `running` option writes (they count as its
//! outputs), whether it is a background callback (its answers carry `progress` values), and
//! which clientside functions write to which components. Dash builds the list once, the same
//! for every user; it is kept per app prefix by [`super::app_cache`]. A list that cannot be
//! had is a 502: the decisions that need it fail closed.

use super::app_cache::{AppCache, AppFact};
use crate::policy::dash::Dependencies;

/// Callback lists by app prefix.
pub type DependencyCache = AppCache<Dependencies>;

impl AppFact for Dependencies {
    const WHAT: &'static str = "_dash-dependencies";
    /// A few hundred callbacks are tens of kilobytes.
    const MAX_BYTES: usize = 8 << 20;
    const ACCEPT: &'static str = "application/json";

    fn path(prefix: &str) -> String {
        format!("{prefix}_dash-dependencies")
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        Dependencies::parse(bytes).map_err(|e| e.to_string())
    }

    fn knows(&self, key: &str) -> bool {
        self.callbacks.contains_key(key)
    }
}
