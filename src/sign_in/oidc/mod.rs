//! Sign-in with an OpenID Connect provider: the authorization-code flow with PKCE (S256),
//! `state` and `nonce`; discovery; ID-token validation against the provider's JWKS (fetched
//! again when a token names a key it does not know, so rotation needs no restart); claims
//! mapped to a username and roles. After the callback the gateway issues its own session
//! exactly as for a password sign-in.

pub mod flow;
pub mod id_token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::config::OidcConfig;
use crate::error::Error;
use crate::names::canonical_name;

/// The `source` recorded for users who sign in through the OpenID provider.
pub const SOURCE: &str = crate::config::SourceKind::Oidc.name();

/// Largest discovery document, JWKS, token or userinfo answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Discovery is fetched again after this long (endpoints rarely move; keys are handled apart).
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The endpoints of the provider, from its discovery document.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    fetched: Instant,
}

/// Who the provider says signed in, mapped to dashgate's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub username: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

/// Why a callback did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The provider could not be reached or answered nonsense (503).
    #[error(transparent)]
    Unavailable(#[from] Error),
    /// The answer was refused: bad ID token, missing claims, unusable username. The text is
    /// for the log; the user reads a generic message.
    #[error("{0}")]
    Refused(String),
}

fn outage(what: &str, e: impl std::fmt::Display) -> Error {
    Error::DirectoryUnavailable {
        service: SOURCE,
        detail: format!("{what}: {e}"),
    }
}

/// The configured provider. Cheap to share (`Arc`).
pub struct Provider {
    config: OidcConfig,
    http: reqwest::Client,
    metadata: RwLock<Option<Arc<Metadata>>>,
    keys: RwLock<Arc<Vec<id_token::Jwk>>>,
}

impl Provider {
    pub fn new(config: OidcConfig) -> Result<Provider, Error> {
        let tls = crate::tls::client_config(config.ca_file.as_deref())
            .map_err(|e| Error::Internal(format!("oidc.ca_file: {e}")))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            // A redirect from the provider's back channel is never followed: the endpoints
            // are the ones discovery named.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("dashgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("OpenID HTTP client: {e}")))?;
        let provider = Provider {
            config,
            http,
            metadata: RwLock::new(None),
            keys: RwLock::new(Arc::new(Vec::new())),
        };
        // A missing secret is a deployment mistake: say so at start, not at the first sign-in.
        provider.client_secret().map_err(|e| match e {
            Error::DirectoryUnavailable { detail, .. } => Error::Internal(detail),
            other => other,
        })?;
        Ok(provider)
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, Error> {
        let mut req = self.http.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| outage(url, e))?;
        read_json(resp, url).await
    }

