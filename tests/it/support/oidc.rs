//! A real OpenID provider (`oidc-provider` from npm, on Node) on a free loopback port.
//!
//! `tests/oidc/provider.mjs` runs the certified `oidc-provider` package (pinned in
//! `tests/oidc/package.json`) over plain http: discovery, JWKS, the authorization code flow
//! with PKCE (S256) required for every client, consent skipped, RP-initiated logout, and our
//! own minimal login form. Its packages are installed on first use (`npm ci --prefix
//! tests/oidc`). All its state (sessions, codes, grants) is in memory and lost on restart; its
//! signing keys live in a file in the provider's temporary directory and survive restarts.
//!
//! [`OidcProvider::sign_in`] and [`OidcProvider::confirm_logout`] act as one browser at the
//! provider: they keep its cookies between calls, so a second `sign_in` while that browser
//! still has a session comes straight back with a code, without the form (single sign-on, as
//! in a real browser). [`OidcProvider::forget_sessions`] starts a new browser; the `_with`
//! variants take the cookie jar to use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::Url;

use super::{Jar, client, eventually, free_port, hidden_field};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Redirects and pages a sign-in or a logout may go through before it leaves the provider.
const MAX_STEPS: usize = 20;

/// `tests/oidc` in this repository.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

/// The `oidc-provider` version that `tests/oidc/package.json` pins.
fn pinned_version(dir: &Path) -> Res<String> {
    let pkg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json"))?)?;
    Ok(pkg["dependencies"]["oidc-provider"]
        .as_str()
        .ok_or("no oidc-provider dependency in tests/oidc/package.json")?
        .to_owned())
}

/// The `oidc-provider` version installed in `tests/oidc/node_modules`, if any.
fn installed_version(dir: &Path) -> Option<String> {
    let path = dir.join("node_modules/oidc-provider/package.json");
    let pkg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    pkg["version"].as_str().map(str::to_owned)
}

