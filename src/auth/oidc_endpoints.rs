//! The browser side of "Sign in with …": `GET {prefix}/oidc/start` sends the browser to the
//! provider with a fresh flow cookie; `GET {prefix}/oidc/callback` checks the answer against
//! that cookie, lets the provider module exchange the code and validate the ID token, and then
//! signs the user in exactly like a password login.

use std::net::SocketAddr;

use http::{Request, StatusCode};

use super::Desk;
use super::{add_cookies, query_param, redirect, render_login};
use crate::clock;
use crate::directory::ExternalUser;
use crate::error::Error;
use crate::http_util::ClientBody;
use crate::http_util::Response;
use crate::session::{cookies, secs};
use crate::sign_in::oidc::{self, SignInError, flow};

/// What a user reads when the provider's answer is refused (the reason is in the log).
const SIGN_IN_FAILED: &str =
    "Signing in with your organisation's account did not work. Please try again.";
const FLOW_LOST: &str =
    "That sign-in was not started in this browser or took too long. Please try again.";
const NOT_ALLOWED: &str =
    "This account cannot sign in here. Ask an administrator if you think it should.";

fn provider(desk: Desk<'_>) -> Result<&oidc::Provider, Error> {
    desk.sign_in.provider().ok_or(Error::NotFound)
}

pub async fn start<B: ClientBody>(desk: Desk<'_>, req: &Request<B>) -> Result<Response, Error> {
    let provider = provider(desk)?;
    let next = redirect::safe_next(query_param(req, "next").as_deref(), desk.prefix);
    let now = clock::now();
    let started = flow::start(next, now)?;
    let url = match provider.authorization_url(&started).await {
        Ok(url) => url,
        Err(e @ Error::DirectoryUnavailable { .. }) => {
            tracing::warn!(event = "oidc_start", result = "unavailable", error = %e);
            return unavailable(desk, &started.pending.next, &e);
        }
        Err(e) => return Err(e),
    };
    let sealed = flow::seal(desk.sessions.keys.csrf_key(), &started.pending)?;
    let mut r = redirect_to(&url)?;
    add_cookies(
        &mut r,
        cookies::set_cookie(
            &desk.sessions.cookies,
            &desk.sessions.cookies.oidc,
            &sealed,
            Some(flow::FLOW_TTL),
            true,
        ),
    );
    Ok(r)
}

pub(super) fn redirect_to(url: &str) -> Result<Response, Error> {
    // Not `http_util::redirect`: these are the only places the gateway sends a browser
    // off-site, to the provider's endpoints from its own discovery document.
    let mut r = Response::new(crate::http_util::full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    let v = http::HeaderValue::from_str(url)
        .map_err(|_| Error::Internal("authorization URL is not a header value".to_owned()))?;
    r.headers_mut().insert(http::header::LOCATION, v);
    Ok(r)
}

/// The login page with a message and a status, the flow cookie removed.
fn back_to_login(
    desk: Desk<'_>,
    next: &str,
    message: &str,
    status: StatusCode,
) -> Result<Response, Error> {
    let mut r = render_login(desk, next, "", Some(message), status)?;
    add_cookies(
        &mut r,
        cookies::set_cookie(
            &desk.sessions.cookies,
            &desk.sessions.cookies.oidc,
            "",
            None,
            true,
        ),
    );
    Ok(r)
}

fn unavailable(desk: Desk<'_>, next: &str, e: &Error) -> Result<Response, Error> {
    let mut r = back_to_login(
        desk,
        next,
        &e.public_message(),
        StatusCode::SERVICE_UNAVAILABLE,
    )?;
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("5"),
    );
    Ok(r)
}

pub async fn callback<B: ClientBody>(
    desk: Desk<'_>,
    peer: SocketAddr,
    req: &Request<B>,
) -> Result<Response, Error> {
    let provider = provider(desk)?;
    let now = clock::now();
    let prefix = desk.prefix;
    let home = redirect::safe_next(None, prefix);
    let state = query_param(req, "state").unwrap_or_default();
    let pending = match flow::open(
        desk.sessions.keys.csrf_key(),
        cookies::get(req.headers(), &desk.sessions.cookies.oidc),
        &state,
        now,
    ) {
        Ok(p) => p,
        Err(reason) => {
            desk.metrics.login("failure");
            tracing::info!(event = "login", source = oidc::SOURCE, result = "failure", reason = %reason, ip = %peer.ip());
            return back_to_login(desk, &home, FLOW_LOST, StatusCode::BAD_REQUEST);
        }
    };
    let next = pending.next.clone();
    if let Some(error) = query_param(req, "error") {
        // access_denied (the user cancelled), login_required, …: the provider said no.
        desk.metrics.login("failure");
        let error: String = error
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        tracing::info!(event = "login", source = oidc::SOURCE, result = "failure", reason = "provider_error", error = %error, ip = %peer.ip());
        return back_to_login(desk, &next, SIGN_IN_FAILED, StatusCode::UNAUTHORIZED);
    }
    // RFC 9207: a provider that names itself in the answer must be ours (mix-up defence).
    if query_param(req, "iss").is_some_and(|iss| iss != provider.config().issuer) {
        desk.metrics.login("failure");
        tracing::warn!(event = "login", source = oidc::SOURCE, result = "failure", reason = "iss_mismatch", ip = %peer.ip());
        return back_to_login(desk, &next, SIGN_IN_FAILED, StatusCode::BAD_REQUEST);
    }
    let Some(code) = query_param(req, "code").filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return back_to_login(desk, &next, SIGN_IN_FAILED, StatusCode::BAD_REQUEST);
    };
    let leeway = secs(desk.sessions.token.leeway);
    let identity = match provider.finish(&code, &pending, now, leeway).await {
        Ok(identity) => identity,
        Err(SignInError::Unavailable(e)) => {
            desk.metrics.login("unavailable");
            tracing::warn!(event = "login", source = oidc::SOURCE, result = "unavailable", error = %e, ip = %peer.ip());
            return unavailable(desk, &next, &e);
        }
        Err(SignInError::Refused(reason)) => {
            desk.metrics.login("failure");
            tracing::warn!(event = "login", source = oidc::SOURCE, result = "failure", reason = %reason, ip = %peer.ip());
            return back_to_login(desk, &next, SIGN_IN_FAILED, StatusCode::UNAUTHORIZED);
        }
    };
    tracing::debug!(user = %identity.username, groups = ?identity.groups, roles = ?identity.roles, "oidc claims");
    let external = ExternalUser {
        source: oidc::SOURCE,
        username: identity.username.clone(),
        external_id: identity.subject,
        id_is_stable: true,
        roles: identity.roles,
    };
    let user = match desk.sign_in.provisioned(external).await? {
        crate::sign_in::Checked::Accepted(u) => u,
        crate::sign_in::Checked::Refused(reason) => {
            desk.metrics.login("failure");
            tracing::info!(event = "login", source = oidc::SOURCE, result = "failure", reason, user = %identity.username, ip = %peer.ip());
            return back_to_login(desk, &next, NOT_ALLOWED, StatusCode::FORBIDDEN);
        }
    };
    let previous = desk.sessions.presented_session(req.headers());
    let issued = super::signed_in(desk, peer, &user, previous, now).await?;
    super::browser_signed_in(desk, &issued, &next, &desk.sessions.cookies.oidc, now)
}