    /// The discovery document, cached for an hour. Its `issuer` must be the configured one,
    /// exactly (OpenID Connect Discovery 4.3).
    pub async fn metadata(&self) -> Result<Arc<Metadata>, Error> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            if m.fetched.elapsed() < METADATA_TTL {
                return Ok(Arc::clone(m));
            }
        }
        let mut slot = self.metadata.write().await;
        if let Some(m) = slot.as_ref().filter(|m| m.fetched.elapsed() < METADATA_TTL) {
            return Ok(Arc::clone(m));
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url, None).await?;
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        if field("issuer").as_deref() != Some(self.config.issuer.as_str()) {
            return Err(outage(
                "discovery",
                format!(
                    "the document's issuer {:?} is not oidc.issuer {:?}",
                    field("issuer"),
                    self.config.issuer
                ),
            ));
        }
        let endpoint = |name: &str| -> Result<String, Error> {
            let url = field(name).ok_or_else(|| outage("discovery", format!("no {name}")))?;
            check_endpoint(&url).map_err(|m| outage("discovery", format!("{name}: {m}")))?;
            Ok(url)
        };
        let optional = |name: &str| field(name).filter(|u| check_endpoint(u).is_ok());
        if let Some(methods) = doc
            .get("code_challenge_methods_supported")
            .and_then(Value::as_array)
        {
            if !methods.iter().any(|m| m == "S256") {
                return Err(outage(
                    "discovery",
                    "the provider does not support PKCE S256",
                ));
            }
        }
        let m = Arc::new(Metadata {
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            jwks_uri: endpoint("jwks_uri")?,
            userinfo_endpoint: optional("userinfo_endpoint"),
            end_session_endpoint: optional("end_session_endpoint"),
            fetched: Instant::now(),
        });
        *slot = Some(Arc::clone(&m));
        Ok(m)
    }

    async fn fetch_keys(&self, meta: &Metadata) -> Result<Arc<Vec<id_token::Jwk>>, Error> {
        let doc = self.get_json(&meta.jwks_uri, None).await?;
        let keys = Arc::new(id_token::parse_jwks(&doc));
        if keys.is_empty() {
            return Err(outage("jwks", "no usable signing key"));
        }
        *self.keys.write().await = Arc::clone(&keys);
        Ok(keys)
    }

    /// The URL of the provider's authorization endpoint for this sign-in.
    pub async fn authorization_url(&self, start: &flow::Start) -> Result<String, Error> {
        let meta = self.metadata().await?;
        let c = &self.config;
        let scope = c.scopes.join(" ");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", &c.redirect_url)
            .append_pair("scope", &scope)
            .append_pair("state", &start.state)
            .append_pair("nonce", &start.nonce)
            .append_pair("code_challenge", &start.challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let sep = if meta.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{query}", meta.authorization_endpoint))
    }

    /// Exchange the code (with the PKCE verifier), validate the ID token and map its claims.
    pub async fn finish(
        &self,
        code: &str,
        pending: &flow::Pending,
        now: i64,
        leeway: i64,
    ) -> Result<Identity, SignInError> {
        let meta = self.metadata().await?;
        let c = &self.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_url.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let secret = self.client_secret()?;
        let mut req = self.http.post(&meta.token_endpoint);
        match &secret {
            // client_secret_basic: both parts form-urlencoded first (RFC 6749 2.3.1).
            Some(secret) => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                req = req.basic_auth(enc(&c.client_id), Some(enc(secret)));
            }
            None => form.push(("client_id", c.client_id.as_str())),
        }
        let resp = req
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| outage("token endpoint", e))?;
        let status = resp.status();
        let body = read_json(resp, "token endpoint").await;
        let body = match body {
            Ok(b) if status.is_success() => b,
            // invalid_grant and friends: a stale or replayed code, or a client
            // misconfiguration; the provider's error code goes to the log.
            Ok(b) if status.is_client_error() => {
                return Err(SignInError::Refused(format!(
                    "token endpoint refused the code: {} {}",
                    b.get("error").and_then(Value::as_str).unwrap_or("?"),
                    b.get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                )));
            }
            Ok(_) => return Err(outage("token endpoint", status).into()),
            Err(e) => return Err(e.into()),
        };
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| SignInError::Refused("token answer has no id_token".to_owned()))?;
        let expect = id_token::Expect {
            issuer: &c.issuer,
            client_id: &c.client_id,
            nonce: &pending.nonce,
            now,
            leeway,
        };
        let keys = Arc::clone(&*self.keys.read().await);
        let claims = match id_token::validate(id_token, &keys, &expect) {
            Err(id_token::Reject::UnknownKey) => {
                // Rotated keys (or the first sign-in): fetch the JWKS once and try again. The
                // token came from the token endpoint over TLS, not from the browser, so this
                // fetch cannot be triggered by anyone without a valid code.
                let keys = self.fetch_keys(&meta).await?;
                id_token::validate(id_token, &keys, &expect)
            }
            other => other,
        }
        .map_err(|r| SignInError::Refused(format!("ID token refused: {r}")))?;

        let mut claims = claims;
        let missing = |m: &Map<String, Value>| {
            !m.contains_key(&c.username_claim) || !m.contains_key(&c.roles_claim)
        };
        if missing(&claims) {
            self.merge_userinfo(&meta, &body, &mut claims).await?;
        }
        map_identity(c, &claims).map_err(SignInError::Refused)
    }

    /// Claims the ID token lacks, from the userinfo endpoint (whose `sub` must match).
    async fn merge_userinfo(
        &self,
        meta: &Metadata,
        token_answer: &Value,
        claims: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        let (Some(url), Some(access)) = (
            meta.userinfo_endpoint.as_deref(),
            token_answer.get("access_token").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        tracing::debug!("reading claims missing from the ID token at the userinfo endpoint");
        let info = self.get_json(url, Some(access)).await?;
        if info.get("sub") != claims.get("sub") {
            return Err(outage("userinfo", "its sub is not the ID token's"));
        }
        if let Value::Object(info) = info {
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
        Ok(())
    }

    fn client_secret(&self) -> Result<Option<zeroize::Zeroizing<String>>, Error> {
        let Some(path) = &self.config.client_secret_file else {
            return Ok(None);
        };
        let raw = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| outage(&format!("oidc.client_secret_file {}", path.display()), e))?,
        );
        Ok(Some(zeroize::Zeroizing::new(
            raw.trim_end_matches(['\r', '\n']).to_owned(),
        )))
    }

    /// Where to send the browser to end the provider's session too, when configured and the
    /// provider has an end-session endpoint (RP-Initiated Logout 1.0).
    pub async fn end_session_url(&self) -> Option<String> {
        if !self.config.end_session {
            return None;
        }
        let meta = match self.metadata().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot end the provider session");
                return None;
            }
        };
        let endpoint = meta.end_session_endpoint.as_deref()?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.config.client_id)
            .append_pair(
                "post_logout_redirect_uri",
                &self.config.post_logout_redirect_url,
            )
            .finish();
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Some(format!("{endpoint}{sep}{query}"))
    }
}

