//! Test harness: starts the real `dashgate` binary on a free loopback port in a temporary
//! directory, a real HTTP upstream on loopback, and gives tests a small cookie-aware client.
//! Readiness is polled with a deadline; everything is torn down on drop.

#![allow(dead_code)]

pub mod jws;
pub mod ldap;
pub mod oidc;
pub mod postgres;
pub mod redis;
pub mod upstream;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use jws::{jws_part, verify_with_jwks};
pub use postgres::PostgresServer;
pub use redis::{RedisServer, SentinelServer};
pub use upstream::{LAYOUT, Upstream};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const BIN: &str = env!("CARGO_BIN_EXE_dashgate");
pub const PASSWORD: &str = "correct horse battery staple";

/// A free loopback port (bound and released; the gateway binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Poll `f` until it is true or the deadline passes.
pub async fn eventually<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A running gateway process and its state directory.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// The certificate to trust when the gateway serves TLS.
    pub ca: Option<String>,
    fixed_port: Option<u16>,
}

pub struct Options {
    pub upstream: Option<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub config: Option<String>,
    pub policy: Option<String>,
    /// PEM certificate and key: serve TLS, and trust this certificate in [`Gateway::client`].
    pub tls: Option<(String, String)>,
    /// Listen on this port (for configuration that names the gateway's own URL, such as an
    /// OpenID redirect URL); by default a free one is picked.
    pub port: Option<u16>,
}

impl Options {
    pub fn new(upstream: &str) -> Options {
        Options {
            upstream: Some(upstream.to_owned()),
            env: Vec::new(),
            args: Vec::new(),
            config: None,
            policy: None,
            tls: None,
            port: None,
        }
    }

