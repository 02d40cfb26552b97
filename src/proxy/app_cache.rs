//! What the gateway reads from the app itself, the same for every user, kept per app prefix:
//! the callback list (`_dash-dependencies`, [`super::dependencies`]), the index page's
//! `_dash-config` ([`super::app_config`]), the callbacks behind API endpoints and MCP tools the
//! Python helper's Dash plugin reports ([`super::callback_registry`]). Each is fetched without
//! anyone's identity.
//!
//! A fact is used for [`FRESH`]; a key it does not know makes the gateway ask again (at most
//! every [`RETRY`], also after a failure), since apps can add callbacks (Dash Pages adds its
//! router at the first request). A fact that cannot be had is an error (502) for the caller
//! to fail closed on, or to fall back from where nothing is at stake. Prefixes come from
//! request paths, so their number is bounded ([`MAX_APPS`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, header};

use super::Proxy;
use crate::error::Error;

/// How long a fetched fact is used without asking again.
const FRESH: Duration = Duration::from_secs(30);
/// Least time between two fetches for one prefix (unknown keys, failures).
const RETRY: Duration = Duration::from_secs(2);
/// Most prefixes remembered; beyond, one not in use is forgotten.
const MAX_APPS: usize = 32;

/// Something the gateway reads from the app under a prefix.
pub trait AppFact: Sized + Send + Sync + 'static {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Largest answer read.
    const MAX_BYTES: usize;
    /// The path to `GET` under `prefix` (`/`, `/app/`).
    fn path(prefix: &str) -> String;
    /// The `Accept` header of the request.
    const ACCEPT: &'static str;
    fn parse(bytes: &[u8]) -> Result<Self, String>;
    /// Does it know `key` (a callback, an endpoint)? Unknown keys make it be read again.
    fn knows(&self, key: &str) -> bool;
    /// What a 404 means, when the app may simply not serve it (a plugin not installed).
    fn when_absent() -> Option<Self> {
        None
    }
}

struct Slot<T> {
    fact: Option<Arc<T>>,
    fetched: Option<Instant>,
    /// When a fetch was last tried, whatever came of it.
    tried: Option<Instant>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            fact: None,
            fetched: None,
            tried: None,
        }
    }
}

type Slots<T> = HashMap<String, Arc<tokio::sync::Mutex<Slot<T>>>>;

/// One kind of fact, by app prefix.
pub struct AppCache<T> {
    slots: Mutex<Slots<T>>,
}

impl<T> Default for AppCache<T> {
    fn default() -> Self {
        AppCache {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: AppFact> AppCache<T> {
    /// The fact for the app under `prefix`, fresh enough to know `key` when one is given.
    pub async fn get(
        &self,
        proxy: &Proxy,
        prefix: &str,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<Arc<T>, Error> {
        let slot = self.slot(prefix);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let fresh = slot.fetched.is_some_and(|t| now.duration_since(t) < FRESH);
        let knows = key.is_none_or(|k| slot.fact.as_ref().is_some_and(|f| f.knows(k)));
        let may_retry = slot.tried.is_none_or(|t| now.duration_since(t) >= RETRY);
        if let Some(fact) = &slot.fact {
            if (fresh && knows) || !may_retry {
                return Ok(Arc::clone(fact));
            }
        } else if !may_retry {
            return Err(Error::BadGateway);
        }
        slot.tried = Some(now);
        match fetch::<T>(proxy, prefix, timeout).await {
            Ok(fact) => {
                let fact = Arc::new(fact);
                slot.fact = Some(Arc::clone(&fact));
                slot.fetched = Some(now);
                Ok(fact)
            }
            Err(e) => {
                tracing::warn!(prefix, what = T::WHAT, error = %e, "could not read from the app");
                // What was good a moment ago still holds for what it knew.
                slot.fact.as_ref().map(Arc::clone).ok_or(Error::BadGateway)
            }
        }
    }

    /// The prefixes asked about so far.
    pub fn prefixes(&self) -> Vec<String> {
        let slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.keys().cloned().collect()
    }

    fn slot(&self, prefix: &str) -> Arc<tokio::sync::Mutex<Slot<T>>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = slots.get(prefix) {
            return Arc::clone(s);
        }
        if slots.len() >= MAX_APPS {
            // Forget one that is not in use; prefixes that never had a fact go first.
            let victim = slots
                .iter()
                .filter_map(|(k, v)| v.try_lock().ok().map(|s| (k, s.fact.is_some())))
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

async fn fetch<T: AppFact>(proxy: &Proxy, prefix: &str, timeout: Duration) -> Result<T, Error> {
    let req = Request::get(T::path(prefix))
        .header(header::ACCEPT, T::ACCEPT)
        .header(header::USER_AGENT, "dashgate")
        .body(crate::http_util::empty())
        .map_err(|_| Error::BadRequest("malformed app prefix"))?;
    let resp = proxy.forward(req, None, None).await?;
    if resp.status() == http::StatusCode::NOT_FOUND {
        if let Some(absent) = T::when_absent() {
            return Ok(absent);
        }
    }
    if resp.status() != http::StatusCode::OK
        || resp.headers().contains_key(header::CONTENT_ENCODING)
    {
        return Err(Error::BadGateway);
    }
    let bytes = super::read_answer(resp.into_body(), T::MAX_BYTES, timeout)
        .await?
        .ok_or(Error::BadGateway)?;
    T::parse(&bytes).map_err(|e| {
        tracing::warn!(prefix, what = T::WHAT, error = %e, "the app's answer cannot be read");
        Error::BadGateway
    })
}