impl Provider {
    /// Origins the logout form's answer may send the browser to, without any network call
    /// (the logout page must not wait for a provider that is down): the issuer's, and the
    /// end-session endpoint's when discovery has already named it.
    pub fn end_session_origins(&self) -> Vec<String> {
        if !self.config.end_session {
            return Vec::new();
        }
        let mut origins: Vec<String> = origin_of(&self.config.issuer).into_iter().collect();
        let cached = self
            .metadata
            .try_read()
            .ok()
            .and_then(|m| m.as_ref().and_then(|m| m.end_session_endpoint.clone()));
        if let Some(o) = cached.as_deref().and_then(origin_of) {
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        origins
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let uri = url.parse::<http::Uri>().ok()?;
    Some(format!(
        "{}://{}",
        uri.scheme_str()?,
        uri.authority()?.as_str()
    ))
    .filter(|o| !o.contains('@'))
}

/// Provider endpoints are https (http only on loopback, as for the issuer).
fn check_endpoint(url: &str) -> Result<(), String> {
    let uri = url
        .parse::<http::Uri>()
        .map_err(|_| "not a URL".to_owned())?;
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|i| i.is_loopback());
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(format!("{url:?} is not an https URL")),
    }
}

async fn read_json(mut resp: reqwest::Response, what: &str) -> Result<Value, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| outage(what, e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(outage(what, "answer too large"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| outage(what, format!("not JSON: {e}")))
}

/// Username and roles from verified claims.
pub fn map_identity(c: &OidcConfig, claims: &Map<String, Value>) -> Result<Identity, String> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or("no sub")?
        .to_owned();
    let raw = claims
        .get(&c.username_claim)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the {:?} claim is missing", c.username_claim))?;
    let username = canonical_name(raw).map_err(|e| {
        format!(
            "the {:?} claim {raw:?} is not a usable username: {e}",
            c.username_claim
        )
    })?;
    let groups: Vec<String> = match claims.get(&c.roles_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => one.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut roles: Vec<String> = c
        .claim_roles
        .iter()
        .filter(|(group, _)| groups.contains(group))
        .flat_map(|(_, r)| r.iter().cloned())
        .collect();
    roles.sort();
    roles.dedup();
    Ok(Identity {
        subject,
        username,
        groups,
        roles,
    })
}
