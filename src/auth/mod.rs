//! The gateway's own endpoints under the auth prefix (`/auth` by default): login, logout,
//! refresh, password change, userinfo, metrics, JWKS, health and readiness, and the OpenID
//! Connect sign-in ([`oidc_endpoints`]). [`routes`] is their one route table, [`admit`] what
//! every one of them demands first; they work with the narrow [`Desk`], never the whole state.

mod oidc_endpoints;
pub mod pages;
pub mod redirect;
pub mod throttle;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;
use zeroize::Zeroizing;

use std::time::Duration;

use crate::clock;
use crate::config::LoginLimits;
use crate::error::Error;
use crate::http_util::ClientBody;
use crate::http_util::{Response, content_type, full, json, redirect};
use crate::metrics::Metrics;
use crate::names::canonical_name;
use crate::policy::PolicyHandle;
use crate::proxy::Proxy;
use crate::proxy::read_body;
use crate::session::Sessions;
use crate::session::{Named, NamedUser, Outcome, Via, cookies, csrf, secs};
use crate::sign_in::SignIn;

/// What the `/auth` endpoints work with, and all they see of the gateway: the session
/// service, the sign-in sources, the login counters, and a few settings. Assembled with the
/// rest of the shared state (`state`).
#[derive(Clone, Copy)]
pub struct Desk<'a> {
    pub sessions: &'a Sessions,
    pub sign_in: &'a SignIn,
    pub metrics: &'a Metrics,
    /// `auth_prefix`.
    pub prefix: &'a str,
    /// `limits.body_read_timeout`.
    pub body_timeout: Duration,
    /// `login.*`: brute-force regulation.
    pub login: LoginLimits,
    pub scrape: Scrape<'a>,
}

/// What `/auth/metrics` reports on and who may read it.
#[derive(Clone, Copy)]
pub struct Scrape<'a> {
    /// `metrics.public`.
    pub public: bool,
    /// The scraper's bearer token (`metrics.token_file`).
    pub token: Option<&'a Zeroizing<String>>,
    /// Upstream health.
    pub proxy: &'a Proxy,
    /// The policy in force (its rule count).
    pub policy: &'a PolicyHandle,
}

/// Largest body the auth endpoints read (a login form is a few hundred bytes).
const MAX_AUTH_BODY: usize = 16 * 1024;

/// Answer a request whose path starts with the auth prefix; `sub` is the rest of the path.
///
/// Two things hold for every endpoint, whatever the handler does:
/// - [`admit`] runs first: a state-changing request that a browser marks as cross-site or
///   foreign-origin, or that carries a body type the endpoint does not read, is refused before
///   any credential is looked at, so nothing (an inline refresh included) has changed when it
///   is refused;
/// - the cookies of an inline refresh made while serving the request ([`Carry`]) go on the
///   answer, whatever it is — a refusal, an error, a redirect — so the browser never keeps a
///   refresh token that has just been spent.
///
/// Every answer is `nosniff` and, unless it is one of the public, user-independent resources
/// that set their own caching (JWKS, stylesheet), `no-store`. (Errors get the same headers in
/// [`Error::into_response`].)
pub async fn serve_endpoint<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: Request<B>,
    sub: &str,
) -> Response {
    let html = crate::http_util::wants_html(req.headers(), req.uri().path());
    let mut carry = Carry::default();
    let answer = match admit(req.method(), sub, req.headers()) {
        Ok(()) => dispatch(desk, peer, req, sub, &mut carry).await,
        Err(e) => Err(e),
    };
    let mut r = answer.unwrap_or_else(|e| e.into_response(html));
    // Before the handler's own: when a handler starts a new session (a password change), its
    // cookies must be the ones the browser keeps.
    let own: Vec<HeaderValue> = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    r.headers_mut().remove(header::SET_COOKIE);
    add_cookies(&mut r, carry.cookies.into_iter().chain(own));
    let h = r.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Body types of the endpoints that read a form or JSON (login, password change).
const FORM_OR_JSON: &[&str] = &["application/x-www-form-urlencoded", "application/json"];

/// The one decision, for every endpoint under the auth prefix, of what a request must satisfy
/// before its handler runs. A state-changing method must not come from another site (Fetch
/// Metadata, or `Origin` against `Host`) — on every endpoint, whether or not the request turns
/// out to carry a session (a cross-site logout would otherwise sign anyone out) — and must
/// carry a body type the endpoint reads. Safe methods change nothing and pass. The session's
/// CSRF token, which needs to know the session, is checked by the handlers with
/// [`Sessions::check_csrf`], also before anything changes.
pub fn admit(method: &Method, sub: &str, headers: &http::HeaderMap) -> Result<(), Error> {
    if csrf::is_safe_method(method) {
        return Ok(());
    }
    csrf::check_origin(headers)?;
    if !route(sub, method).is_ok_and(Endpoint::reads_form) {
        return Ok(());
    }
    match content_type(headers) {
        Some(ct) if FORM_OR_JSON.contains(&ct.as_str()) => Ok(()),
        _ => Err(Error::UnsupportedMediaType),
    }
}

/// `Set-Cookie` values an answer must carry whatever it turns out to be: those of an inline
/// refresh (or a repaired CSRF cookie) made while serving the request, or the removal of dead
/// session cookies. Handlers authenticate through [`Carry::authenticate`]; [`serve_endpoint`] puts the
/// cookies on the answer.
#[derive(Default)]
pub struct Carry {
    cookies: Vec<HeaderValue>,
}

impl Carry {
    /// [`Sessions::authenticate`], keeping the cookies it sets.
    async fn authenticate(
        &mut self,
        desk: Desk<'_>,
        headers: &http::HeaderMap,
        now: i64,
    ) -> Result<Option<crate::session::Session>, Error> {
        match desk.sessions.authenticate(headers, now).await? {
            Outcome::Authenticated(mut s) => {
                self.cookies.append(&mut s.set_cookies);
                Ok(Some(s))
            }
            Outcome::Anonymous { clear } => {
                self.cookies.extend(clear);
                Ok(None)
            }
        }
    }
}

/// What an endpoint under the auth prefix does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    LoginPage,
    Login,
    LogoutPage,
    Logout,
    PasswordPage,
    ChangePassword,
    Metrics,
    OidcStart,
    OidcCallback,
    Refresh,
    Userinfo,
    Jwks,
    Healthz,
    Readyz,
    /// The login page's stylesheet and icon.
    Asset,
}