/// Install the fixture's packages (`npm ci`) unless the pinned version is there already;
/// once per test run, whatever the number of tests asking at the same time.
fn ensure_installed() -> Res<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let dir = fixture_dir();
            let pinned = pinned_version(&dir).map_err(|e| e.to_string())?;
            if installed_version(&dir).as_deref() == Some(pinned.as_str()) {
                return Ok(());
            }
            let out = Command::new("npm")
                .arg("ci")
                .arg("--prefix")
                .arg(&dir)
                .args(["--no-audit", "--no-fund"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| {
                    format!("cannot run npm (install Node.js 20+ with npm): {e}; then run `npm ci --prefix tests/oidc`")
                })?;
            if !out.status.success() {
                return Err(format!(
                    "`npm ci --prefix {}` failed ({}); run `npm ci --prefix tests/oidc` by hand:\n{}{}",
                    dir.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            match installed_version(&dir) {
                Some(v) if v == pinned => Ok(()),
                other => Err(format!(
                    "after `npm ci --prefix tests/oidc`, oidc-provider is {other:?}, not {pinned}"
                )),
            }
        })
        .clone()
        .map_err(Into::into)
}

/// The last cookies win; an emptied cookie (oidc-provider deletes with an expiry in 1970 and
/// an empty value, which [`Jar::update`] would keep) is dropped.
fn update_jar(jar: &mut Jar, headers: &reqwest::header::HeaderMap) {
    jar.update(headers);
    jar.0.retain(|_, v| !v.is_empty());
}

/// The `action` of the first form in a page, resolved against the page's URL.
fn form_action(page: &Url, html: &str) -> Option<Url> {
    let form = html.find("<form")?;
    let marker = "action=\"";
    let start = html[form..].find(marker)? + form + marker.len();
    let end = html[start..].find('"')? + start;
    page.join(&html[start..end].replace("&amp;", "&")).ok()
}

/// The text of the element with `id="error"` in one of the provider's pages, if any.
fn page_error(html: &str) -> Option<String> {
    let at = html.find("id=\"error\"")?;
    let start = html[at..].find('>')? + at + 1;
    let end = html[start..].find('<')? + start;
    Some(html[start..end].trim().to_owned())
}

/// The first value of a query parameter.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A running `oidc-provider`.
pub struct OidcProvider {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    clients: serde_json::Value,
    accounts: serde_json::Value,
    id_token_ttl_seconds: Option<u64>,
    /// Profile, email and groups only at the userinfo endpoint, not in ID tokens.
    minimal_id_tokens: bool,
    /// The provider's cookies in the one browser that [`OidcProvider::sign_in`] plays.
    browser: Mutex<Jar>,
}

impl OidcProvider {
    /// Start with these clients (oidc-provider client metadata: `client_id`,
    /// `client_secret`, `redirect_uris`, `post_logout_redirect_uris`,
    /// `token_endpoint_auth_method`, ...) and accounts (`sub`, `username`, `password`,
    /// `email`, `name`, `groups`).
    pub async fn start(
        clients: serde_json::Value,
        accounts: serde_json::Value,
    ) -> Res<OidcProvider> {
        Self::start_with(clients, accounts, None).await
    }

    /// [`OidcProvider::start`], with ID tokens valid for this many seconds (default 3600).
    pub async fn start_with(
        clients: serde_json::Value,
        accounts: serde_json::Value,
        id_token_ttl_seconds: Option<u64>,
    ) -> Res<OidcProvider> {
        ensure_installed()?;
        let mut op = OidcProvider {
            port: 0,
            dir: tempfile::tempdir()?,
            child: None,
            clients,
            accounts,
            id_token_ttl_seconds,
            minimal_id_tokens: false,
            browser: Mutex::new(Jar::default()),
        };
        // The port is free when picked, not necessarily when Node binds it: try another if
        // the provider could not listen.
        let mut last = String::new();
        for _attempt in 0..5 {
            op.port = free_port();
            match op.spawn(false).await {
                Ok(()) => return Ok(op),
                Err(e) => last = e.to_string(),
            }
            if !op.log().contains("EADDRINUSE") {
                break;
            }
        }
        Err(last.into())
    }

    /// `http://127.0.0.1:PORT`, exactly as in the tokens' `iss`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer(), path)
    }

    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// What the provider printed (its warnings and the errors it met).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    /// The private JWKS the provider signs with (first key signs), as stored on disk.
    pub fn keys_file(&self) -> PathBuf {
        self.dir.path().join("keys.json")
    }

    async fn spawn(&mut self, rotate: bool) -> Res<()> {
        let config = serde_json::json!({
            "port": self.port,
            "issuer": self.issuer(),
            "clients": self.clients,
            "accounts": self.accounts,
            "keys_file": self.keys_file(),
            "rotate": rotate,
            "id_token_ttl_seconds": self.id_token_ttl_seconds,
            "minimal_id_tokens": self.minimal_id_tokens,
        });
        let config_path = self.dir.path().join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(self.dir.path().join("provider.log"))?;
        let child = Command::new("node")
            .arg(fixture_dir().join("provider.mjs"))
            .arg(&config_path)
            .current_dir(fixture_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start node (install Node.js 20+): {e}"))?;
        self.child = Some(child);

        let http = client();
        let url = self.discovery_url();
        let mut child = self.child.take();
        let mut exited = false;
        // Each attempt is bounded, so one that hangs (a provider still starting on a loaded
        // machine) cannot outlast the deadline by the client's own 30 s timeout.
        let done = eventually(Duration::from_secs(30), || {
            exited = child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            let (http, url, exited) = (http.clone(), url.clone(), exited);
            async move {
                let attempt = tokio::time::timeout(Duration::from_secs(2), http.get(&url).send());
                exited
                    || attempt
                        .await
                        .is_ok_and(|r| r.is_ok_and(|r| r.status() == 200))
            }
        })
        .await;
        self.child = child;
        if done && !exited {
            return Ok(());
        }
        self.stop();
        Err(format!(
            "oidc-provider did not serve {url} {}; log:\n{}",
            if exited { "(it exited)" } else { "within 30 s" },
            self.log()
        )
        .into())
    }

    /// Restart issuing ID tokens with only the required claims (the rest at userinfo).
    pub async fn restart_with_minimal_id_tokens(&mut self) -> Res<()> {
        self.minimal_id_tokens = true;
        self.restart().await
    }

    /// Kill the provider (its sessions, codes and grants are lost; its keys are kept).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port with the same keys.
    pub async fn restart(&mut self) -> Res<()> {
        self.stop();
        self.spawn(false).await
    }

    /// Restart on the same port with a new signing key first in the JWKS; the old keys stay
    /// published (so tokens they signed still verify) but no longer sign.
    pub async fn rotate_keys(&mut self) -> Res<()> {
        self.stop();
        self.spawn(true).await
    }

    pub async fn discovery(&self) -> Res<serde_json::Value> {
        self.get_json(&self.discovery_url()).await
    }

    /// The published (public) JWKS.
    pub async fn jwks(&self) -> Res<serde_json::Value> {
        let disco = self.discovery().await?;
        let uri = disco["jwks_uri"]
            .as_str()
            .ok_or("no jwks_uri in discovery")?;
        self.get_json(uri).await
    }

    async fn get_json(&self, url: &str) -> Res<serde_json::Value> {
        let resp = client().get(url).send().await?;
        if resp.status() != 200 {
            return Err(format!("GET {url} answered {}", resp.status()).into());
        }
        Ok(resp.json().await?)
    }

    /// Start a new browser: forget the provider's cookies (and so its session).
    pub fn forget_sessions(&self) {
        if let Ok(mut jar) = self.browser.lock() {
            *jar = Jar::default();
        }
    }

    fn browser_jar(&self) -> Jar {
        self.browser.lock().map(|j| j.clone()).unwrap_or_default()
    }

    fn keep_browser_jar(&self, jar: Jar) {
        if let Ok(mut j) = self.browser.lock() {
            *j = jar;
        }
    }

    /// Follow an authorization request as a browser would: the provider's redirects, its
    /// login form (filled with `username` and `password`), until a redirect leaves the
    /// provider; returns that Location (the client's `redirect_uri?code=..&state=..&iss=..`,
    /// or with `error=..` when the provider refuses the request). A refused password is an
    /// error. With a session at the provider already, no form is shown.
    pub async fn sign_in(
        &self,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> Res<String> {
        let mut jar = self.browser_jar();
        let out = self
            .sign_in_with(&mut jar, authorize_url, username, password)
            .await;
        self.keep_browser_jar(jar);
        out
    }

    /// [`OidcProvider::sign_in`] with the provider's cookies in `jar`.
    pub async fn sign_in_with(
        &self,
        jar: &mut Jar,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> Res<String> {
        let http = client();
        let mut url = Url::parse(authorize_url)?;
        if !self.is_mine(&url) {
            return Err(format!("{authorize_url} is not at {}", self.issuer()).into());
        }
        let mut submitted = false;
        for _ in 0..MAX_STEPS {
            if !self.is_mine(&url) {
                return Ok(url.to_string());
            }
            let resp = http
                .get(url.clone())
                .header("cookie", jar.header())
                .send()
                .await?;
            update_jar(jar, resp.headers());
            if let Some(next) = redirect(&url, &resp)? {
                url = next;
                continue;
            }
            let status = resp.status();
            let html = resp.text().await?;
            if status != 200 || !html.contains("id=\"sign-in\"") {
                return Err(self.unexpected("sign-in", &url, status, &html).into());
            }
            if submitted {
                return Err(format!("the login form came back at {url} after signing in").into());
            }
            let action = form_action(&url, &html).ok_or("no form action in the login page")?;
            let resp = http
                .post(action.clone())
                .header("cookie", jar.header())
                .form(&[("username", username), ("password", password)])
                .send()
                .await?;
            update_jar(jar, resp.headers());
            submitted = true;
            match redirect(&action, &resp)? {
                Some(next) => url = next,
                None => {
                    let status = resp.status();
                    let html = resp.text().await?;
                    let why = page_error(&html).unwrap_or_default();
                    return Err(
                        format!("signing in as {username} refused ({status}): {why}").into(),
                    );
                }
            }
        }
        Err(format!("more than {MAX_STEPS} steps signing in; last at {url}").into())
    }

    /// Follow an RP-initiated logout (`end_session_endpoint?...`) as a browser would and
    /// confirm it (`logout=yes`, ending the whole session at the provider); returns the first
    /// Location that leaves the provider (the `post_logout_redirect_uri?state=..`), or, when
    /// there is none, the URL of the provider's "signed out" page where it ended.
    pub async fn confirm_logout(&self, end_session_url: &str) -> Res<String> {
        let mut jar = self.browser_jar();
        let out = self.confirm_logout_with(&mut jar, end_session_url).await;
        self.keep_browser_jar(jar);
        out
    }

    /// [`OidcProvider::confirm_logout`] with the provider's cookies in `jar`.
    pub async fn confirm_logout_with(&self, jar: &mut Jar, end_session_url: &str) -> Res<String> {
        let http = client();
        let mut url = Url::parse(end_session_url)?;
        if !self.is_mine(&url) {
            return Err(format!("{end_session_url} is not at {}", self.issuer()).into());
        }
        let mut confirmed = false;
        for _ in 0..MAX_STEPS {
            if !self.is_mine(&url) {
                return Ok(url.to_string());
            }
            let resp = http
                .get(url.clone())
                .header("cookie", jar.header())
                .send()
                .await?;
            update_jar(jar, resp.headers());
            if let Some(next) = redirect(&url, &resp)? {
                url = next;
                continue;
            }
            let status = resp.status();
            let html = resp.text().await?;
            if status == 200 && confirmed {
                return Ok(url.to_string());
            }
            // With a session: our page with button `confirm-logout`; without one:
            // oidc-provider's auto-submitting form. Both post `xsrf` to the same action.
            let (Some(xsrf), Some(action), 200) = (
                hidden_field(&html, "xsrf"),
                form_action(&url, &html),
                status.as_u16(),
            ) else {
                return Err(self.unexpected("logout", &url, status, &html).into());
            };
            let resp = http
                .post(action.clone())
                .header("cookie", jar.header())
                .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
                .send()
                .await?;
            update_jar(jar, resp.headers());
            confirmed = true;
            match redirect(&action, &resp)? {
                Some(next) => url = next,
                None => {
                    let status = resp.status();
                    let html = resp.text().await?;
                    return Err(self
                        .unexpected("logout confirmation", &action, status, &html)
                        .into());
                }
            }
        }
        Err(format!("more than {MAX_STEPS} steps logging out; last at {url}").into())
    }

    fn is_mine(&self, url: &Url) -> bool {
        Url::parse(&self.issuer()).is_ok_and(|i| i.origin() == url.origin())
    }

    fn unexpected(&self, what: &str, url: &Url, status: reqwest::StatusCode, html: &str) -> String {
        let why = page_error(html).unwrap_or_else(|| html.chars().take(500).collect());
        format!(
            "{what}: the provider answered {status} at {url}: {why}\nprovider log:\n{}",
            self.log()
        )
    }
}

/// Where a redirect goes, resolved against the request's URL; `None` if it is no redirect.
fn redirect(from: &Url, resp: &reqwest::Response) -> Res<Option<Url>> {
    if !resp.status().is_redirection() {
        return Ok(None);
    }
    let location = resp
        .headers()
        .get("location")
        .ok_or_else(|| format!("{} from {from} without a Location", resp.status()))?
        .to_str()?;
    Ok(Some(from.join(location)?))
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- oidc-provider log ----\n{}", self.log());
        }
    }
}
