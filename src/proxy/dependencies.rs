//! The app's callback list (`GET <prefix>_dash-dependencies`), read from the app itself when a
//! decision needs it: which outputs a callback's `running` option writes (they count as its
//! outputs), whether it is a background callback (its answers carry `progress` values), and
//! which clientside functions write to which components. Dash builds the list once, the same
//! for every user, so it is fetched without anyone's identity and kept per app prefix.
//!
//! A list is used for [`FRESH`]; a callback it does not know makes the gateway ask again (at
//! most every [`RETRY`], also after a failure), since apps can add callbacks (Dash Pages adds
//! its router at the first request). A list that cannot be had is an error (502): the
//! decisions that need it fail closed. Prefixes come from request paths, so their number is
//! bounded ([`MAX_APPS`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, header};

use super::Proxy;
use crate::error::Error;
use crate::policy::dash::Dependencies;

/// How long a fetched list is used without asking again.
const FRESH: Duration = Duration::from_secs(30);
/// Least time between two fetches for one prefix (unknown callbacks, failures).
const RETRY: Duration = Duration::from_secs(2);
/// Most prefixes remembered; beyond, the least recently fetched is forgotten.
const MAX_APPS: usize = 32;
/// Largest list read (a few hundred callbacks are tens of kilobytes).
const MAX_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Slot {
    deps: Option<Arc<Dependencies>>,
    fetched: Option<Instant>,
    /// When a fetch was last tried, whatever came of it.
    tried: Option<Instant>,
}

/// Callback lists by app prefix.
#[derive(Default)]
pub struct DependencyCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl DependencyCache {
    /// The callback list of the app under `prefix` (`/`, `/app/`), fresh enough to know the
    /// callback `key` when one is given.
    pub async fn get(
        &self,
        proxy: &Proxy,
        prefix: &str,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<Arc<Dependencies>, Error> {
        let slot = self.slot(prefix);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let fresh = slot.fetched.is_some_and(|t| now.duration_since(t) < FRESH);
        let knows = key.is_none_or(|k| {
            slot.deps
                .as_ref()
                .is_some_and(|d| d.callbacks.contains_key(k))
        });
        let may_retry = slot.tried.is_none_or(|t| now.duration_since(t) >= RETRY);
        if let Some(deps) = &slot.deps {
            if (fresh && knows) || !may_retry {
                return Ok(Arc::clone(deps));
            }
        } else if !may_retry {
            return Err(Error::BadGateway);
        }
        slot.tried = Some(now);
        match fetch(proxy, prefix, timeout).await {
            Ok(deps) => {
                let deps = Arc::new(deps);
                slot.deps = Some(Arc::clone(&deps));
                slot.fetched = Some(now);
                Ok(deps)
            }
            Err(e) => {
                tracing::warn!(prefix, error = %e, "could not read the app's _dash-dependencies");
                // A list that was good a moment ago still says what those callbacks do.
                slot.deps.as_ref().map(Arc::clone).ok_or(Error::BadGateway)
            }
        }
    }

    fn slot(&self, prefix: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = slots.get(prefix) {
            return Arc::clone(s);
        }
        if slots.len() >= MAX_APPS {
            // Forget one that is not in use; prefixes that never had a list go first.
            let victim = slots
                .iter()
                .filter_map(|(k, v)| v.try_lock().ok().map(|s| (k, s.deps.is_some())))
                .min_by_key(|(_, has)| *has)
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                slots.remove(&k);
            }
        }
        let s = Arc::new(tokio::sync::Mutex::new(Slot::default()));
        slots.insert(prefix.to_owned(), Arc::clone(&s));
        s
    }
}

async fn fetch(proxy: &Proxy, prefix: &str, timeout: Duration) -> Result<Dependencies, Error> {
    let req = Request::get(format!("{prefix}_dash-dependencies"))
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "dashgate")
        .body(crate::http_util::empty())
        .map_err(|_| Error::BadRequest("malformed app prefix"))?;
    let resp = proxy.forward(req, None, None).await?;
    if resp.status() != http::StatusCode::OK
        || resp.headers().contains_key(header::CONTENT_ENCODING)
    {
        return Err(Error::BadGateway);
    }
    let bytes = super::read_answer(resp.into_body(), MAX_BYTES, timeout)
        .await?
        .ok_or(Error::BadGateway)?;
    Dependencies::parse(&bytes).map_err(|e| {
        tracing::warn!(prefix, error = %e, "the app's _dash-dependencies cannot be read");
        Error::BadGateway
    })
}