impl Endpoint {
    /// Does it read a form or JSON body (and so refuse other body types, [`admit`])?
    fn reads_form(self) -> bool {
        matches!(self, Endpoint::Login | Endpoint::ChangePassword)
    }
}

/// A page and the form it posts (login, logout, password change).
const fn page_and_form(page: Endpoint, form: Endpoint) -> [(Method, Endpoint); 3] {
    [
        (Method::GET, page),
        (Method::HEAD, page),
        (Method::POST, form),
    ]
}

/// A resource read with GET or HEAD.
const fn read(e: Endpoint) -> [(Method, Endpoint); 2] {
    [(Method::GET, e), (Method::HEAD, e)]
}

/// The route table of the auth prefix: for `sub` (the path after the prefix), the endpoint of
/// each method it answers. `None`: no such path (404); a listed path answers other methods
/// with 405.
fn routes(sub: &str) -> Option<&'static [(Method, Endpoint)]> {
    use Endpoint::*;
    static LOGIN: [(Method, Endpoint); 3] = page_and_form(LoginPage, Login);
    static LOGOUT: [(Method, Endpoint); 3] = page_and_form(LogoutPage, Logout);
    static PASSWORD: [(Method, Endpoint); 3] = page_and_form(PasswordPage, ChangePassword);
    static REFRESH: [(Method, Endpoint); 1] = [(Method::POST, Refresh)];
    static METRICS: [(Method, Endpoint); 1] = [(Method::GET, Metrics)];
    static OIDC_START: [(Method, Endpoint); 2] = read(OidcStart);
    static OIDC_CALLBACK: [(Method, Endpoint); 1] = [(Method::GET, OidcCallback)];
    static USERINFO: [(Method, Endpoint); 2] = read(Userinfo);
    static JWKS: [(Method, Endpoint); 2] = read(Jwks);
    static HEALTHZ: [(Method, Endpoint); 2] = read(Healthz);
    static READYZ: [(Method, Endpoint); 2] = read(Readyz);
    static ASSET: [(Method, Endpoint); 2] = read(Asset);
    Some(match sub {
        "/login" => &LOGIN,
        "/logout" => &LOGOUT,
        "/password" => &PASSWORD,
        "/refresh" => &REFRESH,
        "/metrics" => &METRICS,
        "/oidc/start" => &OIDC_START,
        "/oidc/callback" => &OIDC_CALLBACK,
        "/userinfo" => &USERINFO,
        "/jwks.json" => &JWKS,
        "/healthz" => &HEALTHZ,
        "/readyz" => &READYZ,
        asset if pages::asset(asset).is_some() => &ASSET,
        _ => return None,
    })
}

/// The endpoint a request is for, or the 404 / 405 that answers it.
fn route(sub: &str, method: &Method) -> Result<Endpoint, Error> {
    routes(sub)
        .ok_or(Error::NotFound)?
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, e)| *e)
        .ok_or(Error::MethodNotAllowed)
}