    pub fn port(mut self, port: u16) -> Options {
        self.port = Some(port);
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Options {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn arg(mut self, a: &str) -> Options {
        self.args.push(a.to_owned());
        self
    }
    /// Serve TLS with this self-signed certificate (PEM) and key.
    pub fn tls(mut self, cert_pem: &str, key_pem: &str) -> Options {
        self.tls = Some((cert_pem.to_owned(), key_pem.to_owned()));
        self
    }

    /// Serve with this policy, written to `policy.toml` in the gateway's directory.
    pub fn policy(mut self, toml: &str) -> Options {
        self.policy = Some(toml.to_owned());
        self
    }

    pub fn config(mut self, toml: &str) -> Options {
        self.config = Some(toml.to_owned());
        self
    }
}

impl Gateway {
    /// Start with default settings in front of `upstream`; users given as (name, roles).
    pub async fn start(
        upstream: &str,
        users: &[(&str, &[&str])],
    ) -> Result<Gateway, Box<dyn std::error::Error>> {
        Self::start_with(Options::new(upstream), users).await
    }

    pub async fn start_with(
        opts: Options,
        users: &[(&str, &[&str])],
    ) -> Result<Gateway, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut args = Vec::new();
        if let Some(toml) = &opts.config {
            let p = dir.path().join("dashgate.toml");
            std::fs::write(&p, toml)?;
            args.push("--config".to_owned());
            args.push(p.display().to_string());
        }
        if let Some(policy) = &opts.policy {
            let p = dir.path().join("policy.toml");
            std::fs::write(&p, policy)?;
            args.push("--policy".to_owned());
            args.push(p.display().to_string());
        }
        let mut env = opts.env.clone();
        if let Some((cert, key)) = &opts.tls {
            let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
            std::fs::write(&c, cert)?;
            std::fs::write(&k, key)?;
            env.push(("DASHGATE_TLS_CERT_FILE".to_owned(), c.display().to_string()));
            env.push(("DASHGATE_TLS_KEY_FILE".to_owned(), k.display().to_string()));
        }
        args.extend(opts.args.iter().cloned());
        let mut gw = Gateway {
            log: dir.path().join("gateway.log"),
            dir,
            port: 0,
            base: String::new(),
            child: None,
            env,
            args,
            ca: opts.tls.as_ref().map(|(c, _)| c.clone()),
            fixed_port: opts.port,
        };
        for (name, roles) in users {
            gw.add_user(name, PASSWORD, roles)?;
        }
        gw.spawn(opts.upstream.as_deref()).await?;
        Ok(gw)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_remove("DASHGATE_CONFIG")
            .env(
                "DASHGATE_DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("dashgate.db").display()),
            )
            .env("DASHGATE_KEYS_DIR", self.dir.path().join("keys"))
            .env("DASHGATE_LOG", "info,dashgate=debug")
            // Tests fail many logins on purpose; brute-force regulation has its own test
            // (tests/it/throttle.rs) that sets real limits.
            .env("DASHGATE_LOGIN_FREE_ATTEMPTS", "1000")
            .env("DASHGATE_LOGIN_LOCKOUT_AFTER", "1000000")
            .env("DASHGATE_LOGIN_MAX_FAILURES_PER_IP", "1000000");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    async fn spawn(&mut self, upstream: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
        for _attempt in 0..5 {
            let port = self.fixed_port.unwrap_or_else(free_port);
            let log = std::fs::File::create(&self.log)?;
            let mut c = self.command();
            c.arg("serve")
                .args(&self.args)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"));
            if let Some(u) = upstream {
                c.arg("--upstream").arg(u);
            }
            let child = c
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            self.child = Some(child);
            self.port = port;
            let scheme = if self.ca.is_some() { "https" } else { "http" };
            self.base = format!("{scheme}://127.0.0.1:{port}");
            let url = self.url("/auth/healthz");
            let client = self.client();
            let ready = eventually(Duration::from_secs(20), || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            })
            .await;
            if ready {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            self.stop();
            if !exited {
                break;
            }
        }
        Err(format!("gateway did not become ready; log:\n{}", self.log()).into())
    }

    /// Stop the process (SIGKILL) and start it again with the same state directory.
    pub async fn restart(
        &mut self,
        upstream: Option<&str>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        self.stop();
        self.spawn(upstream).await
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// A client for this gateway: like [`client`], trusting its TLS certificate if it has one.
    pub fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .tls_info(true);
        if let Some(cert) = self
            .ca
            .as_ref()
            .and_then(|c| reqwest::Certificate::from_pem(c.as_bytes()).ok())
        {
            b = b.add_root_certificate(cert);
        }
        b.build().unwrap_or_else(|_| reqwest::Client::new())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Run a CLI command against this gateway's database, with `stdin` piped in.
    pub fn cli(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, Box<dyn std::error::Error>> {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            if let Some(s) = stdin {
                // A command that refuses its arguments exits without reading stdin.
                match pipe.write_all(s.as_bytes()) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
        }
        Ok(child.wait_with_output()?)
    }

    pub fn add_user(&self, name: &str, password: &str, roles: &[&str]) -> TestResult {
        let mut args = vec!["users", "add", name, "--password-stdin"];
        for r in roles {
            args.push("--role");
            args.push(r);
        }
        let out = self.cli(&args, Some(&format!("{password}\n")))?;
        if !out.status.success() {
            return Err(
                format!("users add failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        Ok(())
    }

    /// Status of a GET with these cookies.
    pub async fn status(
        &self,
        path: &str,
        jar: &Jar,
    ) -> Result<reqwest::StatusCode, reqwest::Error> {
        Ok(self
            .client()
            .get(self.url(path))
            .header("cookie", jar.header())
            .send()
            .await?
            .status())
    }

    /// GET `path` with these cookies as an XHR would (`Accept: application/json`).
    pub async fn xhr(&self, path: &str, jar: &Jar) -> Result<reqwest::Response, reqwest::Error> {
        self.client()
            .get(self.url(path))
            .header("cookie", jar.header())
            .header("accept", "application/json")
            .send()
            .await
    }

    /// POST a Dash callback body to `path` as dash-renderer does: the jar's cookies, its CSRF
    /// token in `X-CSRFToken`, JSON both ways.
    pub async fn dash_post(
        &self,
        path: &str,
        jar: &Jar,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.client()
            .post(self.url(path))
            .header("cookie", jar.header())
            .header("x-csrftoken", jar.csrf())
            .header("accept", "application/json")
            .json(body)
            .send()
            .await
    }

    /// Open the login page with these cookies, as a browser would: the cookies afterwards and
    /// the form's CSRF token.
    pub async fn login_form(&self, jar: &Jar) -> Result<(Jar, String), Box<dyn std::error::Error>> {
        let page = self
            .client()
            .get(self.url("/auth/login"))
            .header("cookie", jar.header())
            .send()
            .await?;
        let mut jar = jar.clone();
        jar.update(page.headers());
        let token =
            hidden_field(&page.text().await?, "csrf_token").ok_or("no csrf_token in login page")?;
        Ok((jar, token))
    }

    /// Log in through the HTML form, like a browser, and return the session's cookies.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Jar, Box<dyn std::error::Error>> {
        let (status, jar) = self.try_login(user, password, "/").await?;
        if status != 303 {
            return Err(format!("login as {user} answered {status}; log:\n{}", self.log()).into());
        }
        Ok(jar)
    }

    /// Form login; returns the status and the cookies set along the way.
    pub async fn try_login(
        &self,
        user: &str,
        password: &str,
        next: &str,
    ) -> Result<(u16, Jar), Box<dyn std::error::Error>> {
        let c = self.client();
        let (mut jar, token) = self.login_form(&Jar::default()).await?;
        let resp = c
            .post(self.url("/auth/login"))
            .header("cookie", jar.header())
            .form(&[
                ("username", user),
                ("password", password),
                ("csrf_token", &token),
                ("next", next),
            ])
            .send()
            .await?;
        jar.update(resp.headers());
        Ok((resp.status().as_u16(), jar))
    }

    /// JSON login; returns (access, refresh).
    pub async fn token_login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<(String, String), Box<dyn std::error::Error>> {
        let resp = self
            .client()
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await?;
        if resp.status() != 200 {
            return Err(format!("token login answered {}", resp.status()).into());
        }
        let v: serde_json::Value = resp.json().await?;
        let access = v["access_token"]
            .as_str()
            .ok_or("no access_token")?
            .to_owned();
        let refresh = v["refresh_token"]
            .as_str()
            .ok_or("no refresh_token")?
            .to_owned();
        Ok((access, refresh))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        }
    }
}

/// The Dash Pages router callback as dash-renderer posts it for a navigation, its inputs
/// claiming the id `input_id` (Dash takes them by position, whatever id they claim).
pub fn pages_body(pathname: &str, input_id: &str) -> serde_json::Value {
    serde_json::json!({
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [{"id": input_id, "property": "pathname", "value": pathname}, {"id": input_id, "property": "search", "value": ""}],
        "state": [],
    })
}

/// Every `Set-Cookie` value of an answer, as text.
pub fn set_cookies(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

/// A client that never follows redirects and keeps no cookies of its own.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The value of `<input name="NAME" value="...">` in a page we rendered.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

/// A minimal cookie jar: name -> value, updated from `Set-Cookie` (Max-Age=0 deletes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    pub fn update(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let Ok(s) = v.to_str() else { continue };
            let Some((pair, attrs)) = s.split_once(';').or(Some((s, ""))) else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if attrs.contains("Max-Age=0") {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn without(&self, name: &str) -> Jar {
        let mut j = self.clone();
        j.0.remove(name);
        j
    }

    pub fn with(&self, name: &str, value: &str) -> Jar {
        let mut j = self.clone();
        j.0.insert(name.to_owned(), value.to_owned());
        j
    }

    pub fn csrf(&self) -> String {
        self.get("_csrf_token").unwrap_or_default().to_owned()
    }
}

pub const ACCESS: &str = "__Host-dashgate-access";
pub const REFRESH: &str = "__Host-dashgate-refresh";
pub const CSRF: &str = "_csrf_token";

/// stdout and stderr of a CLI run, for assertions and messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What came back on a raw connection.
pub struct RawAnswer {
    pub bytes: Vec<u8>,
    /// Did the server close the connection (rather than leave it open until our deadline)?
    pub closed: bool,
}

impl RawAnswer {
    /// The JSON body of a single answer (the echo upstream's report).
    pub fn json(&self) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let text = self.text();
        let body = text.split("\r\n\r\n").nth(1).ok_or("no body")?;
        Ok(serde_json::from_str(body)?)
    }

    /// Status codes of every HTTP/1.1 response in the stream (pipelined answers included).
    pub fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.match_indices("HTTP/1.1 ")
            .filter_map(|(i, m)| text.get(i + m.len()..i + m.len() + 3))
            .filter_map(|c| c.parse().ok())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The role `admin`, and two signed-in users: alice (admin) and victor (no role). Returns
/// (admin's cookies, victor's cookies).
pub async fn admin_and_viewer(gw: &Gateway) -> Result<(Jar, Jar), Box<dyn std::error::Error>> {
    let out = gw.cli(&["roles", "add", "admin"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    gw.add_user("alice", PASSWORD, &["admin"])?;
    gw.add_user("victor", PASSWORD, &[])?;
    Ok((
        gw.login("alice", PASSWORD).await?,
        gw.login("victor", PASSWORD).await?,
    ))
}

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM, certificate DER).
pub fn self_signed() -> Result<(String, String, Vec<u8>), Box<dyn std::error::Error>> {
    let key = rcgen::KeyPair::generate()?;
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
}

/// Send raw bytes to a loopback port and read until the peer closes (or 10 s pass): for
/// requests no HTTP client library would send. Async, so that an upstream running on the
/// test's own runtime can answer meanwhile.
pub async fn raw_exchange(port: u16, request: &[u8]) -> std::io::Result<RawAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    // A server may answer and close before reading everything: that is not a failure here.
    let _ = s.write_all(request).await;
    let mut bytes = Vec::new();
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut bytes)).await,
        Ok(Ok(_)) | Ok(Err(_))
    );
    Ok(RawAnswer { bytes, closed })
}

/// GET `path` written byte for byte (no client-side normalisation of the path, header names
/// in the case given), with the jar's cookies and these extra header lines.
pub async fn raw_get(
    gw: &Gateway,
    path: &str,
    jar: &Jar,
    lines: &[String],
) -> Result<RawAnswer, Box<dyn std::error::Error>> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", gw.port);
    if !jar.0.is_empty() {
        raw.push_str(&format!("Cookie: {}\r\n", jar.header()));
    }
    for l in lines {
        raw.push_str(l);
        raw.push_str("\r\n");
    }
    raw.push_str("Accept: text/html\r\nConnection: close\r\n\r\n");
    Ok(raw_exchange(gw.port, raw.as_bytes()).await?)
}
