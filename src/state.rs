//! Assembly of the shared state: [`Gateway`] gathers the services every request may need —
//! the session service, the directory, the sign-in sources, the policy, the proxy and what it
//! reads from the app, metrics — and builds them from the configuration in one place. It holds
//! no request logic:
//! the listener hands each request the pipeline's view of it ([`Gateway::services`]), and the
//! pipeline hands the `/auth` endpoints theirs.

use std::sync::Arc;

use crate::auth::{Desk, Scrape};
use crate::clock;
use crate::config::Config;
use crate::db::Db;
use crate::directory::Directory;
use crate::error::Error;
use crate::pipeline::Services;
use crate::policy::PolicyHandle;
use crate::proxy::Proxy;
use crate::session::cookies::CookieNames;
use crate::session::{Sessions, secs};
use crate::sign_in::SignIn;
use crate::store::{RevocationSet, Store};
use crate::token::assertion::AssertionCache;
use crate::token::keys::{KeyRing, KeyTiming};

/// Everything a request may need, shared by all connections.
pub struct Gateway {
    pub config: Config,
    /// The session service: keys, store, revocations, caches; the only reader of credentials.
    pub sessions: Sessions,
    /// The SQLite database, when users (and the default state store) live there.
    pub db: Option<Db>,
    pub directory: Directory,
    /// The sign-in sources: local passwords, LDAP, OpenID Connect.
    pub sign_in: SignIn,
    pub proxy: Arc<Proxy>,
    /// The app's callback lists (`_dash-dependencies`), read when a decision needs them.
    pub dependencies: Arc<crate::proxy::dependencies::DependencyCache>,
    /// The apps' `_dash-config`s (CSRF names), read when an app's page first loads.
    pub dash_configs: crate::proxy::app_config::DashConfigCache,
    /// Which callbacks the apps' API endpoints and MCP tools run (the helper's Dash plugin).
    pub registries: crate::proxy::callback_registry::RegistryCache,
    /// The app prefixes whose coverage has been reported.
    pub coverage_reported: std::sync::Mutex<std::collections::HashSet<String>>,
    pub policy: Arc<PolicyHandle>,
    pub assertions: AssertionCache,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Bearer token that may read `/auth/metrics`, from `metrics.token_file`.
    pub metrics_token: Option<zeroize::Zeroizing<String>>,
    /// The listener's certificate, when it speaks TLS.
    pub tls: Option<Arc<crate::tls::CertStore>>,
}

impl Gateway {
    /// What the request pipeline (and through it the `/auth` endpoints) works with: every
    /// service and setting a request needs, by reference.
    pub fn services(&self) -> Services<'_> {
        let c = &self.config;
        Services {
            sessions: &self.sessions,
            policy: &self.policy,
            proxy: &self.proxy,
            dependencies: &self.dependencies,
            dash_configs: &self.dash_configs,
            registries: &self.registries,
            coverage_reported: &self.coverage_reported,
            assertions: &self.assertions,
            metrics: &self.metrics,
            desk: Desk {
                sessions: &self.sessions,
                sign_in: &self.sign_in,
                metrics: &self.metrics,
                prefix: &c.auth_prefix,
                body_timeout: c.limits.body_read_timeout,
                login: c.login,
                scrape: Scrape {
                    public: c.metrics.public,
                    token: self.metrics_token.as_ref(),
                    proxy: &self.proxy,
                    policy: &self.policy,
                },
            },
            limits: &c.limits,
            trusted_proxies: &c.trusted_proxies,
            https: self.tls.is_some(),
            affinity: c.balancing.affinity,
        }
    }

    /// Open the database and keys and build the shared state.
    pub async fn new(config: Config) -> Result<Gateway, Error> {
        let (directory, db) = Directory::open(&config).await?;
        let t = &config.token;
        let timing = KeyTiming {
            activation_delay: secs(config.key_activation_delay),
            // The longest a token signed with a superseded key can still be presented.
            retire_after: secs(t.access_ttl.max(t.assertion_ttl)) + secs(t.leeway) + 60,
        };
        let keys = KeyRing::open(&config.keys_dir, timing, clock::now())?;
        let metrics_token = match &config.metrics.token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|e| {
                    Error::Internal(format!("metrics.token_file {}: {e}", p.display()))
                })?;
                let t = zeroize::Zeroizing::new(t.trim().to_owned());
                if t.len() < 16 {
                    return Err(Error::Internal(format!(
                        "metrics.token_file {}: the token must be at least 16 characters",
                        p.display()
                    )));
                }
                Some(t)
            }
            None => None,
        };
        let tls = match &config.tls {
            Some((cert, key)) => Some(Arc::new(
                crate::tls::CertStore::load(cert, key)
                    .map_err(|e| Error::Internal(format!("TLS: {e}")))?,
            )),
            None => None,
        };
        let sign_in = SignIn::new(&config, directory.clone())?;
        let policy = Arc::new(
            PolicyHandle::load(config.policy.as_deref())
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
        let proxy = Arc::new(Proxy::new(
            config.upstreams.clone(),
            config.limits.upstream_timeout,
            config.limits.max_body_bytes,
            config.upstream_host,
        ));
        let cookies = CookieNames::new(config.cookie_secure);
        let refused = cookies.csrf.learn(
            config.dash_csrf.cookie.as_deref(),
            config
                .dash_csrf
                .header
                .as_ref()
                .map(http::HeaderName::as_str),
            |name| cookies.is_session_cookie(name),
        );
        if !refused.is_empty() {
            return Err(Error::Internal(format!(
                "dash.csrf_cookie_name / dash.csrf_header_name: cannot use {}",
                refused.join(", ")
            )));
        }
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let sessions = Sessions {
            token: config.token.clone(),
            settings: config.session.clone(),
            keys,
            cookies,
            store: Store::for_config(&config, db.as_ref())?,
            revocations: Arc::new(RevocationSet::default()),
            directory: directory.clone(),
            metrics: Arc::clone(&metrics),
            session_cache: crate::session::SessionCache::default(),
            verified: crate::token::verified::VerifiedTokens::default(),
        };
        Ok(Gateway {
            sessions,
            directory,
            db,
            sign_in,
            proxy,
            dependencies: Default::default(),
            dash_configs: Default::default(),
            registries: Default::default(),
            coverage_reported: Default::default(),
            policy,
            assertions: AssertionCache::default(),
            metrics,
            metrics_token,
            tls,
            config,
        })
    }
}