async fn dispatch<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: Request<B>,
    sub: &str,
    carry: &mut Carry,
) -> Result<Response, Error> {
    match route(sub, req.method())? {
        Endpoint::LoginPage => login_page(desk, &req),
        Endpoint::Login => login(desk, peer, req).await,
        Endpoint::LogoutPage => logout_page(desk, &req, carry).await,
        Endpoint::Logout => logout(desk, peer, req).await,
        Endpoint::PasswordPage => password_page(desk, &req, carry).await,
        Endpoint::ChangePassword => change_password(desk, peer, req, carry).await,
        Endpoint::Metrics => metrics(desk, &req, carry).await,
        Endpoint::OidcStart => oidc_endpoints::start(desk, &req).await,
        Endpoint::OidcCallback => oidc_endpoints::callback(desk, peer, &req).await,
        Endpoint::Refresh => refresh(desk, req).await,
        Endpoint::Userinfo => userinfo(desk, &req, carry).await,
        Endpoint::Jwks => {
            let mut r = json(StatusCode::OK, &desk.sessions.keys.jwks());
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            Ok(r)
        }
        Endpoint::Healthz => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        Endpoint::Readyz => match ready(desk).await {
            Ok(()) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({"status": "ready"}),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "not ready");
                Ok(json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "not ready"}),
                ))
            }
        },
        Endpoint::Asset => {
            let (content_type, body) = pages::asset(sub).ok_or(Error::NotFound)?;
            let mut r = Response::new(full(body));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            Ok(r)
        }
    }
}

/// Ready when the user database and the state store both answer.
async fn ready(desk: Desk<'_>) -> Result<(), Error> {
    desk.sign_in.directory.ping().await?;
    desk.sessions.store.ping().await
}

fn query_param<B: ClientBody>(req: &Request<B>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn html(status: StatusCode, page: String) -> Response {
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    pages::add_page_security_headers(r.headers_mut());
    r
}

fn add_cookies(r: &mut Response, values: impl IntoIterator<Item = HeaderValue>) {
    for v in values {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Render the login form with a fresh pre-session CSRF token in an HttpOnly cookie.
fn render_login(
    desk: Desk<'_>,
    next: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, Error> {
    let now = clock::now();
    let token = csrf::issue(desk.sessions.keys.csrf_key(), csrf::Binding::Login, now)?;
    let page = pages::login_page(
        desk.prefix,
        next,
        &token,
        username,
        error,
        sign_in_choices(desk),
    );
    let mut r = html(status, page);
    let names = &desk.sessions.cookies;
    add_cookies(
        &mut r,
        cookies::set_cookie(
            names,
            &names.login_csrf,
            &token,
            Some(csrf::LOGIN_TOKEN_TTL),
            true,
        ),
    );
    Ok(r)
}

/// What the login page offers, from the configured sources.
fn sign_in_choices(desk: Desk<'_>) -> pages::SignInChoices<'_> {
    pages::SignInChoices {
        password: desk.sign_in.takes_passwords(),
        provider: desk
            .sign_in
            .provider()
            .map(|p| p.config().display_name.as_str()),
    }
}

/// Start a session for a user who just proved who they are (password or provider), ending
/// the browser's previous one.
async fn signed_in(
    desk: Desk<'_>,
    peer: SocketAddr,
    user: &crate::directory::User,
    previous: Option<crate::token::refresh::RefreshKey>,
    now: i64,
) -> Result<crate::session::Issued, Error> {
    if let Some(hash) = previous {
        if let Some(old) = desk.sessions.store.family_of(hash, now).await? {
            desk.sessions.revoke_session(&old.id, now).await?;
        }
    }
    let issued = desk.sessions.start_session(user, now).await?;
    desk.metrics.login("success");
    tracing::info!(event = "login", result = "success", user = %user.username, source = %user.source, sid = %issued.family.id, ip = %peer.ip());
    Ok(issued)
}

/// The 303 that ends a browser sign-in: session cookies, and `spent` (the login form's or the
/// OpenID flow's cookie) removed.
fn browser_signed_in(
    desk: Desk<'_>,
    issued: &crate::session::Issued,
    next: &str,
    spent: &str,
    now: i64,
) -> Result<Response, Error> {
    let mut r = redirect(StatusCode::SEE_OTHER, next);
    add_cookies(&mut r, desk.sessions.session_cookies(issued, now, true)?);
    add_cookies(
        &mut r,
        cookies::set_cookie(&desk.sessions.cookies, spent, "", None, true),
    );
    Ok(r)
}

fn login_page<B: ClientBody>(desk: Desk<'_>, req: &Request<B>) -> Result<Response, Error> {
    let next = redirect::safe_next(query_param(req, "next").as_deref(), desk.prefix);
    render_login(desk, &next, "", None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginJson {
    username: String,
    password: Zeroizing<String>,
}

/// What a login request carried, whichever encoding it used.
struct LoginRequest {
    username: String,
    password: Zeroizing<String>,
    form: Option<LoginForm>,
}

struct LoginForm {
    csrf_token: Option<String>,
    next: Option<String>,
}

fn parse_login(ct: Option<&str>, body: &Bytes) -> Result<LoginRequest, Error> {
    match ct {
        Some("application/x-www-form-urlencoded") => {
            let mut username = None;
            let mut password = None;
            let mut csrf_token = None;
            let mut next = None;
            for (k, v) in form_urlencoded::parse(body) {
                let slot = match k.as_ref() {
                    "username" => &mut username,
                    "password" => &mut password,
                    "csrf_token" => &mut csrf_token,
                    "next" => &mut next,
                    _ => continue,
                };
                if slot.is_some() {
                    return Err(Error::BadRequest("duplicate form field"));
                }
                *slot = Some(v.into_owned());
            }
            Ok(LoginRequest {
                username: username.unwrap_or_default(),
                password: Zeroizing::new(password.unwrap_or_default()),
                form: Some(LoginForm { csrf_token, next }),
            })
        }
        Some("application/json") => {
            let j: LoginJson = serde_json::from_slice(body)
                .map_err(|_| Error::BadRequest("expected JSON {\"username\", \"password\"}"))?;
            Ok(LoginRequest {
                username: j.username,
                password: j.password,
                form: None,
            })
        }
        _ => Err(Error::UnsupportedMediaType),
    }
}

async fn login<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<Response, Error> {
    let ct = content_type(req.headers());
    let login_cookie =
        cookies::get(req.headers(), &desk.sessions.cookies.login_csrf).map(str::to_owned);
    // The session this browser already holds ends when it signs in again (session fixation:
    // nothing from before a sign-in keeps working).
    let previous = desk.sessions.presented_session(req.headers());
    let body = read_body(req.into_body(), MAX_AUTH_BODY, desk.body_timeout).await?;
    let login = parse_login(ct.as_deref(), &body)?;
    let now = clock::now();
    let prefix = desk.prefix;

    if let Some(form) = &login.form {
        let next = redirect::safe_next(form.next.as_deref(), prefix);
        if csrf::check(
            desk.sessions.keys.csrf_key(),
            login_cookie.as_deref(),
            form.csrf_token.as_deref(),
            csrf::Binding::Login,
            now,
            Some(csrf::LOGIN_TOKEN_TTL),
        )
        .is_err()
        {
            desk.metrics.login("csrf_failure");
            tracing::info!(event = "login", result = "csrf_failure", ip = %peer.ip());
            return render_login(desk, &next, "", None, StatusCode::FORBIDDEN);
        }
    }

    let canonical = canonical_name(&login.username).ok();
    let checked = check_password(desk, peer, canonical.as_deref(), login.password, now).await;
    let checked = match (checked, &login.form) {
        (Err(e @ Error::DirectoryUnavailable { .. }), Some(form)) => {
            // The form again, saying what is wrong: never "wrong password" for an outage.
            desk.metrics.login("unavailable");
            let message = e.public_message();
            tracing::warn!(event = "login", result = "unavailable", error = %e, ip = %peer.ip());
            let next = redirect::safe_next(form.next.as_deref(), prefix);
            let mut r = render_login(
                desk,
                &next,
                canonical.as_deref().unwrap_or(""),
                Some(&message),
                StatusCode::SERVICE_UNAVAILABLE,
            )?;
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Ok(r);
        }
        (Err(e), _) => {
            if matches!(e, Error::DirectoryUnavailable { .. }) {
                desk.metrics.login("unavailable");
            }
            return Err(e);
        }
        (Ok(c), _) => c,
    };
    let user = match checked {
        PasswordCheck::Accepted(u) => u,
        PasswordCheck::Throttled(wait) => {
            desk.metrics.login("throttled");
            tracing::warn!(event = "login", result = "throttled", user = canonical.as_deref().unwrap_or("-"), ip = %peer.ip(), retry_after = wait);
            return match &login.form {
                Some(form) => {
                    let next = redirect::safe_next(form.next.as_deref(), prefix);
                    let message = format!("Too many attempts. Try again in {wait} seconds.");
                    let mut r = render_login(
                        desk,
                        &next,
                        canonical.as_deref().unwrap_or(""),
                        Some(&message),
                        StatusCode::TOO_MANY_REQUESTS,
                    )?;
                    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    Ok(r)
                }
                None => Err(Error::TooManyRequests(wait)),
            };
        }
        PasswordCheck::Refused(reason) => {
            desk.metrics.login("failure");
            let user = canonical.as_deref().unwrap_or("-");
            tracing::info!(event = "login", result = "failure", reason, user, ip = %peer.ip());
            return match &login.form {
                Some(form) => {
                    let next = redirect::safe_next(form.next.as_deref(), prefix);
                    render_login(
                        desk,
                        &next,
                        canonical.as_deref().unwrap_or(""),
                        Some(pages::LOGIN_FAILED),
                        StatusCode::UNAUTHORIZED,
                    )
                }
                None => Err(Error::BadCredentials),
            };
        }
    };

    let issued = signed_in(desk, peer, &user, previous, now).await?;
    match login.form {
        Some(form) => {
            let next = redirect::safe_next(form.next.as_deref(), prefix);
            browser_signed_in(desk, &issued, &next, &desk.sessions.cookies.login_csrf, now)
        }
        None => Ok(token_response(desk, &issued, now)),
    }
}

fn token_response(desk: Desk<'_>, issued: &crate::session::Issued, now: i64) -> Response {
    let mut body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.claims.exp.saturating_sub(now),
    });
    if let Some(r) = &issued.refresh_token {
        body["refresh_token"] = serde_json::Value::String(r.clone());
        body["refresh_expires_in"] = serde_json::json!(
            secs(desk.sessions.settings.refresh_idle_ttl)
                .min(issued.family.absolute_expires_at.saturating_sub(now))
        );
    }
    json(StatusCode::OK, &body)
}

#[derive(Deserialize)]
struct RefreshJson {
    refresh_token: String,
}

async fn refresh<B: ClientBody>(desk: Desk<'_>, req: Request<B>) -> Result<Response, Error> {
    let now = clock::now();
    let ct = content_type(req.headers());
    if ct.as_deref() == Some("application/json") {
        let body = read_body(req.into_body(), MAX_AUTH_BODY, desk.body_timeout).await?;
        let j: RefreshJson = serde_json::from_slice(&body)
            .map_err(|_| Error::BadRequest("expected JSON {\"refresh_token\"}"))?;
        return match desk.sessions.refresh(&j.refresh_token, now).await? {
            Some(issued) => Ok(token_response(desk, &issued, now)),
            None => Err(Error::Unauthenticated),
        };
    }
    // Cookie flow: CSRF-checked against the session the refresh cookie belongs to, before the
    // token is spent (a forged request must not be able to rotate it away).
    let headers = req.headers();
    let presented = desk
        .sessions
        .presented(headers)
        .refresh_cookie()
        .ok_or(Error::Unauthenticated)?;
    let hash = crate::token::refresh::parse(presented).ok_or(Error::Unauthenticated)?;
    let family = desk
        .sessions
        .store
        .family_of(hash, now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    desk.sessions.check_csrf(headers, &family.id, None, now)?;
    let issued = desk
        .sessions
        .refresh(presented, now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let mut r = json(
        StatusCode::OK,
        &serde_json::json!({"token_type": "Bearer", "expires_in": issued.claims.exp.saturating_sub(now)}),
    );
    add_cookies(&mut r, desk.sessions.session_cookies(&issued, now, false)?);
    Ok(r)
}

/// Permission that lets a signed-in user read `/auth/metrics`.
pub const METRICS_PERMISSION: &str = "dashgate:metrics";

/// Prometheus metrics, for `metrics.public`, the scraper's bearer token (`metrics.token_file`)
/// or a user with the `dashgate:metrics` permission.
async fn metrics<B: ClientBody>(
    desk: Desk<'_>,
    req: &Request<B>,
    carry: &mut Carry,
) -> Result<Response, Error> {
    let scraper = match (
        desk.scrape.token,
        desk.sessions.presented(req.headers()).bearer()?,
    ) {
        (Some(want), Some(got)) => csrf::secrets_equal(want, got),
        _ => false,
    };
    if !desk.scrape.public && !scraper {
        match carry
            .authenticate(desk, req.headers(), clock::now())
            .await?
        {
            Some(s) if s.claims.permissions.iter().any(|p| p == METRICS_PERMISSION) => {}
            Some(_) => {
                return Err(Error::Forbidden(
                    "metrics need the dashgate:metrics permission",
                ));
            }
            None => return Err(Error::Unauthenticated),
        }
    }
    let healthy = (0..desk.scrape.proxy.upstreams.len())
        .filter(|&i| desk.scrape.proxy.upstreams.is_healthy(i))
        .count();
    let text = desk.metrics.render(&[
        (
            "dashgate_upstreams_healthy",
            "Upstreams currently passing their health checks.",
            healthy as u64,
        ),
        (
            "dashgate_upstreams",
            "Configured upstreams.",
            desk.scrape.proxy.upstreams.len() as u64,
        ),
        (
            "dashgate_revocation_entries",
            "Entries in the in-memory revocation set.",
            desk.sessions.revocations.len() as u64,
        ),
        (
            "dashgate_policy_rules",
            "Rules of the policy in force.",
            desk.scrape.policy.current().rule_count() as u64,
        ),
    ]);
    let mut r = Response::new(full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn userinfo<B: ClientBody>(
    desk: Desk<'_>,
    req: &Request<B>,
    carry: &mut Carry,
) -> Result<Response, Error> {
    let s = carry
        .authenticate(desk, req.headers(), clock::now())
        .await?
        .ok_or(Error::Unauthenticated)?;
    let c = &s.claims;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "sub": c.sub, "roles": c.roles, "permissions": c.permissions, "exp": c.exp,
        }),
    ))
}

async fn logout_page<B: ClientBody>(
    desk: Desk<'_>,
    req: &Request<B>,
    carry: &mut Carry,
) -> Result<Response, Error> {
    let now = clock::now();
    let (username, token) = match carry.authenticate(desk, req.headers(), now).await? {
        Some(s) => {
            // A fresh token of this session for the form: the CSRF check accepts it beside the
            // session's cookie, which authenticate() has already repaired if it was missing.
            let token = csrf::issue(
                desk.sessions.keys.csrf_key(),
                csrf::Binding::Session(&s.claims.sid),
                now,
            )?;
            (Some(s.claims.sub.clone()), Some(token))
        }
        None => (None, None),
    };
    let mut r = html(
        StatusCode::OK,
        pages::logout_page(desk.prefix, token.as_deref(), username.as_deref()),
    );
    if let Some(provider) = desk.sign_in.oidc.as_deref() {
        pages::allow_form_targets(r.headers_mut(), &provider.end_session_origins());
    }
    Ok(r)
}

/// A password checked under brute-force regulation.
enum PasswordCheck {
    /// Too many recent failures: nothing was hashed; retry after this many seconds.
    Throttled(i64),
    /// Unknown user, disabled user or wrong password (the reason is for the log only); counted
    /// as a failure.
    Refused(&'static str),
    Accepted(crate::directory::User),
}

/// The one place a password is checked (login, password change). Counters for the client
/// address, the (canonical) username and the pair come first, before any password work; names
/// that are not valid usernames (`None`) share one counter. Then the sources in their order
/// ([`crate::sign_in::SignIn::check_password`]: one argon2id verification for local users and unknown names alike, a
/// bind for directory users). A failure is counted (and a lockout it starts is logged); a
/// success clears the username's counters. A source that is down is an error (503), not a
/// failure.
async fn check_password(
    desk: Desk<'_>,
    peer: SocketAddr,
    username: Option<&str>,
    password: Zeroizing<String>,
    now: i64,
) -> Result<PasswordCheck, Error> {
    let limits = desk.login;
    let attempt_keys = throttle::keys(peer.ip(), username.unwrap_or("-invalid-"));
    let counts = desk
        .sessions
        .store
        .attempts(attempt_keys.clone(), now)
        .await?;
    let now_ms = clock::now_ms();
    let wait = throttle::wait(&limits, &counts, now_ms);
    if wait > 0 {
        return Ok(PasswordCheck::Throttled(wait));
    }
    let reason = match desk.sign_in.check_password(username, password).await? {
        crate::sign_in::Checked::Accepted(u) => {
            desk.sessions
                .store
                .reset_attempts(throttle::keys_to_reset(peer.ip(), &u.username))
                .await?;
            return Ok(PasswordCheck::Accepted(u));
        }
        crate::sign_in::Checked::Refused(reason) => reason,
    };
    desk.sessions
        .store
        .record_failure(attempt_keys, now_ms, limits.window.max(limits.lockout))
        .await?;
    let user = username.unwrap_or("-");
    for (scope, seconds) in throttle::locks_started(&limits, &counts) {
        tracing::warn!(event = "lockout", scope, user, ip = %peer.ip(), seconds);
    }
    Ok(PasswordCheck::Refused(reason))
}

async fn logout<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<Response, Error> {
    let now = clock::now();
    let wants_json = content_type(req.headers()).as_deref() == Some("application/json")
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let headers = req.headers().clone();
    let ct = content_type(&headers);
    let body = read_body(req.into_body(), MAX_AUTH_BODY, desk.body_timeout).await?;

    // Which session is this? Read without refreshing it: a logout ends it, whatever state its
    // tokens are in.
    let named = desk.sessions.which_session(&headers, now).await?;
    if let Some(n) = named.as_ref().filter(|n| n.via == Via::Cookie) {
        let form_token = (ct.as_deref() == Some("application/x-www-form-urlencoded"))
            .then(|| {
                form_urlencoded::parse(&body)
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v.into_owned())
            })
            .flatten();
        desk.sessions
            .check_csrf(&headers, &n.sid, form_token.as_deref(), now)?;
    }
    let via = named.as_ref().map_or(Via::Cookie, |n| n.via);
    let (sid, claims, family_user) = match named {
        Some(Named {
            sid,
            user: NamedUser::Claims(c),
            ..
        }) => (Some(sid), Some(c), None),
        Some(Named {
            sid,
            user: NamedUser::Id(id),
            ..
        }) => (Some(sid), None, Some(id)),
        None => (None, None, None),
    };
    if let Some(sid) = &sid {
        desk.sessions.revoke_session(sid, now).await?;
    }
    if let Some(c) = &claims {
        desk.sessions.revoke_token(c, now).await?;
    }
    tracing::info!(event = "logout", user = claims.as_ref().map_or("-", |c| c.sub.as_str()), sid = sid.as_deref().unwrap_or("-"), ip = %peer.ip());

    // Users of the OpenID provider can be signed out there too (RP-initiated logout).
    let end_session = match &desk.sign_in.oidc {
        Some(provider) if sid.is_some() => {
            let user = match (&claims, family_user) {
                (Some(c), _) => desk.sign_in.directory.user(c.sub.clone()).await?,
                (None, Some(id)) => desk.sign_in.directory.user_by_id(id).await?,
                (None, None) => None,
            };
            match user {
                Some(u) if u.source == crate::sign_in::oidc::SOURCE => {
                    provider.end_session_url().await
                }
                _ => None,
            }
        }
        _ => None,
    };
    let mut r = if wants_json || via == Via::Bearer {
        let mut body = serde_json::json!({"status": "signed_out"});
        if let Some(url) = &end_session {
            body["end_session_url"] = serde_json::Value::String(url.clone());
        }
        json(StatusCode::OK, &body)
    } else if let Some(url) = &end_session {
        oidc_endpoints::redirect_to(url)?
    } else {
        redirect(StatusCode::SEE_OTHER, &format!("{}/login", desk.prefix))
    };
    // Cached pages and the app's browser storage (dcc.Store) go with the session. Not
    // "cookies": browsers apply that to the whole registrable domain, which would sign the user
    // out of sibling apps; the gateway's own cookies are removed explicitly below.
    r.headers_mut().insert(
        "clear-site-data",
        HeaderValue::from_static("\"cache\", \"storage\""),
    );
    add_cookies(&mut r, desk.sessions.clear_cookies());
    Ok(r)
}

/// The change-password form, for a signed-in browser session.
async fn password_page<B: ClientBody>(
    desk: Desk<'_>,
    req: &Request<B>,
    carry: &mut Carry,
) -> Result<Response, Error> {
    let now = clock::now();
    let prefix = desk.prefix;
    let Some(session) = carry.authenticate(desk, req.headers(), now).await? else {
        return Ok(redirect(StatusCode::SEE_OTHER, &format!("{prefix}/login")));
    };
    let notice = query_param(req, "changed")
        .and_then(|n| n.parse().ok())
        .map(|sessions_ended| pages::Notice::Changed { sessions_ended });
    password_form(desk, &session, notice, StatusCode::OK, now)
}

fn password_form(
    desk: Desk<'_>,
    session: &crate::session::Session,
    notice: Option<pages::Notice<'_>>,
    status: StatusCode,
    now: i64,
) -> Result<Response, Error> {
    let token = csrf::issue(
        desk.sessions.keys.csrf_key(),
        csrf::Binding::Session(&session.claims.sid),
        now,
    )?;
    let page = pages::password_page(desk.prefix, &token, &session.claims.sub, notice);
    Ok(html(status, page))
}

#[derive(Deserialize)]
struct PasswordJson {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
}

/// What a password change carried, whichever encoding it used.
struct PasswordChange {
    current: Zeroizing<String>,
    new: Zeroizing<String>,
    /// Form only: the repeated new password and the CSRF token.
    confirm: Option<Zeroizing<String>>,
    csrf_token: Option<String>,
    form: bool,
}

fn parse_password_change(ct: Option<&str>, body: &Bytes) -> Result<PasswordChange, Error> {
    match ct {
        Some("application/x-www-form-urlencoded") => {
            let mut fields: [Option<String>; 4] = Default::default();
            for (k, v) in form_urlencoded::parse(body) {
                let i = match k.as_ref() {
                    "current_password" => 0,
                    "new_password" => 1,
                    "new_password_confirm" => 2,
                    "csrf_token" => 3,
                    _ => continue,
                };
                if fields[i].is_some() {
                    return Err(Error::BadRequest("duplicate form field"));
                }
                fields[i] = Some(v.into_owned());
            }
            let [current, new, confirm, csrf_token] = fields;
            Ok(PasswordChange {
                current: Zeroizing::new(current.unwrap_or_default()),
                new: Zeroizing::new(new.unwrap_or_default()),
                confirm: Some(Zeroizing::new(confirm.unwrap_or_default())),
                csrf_token,
                form: true,
            })
        }
        Some("application/json") => {
            let j: PasswordJson = serde_json::from_slice(body).map_err(|_| {
                Error::BadRequest("expected JSON {\"current_password\", \"new_password\"}")
            })?;
            Ok(PasswordChange {
                current: j.current_password,
                new: j.new_password,
                confirm: None,
                csrf_token: None,
                form: false,
            })
        }
        _ => Err(Error::UnsupportedMediaType),
    }
}

/// Change one's own password: re-authenticate with the current one (regulated like a login),
/// set the new one, end every session of the user, and start a new one for this client.
async fn change_password<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: Request<B>,
    carry: &mut Carry,
) -> Result<Response, Error> {
    let now = clock::now();
    let headers = req.headers().clone();
    let body = read_body(req.into_body(), MAX_AUTH_BODY, desk.body_timeout).await?;
    let change = parse_password_change(content_type(&headers).as_deref(), &body)?;
    // The CSRF token is checked against the session the request names before anything
    // changes: an inline refresh spends the refresh token, and a refusal after it would leave
    // the browser with a spent one.
    let named = desk
        .sessions
        .which_session(&headers, now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    if named.via == Via::Cookie {
        desk.sessions
            .check_csrf(&headers, &named.sid, change.csrf_token.as_deref(), now)?;
    }
    let session = carry
        .authenticate(desk, &headers, now)
        .await?
        .filter(|s| s.claims.sid == named.sid)
        .ok_or(Error::Unauthenticated)?;
    // A refusal: the form again with the message, or a JSON error.
    let refuse = |status: StatusCode, message: &str, err: Error| {
        if change.form {
            password_form(
                desk,
                &session,
                Some(pages::Notice::Error(message)),
                status,
                now,
            )
        } else {
            Err(err)
        }
    };
    if let Some(confirm) = &change.confirm {
        if confirm.as_str() != change.new.as_str() {
            let msg = "The new passwords do not match.";
            return refuse(
                StatusCode::BAD_REQUEST,
                msg,
                Error::BadRequest("passwords differ"),
            );
        }
    }
    if let Err(e) = crate::directory::password::check_policy(&change.new) {
        let msg = e.to_string();
        return refuse(
            StatusCode::BAD_REQUEST,
            &msg,
            Error::BadRequest("password policy"),
        );
    }
    let user = session.claims.sub.clone();
    let source = desk
        .sign_in
        .directory
        .user(user.clone())
        .await?
        .map(|u| u.source);
    if source.as_deref() != Some(crate::directory::LOCAL) {
        // A directory's or a provider's password is changed there, never here.
        let msg = "Your password is managed by your organisation's directory; change it there.";
        return refuse(
            StatusCode::BAD_REQUEST,
            msg,
            Error::BadRequest("the password of this user is not managed by dashgate"),
        );
    }
    let account = match check_password(desk, peer, Some(&user), change.current, now).await? {
        PasswordCheck::Accepted(a) => a,
        PasswordCheck::Throttled(wait) => {
            tracing::warn!(event = "password_change", result = "throttled", user = %user, retry_after = wait);
            let msg = format!("Too many attempts. Try again in {wait} seconds.");
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &msg,
                Error::TooManyRequests(wait),
            )?;
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(r);
        }
        PasswordCheck::Refused(reason) => {
            tracing::info!(event = "password_change", result = "failure", reason, user = %user);
            let msg = "The current password is not right.";
            return refuse(StatusCode::UNAUTHORIZED, msg, Error::BadCredentials);
        }
    };
    let hash = desk.sign_in.hasher.hash(change.new).await?;
    desk.sign_in
        .directory
        .set_password(user.clone(), hash)
        .await?;
    let ended = desk
        .sessions
        .end_user_sessions(&account, "password changed", now)
        .await?;
    let issued = desk.sessions.start_session(&account, now).await?;
    tracing::info!(event = "password_change", result = "success", user = %user, sid = %issued.family.id, sessions_ended = ended);
    if change.form {
        let prefix = desk.prefix;
        let mut r = redirect(
            StatusCode::SEE_OTHER,
            &format!("{prefix}/password?changed={}", ended.saturating_sub(1)),
        );
        add_cookies(&mut r, desk.sessions.session_cookies(&issued, now, true)?);
        Ok(r)
    } else {
        Ok(token_response(desk, &issued, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table() {
        use Endpoint::*;
        for (sub, method, want) in [
            ("/login", Method::GET, LoginPage),
            ("/login", Method::HEAD, LoginPage),
            ("/login", Method::POST, Login),
            ("/logout", Method::POST, Logout),
            ("/password", Method::POST, ChangePassword),
            ("/refresh", Method::POST, Refresh),
            ("/metrics", Method::GET, Metrics),
            ("/oidc/callback", Method::GET, OidcCallback),
            ("/jwks.json", Method::HEAD, Jwks),
            ("/assets/dashgate.css", Method::GET, Asset),
        ] {
            assert_eq!(route(sub, &method).ok(), Some(want), "{method} {sub}");
        }
        for (sub, method) in [
            ("/login", Method::PUT),
            ("/refresh", Method::GET),
            ("/metrics", Method::HEAD),
            ("/oidc/callback", Method::POST),
            ("/assets/dashgate.css", Method::POST),
        ] {
            assert!(
                matches!(route(sub, &method), Err(Error::MethodNotAllowed)),
                "{method} {sub}"
            );
        }
        for sub in ["", "/", "/admin", "/login/", "/LOGIN", "/../login"] {
            assert!(
                matches!(route(sub, &Method::GET), Err(Error::NotFound)),
                "{sub:?}"
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn admit_refuses_before_any_handler_runs() {
        let form = ("content-type", "application/x-www-form-urlencoded");
        // Safe methods pass, cross-site or not.
        assert!(
            admit(
                &Method::GET,
                "/login",
                &headers(&[("sec-fetch-site", "cross-site")])
            )
            .is_ok()
        );
        // State-changing requests from another site are refused on every endpoint, known or not.
        for sub in ["/login", "/logout", "/refresh", "/nope"] {
            let cross = headers(&[("sec-fetch-site", "cross-site"), form]);
            assert!(
                matches!(admit(&Method::POST, sub, &cross), Err(Error::Forbidden(_))),
                "{sub}"
            );
        }
        let foreign = headers(&[("origin", "https://evil.test"), ("host", "gw.test"), form]);
        assert!(matches!(
            admit(&Method::POST, "/logout", &foreign),
            Err(Error::Forbidden(_))
        ));
        // The endpoints that read a form take nothing else.
        let text = headers(&[("content-type", "text/plain")]);
        for sub in ["/login", "/password"] {
            assert!(
                matches!(
                    admit(&Method::POST, sub, &text),
                    Err(Error::UnsupportedMediaType)
                ),
                "{sub}"
            );
            assert!(admit(&Method::POST, sub, &headers(&[form])).is_ok());
            let json = headers(&[("content-type", "application/json; charset=utf-8")]);
            assert!(admit(&Method::POST, sub, &json).is_ok());
        }
        assert!(
            admit(&Method::POST, "/logout", &text).is_ok(),
            "logout reads no body type"
        );
    }
}
