//! Sessions: who is making this request. [`Sessions`] is the session service: it owns the
//! signing keys, the state store, the revocation set and the caches, and it is the only
//! reader of credentials ([`Sessions::presented`] reads them, once, for everyone). It verifies the bearer token or the access cookie, and when the
//! access cookie is missing or expired but the refresh cookie is good, refreshes inline (Dash
//! apps never call a refresh endpoint): the request goes on authenticated and its response
//! carries the new cookies. It starts, refreshes and ends sessions, builds their cookies, and
//! makes the one CSRF decision.

pub mod cookies;
pub mod csrf;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header};

use crate::config::{SessionConfig, SessionMode, TokenConfig};
use crate::directory::{Directory, User};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::{Family, RefreshPolicy, Revocation, RevocationKind, Rotation};
use crate::store::{RevocationSet, Store};
use crate::token::keys::KeyRing;
use crate::token::verified::VerifiedTokens;
use crate::token::{AccessClaims, jwt, refresh};

/// How the request proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`: no ambient credential, so no CSRF check.
    Bearer,
    /// Cookies: unsafe methods need the CSRF token.
    Cookie,
}

/// An authenticated request.
#[derive(Debug)]
pub struct Session {
    /// Shared with the cache of verified tokens: a request clones a pointer, not the claims.
    pub claims: Arc<AccessClaims>,
    pub via: Via,
    /// Cookies to set on the response (after an inline refresh, or a missing CSRF cookie).
    pub set_cookies: Vec<HeaderValue>,
}

/// The session service: everything a session is made of and checked against.
pub struct Sessions {
    pub token: TokenConfig,
    pub settings: SessionConfig,
    pub keys: KeyRing,
    pub cookies: cookies::CookieNames,
    pub store: Store,
    pub revocations: Arc<RevocationSet>,
    /// Who a refreshed session belongs to now (disabled users end there).
    pub directory: Directory,
    pub metrics: Arc<Metrics>,
    /// Server-mode session claims (`session.mode = "server"`).
    pub session_cache: SessionCache,
    /// Access tokens already verified (signature and claims), so a repeat skips Ed25519.
    pub verified: VerifiedTokens,
}

/// How often an open connection (a WebSocket) checks whether its session still stands.
pub const SESSION_WATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves when the session of `claims` ends for this replica: its access token expires, or
/// it (its user, its token) is revoked — at most [`SESSION_WATCH`] after the revocation
/// reaches this replica. For connections that outlive the request that opened them.
pub async fn session_end(revocations: Arc<crate::store::RevocationSet>, claims: Arc<AccessClaims>) {
    let mut tick = tokio::time::interval(SESSION_WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if crate::clock::now() >= claims.exp || revocations.is_revoked(&claims) {
            return;
        }
    }
}

/// The outcome of looking at a request's credentials.
#[derive(Debug)]
pub enum Outcome {
    Authenticated(Session),
    /// No usable credentials. `clear` lists `Set-Cookie` values that remove dead cookies.
    Anonymous {
        clear: Vec<HeaderValue>,
    },
}

/// Tokens of a freshly started or refreshed session.
pub struct Issued {
    pub claims: AccessClaims,
    pub access_token: String,
    /// `None` inside the refresh grace window: the client keeps the refresh token it has.
    pub refresh_token: Option<String>,
    pub family: Family,
}

impl Sessions {
    pub fn refresh_policy(&self) -> RefreshPolicy {
        let s = &self.settings;
        RefreshPolicy {
            idle: secs(s.refresh_idle_ttl),
            absolute: secs(s.refresh_absolute_ttl),
            grace: secs(s.refresh_grace),
        }
    }

    fn expect(&self, now: i64) -> jwt::Expect<'_> {
        jwt::Expect {
            typ: jwt::ACCESS_TYP,
            issuer: &self.token.issuer,
            audience: &self.token.audience,
            now,
            leeway: secs(self.token.leeway),
        }
    }

    /// Verify an access token: signature, claims, and the revocation set.
    pub fn verify_access(&self, token: &str, now: i64) -> Option<Arc<AccessClaims>> {
        let claims = self
            .verified
            .verify(token, &self.keys.current(), &self.expect(now))
            .map_err(|e| tracing::debug!(reason = %e, "access token rejected"))
            .ok()?;
        if self.revocations.is_revoked(&claims) {
            tracing::debug!(sid = %claims.sid, "access token revoked");
            return None;
        }
        Some(claims)
    }

    /// Sign an access token for `user` in session `family`.
    pub fn issue_access(
        &self,
        user: &User,
        family: &Family,
        now: i64,
    ) -> Result<(AccessClaims, String), Error> {
        let claims = self.claims_for(user, family, now)?;
        let token = jwt::sign(&self.keys.current(), jwt::ACCESS_TYP, &claims)?;
        Ok((claims, token))
    }

    /// What a request of `user` in session `family` may do, valid for one access-token
    /// lifetime.
    fn claims_for(&self, user: &User, family: &Family, now: i64) -> Result<AccessClaims, Error> {
        Ok(AccessClaims {
            iss: self.token.issuer.clone(),
            aud: self.token.audience.clone(),
            sub: user.username.clone(),
            roles: user.roles.clone(),
            permissions: user.permissions.clone(),
            sid: family.id.clone(),
            jti: crate::token::random_id()?,
            iat: now,
            nbf: now,
            exp: now.saturating_add(secs(self.token.access_ttl)),
        })
    }

    /// `session.mode = "server"`: the session a session-id cookie names, looked up in the
    /// state store on every request (so a revocation anywhere is final at once). The user's
    /// roles are read from the directory at most once per access-token lifetime per session,
    /// the same bound on role changes as in JWT mode.
    async fn server_session(&self, token: &str, now: i64) -> Result<Option<AccessClaims>, Error> {
        let Some(hash) = refresh::parse(token) else {
            return Ok(None);
        };
        let Some(family) = self.store.touch(hash, now, self.refresh_policy()).await? else {
            return Ok(None);
        };
        if let Some(claims) = self.session_cache.get(&family.id, now) {
            return Ok(Some(claims));
        }
        let Some(user) = self.live_user(&family, now).await? else {
            return Ok(None);
        };
        let claims = self.claims_for(&user, &family, now)?;
        self.session_cache.put(claims.clone(), now);
        Ok(Some(claims))
    }

    /// A new session (login): always a new family, new tokens and a new CSRF token, so nothing
    /// from before the login keeps working (session fixation).
    pub async fn start_session(&self, user: &User, now: i64) -> Result<Issued, Error> {
        let (family, refresh_token) = self
            .store
            .create_family(user.id, now, self.refresh_policy())
            .await?;
        let (claims, access_token) = self.issue_access(user, &family, now)?;
        Ok(Issued {
            claims,
            access_token,
            refresh_token: Some(refresh_token),
            family,
        })
    }

    /// Present a refresh token. `Ok(None)` means it is not (or no longer) good.
    pub async fn refresh(&self, presented: &str, now: i64) -> Result<Option<Issued>, Error> {
        let Some(hash) = refresh::parse(presented) else {
            return Ok(None);
        };
        let (family, refresh_token) = match self
            .store
            .rotate(hash, now, self.refresh_policy())
            .await?
        {
            Rotation::Rotated { family, token } => {
                self.metrics.refresh("rotated");
                (family, Some(token))
            }
            Rotation::Grace { family } => {
                self.metrics.refresh("grace");
                (family, None)
            }
            Rotation::Reused { family_id, user_id } => {
                self.metrics.refresh("reused");
                let user = match self.directory.user_by_id(user_id).await {
                    Ok(Some(u)) => u.username,
                    _ => format!("#{user_id}"),
                };
                tracing::warn!(event = "refresh_reuse", user = %user, sid = %family_id, "refresh token reused: session revoked");
                self.revoke_session(&family_id, now).await?;
                return Ok(None);
            }
            Rotation::Invalid => {
                self.metrics.refresh("invalid");
                return Ok(None);
            }
        };
        let Some(user) = self.live_user(&family, now).await? else {
            return Ok(None);
        };
        let (claims, access_token) = self.issue_access(&user, &family, now)?;
        Ok(Some(Issued {
            claims,
            access_token,
            refresh_token,
            family,
        }))
    }

    /// The user a session belongs to, if they still exist and are enabled; otherwise the
    /// session is revoked on the spot.
    async fn live_user(&self, family: &Family, now: i64) -> Result<Option<User>, Error> {
        match self.directory.user_by_id(family.user_id).await? {
            Some(u) if !u.disabled => Ok(Some(u)),
            _ => {
                self.store
                    .revoke_family(family.id.clone(), "user disabled or removed", now)
                    .await?;
                Ok(None)
            }
        }
    }

    /// Revoke a session everywhere: its refresh family in the store and its access tokens in
    /// the revocation set (until the longest they could live).
    pub async fn revoke_session(&self, sid: &str, now: i64) -> Result<(), Error> {
        self.session_cache.forget(sid);
        self.store
            .revoke_family(sid.to_owned(), "logout", now)
            .await?;
        let r = Revocation {
            kind: RevocationKind::Session,
            value: sid.to_owned(),
            created_at: now,
            expires_at: self.revocation_horizon(now),
        };
        self.revocations.insert(r.clone());
        self.metrics.revocation();
        self.store.add_revocation(r).await
    }

    /// End every session of a user at once, in the store and in this replica's revocation set
    /// (other replicas learn it from the store). Returns how many sessions ended.
    pub async fn end_user_sessions(
        &self,
        user: &User,
        reason: &'static str,
        now: i64,
    ) -> Result<usize, Error> {
        let made = self
            .store
            .end_user_sessions(
                user.id,
                &user.username,
                reason,
                now,
                self.revocation_horizon(now),
            )
            .await?;
        let mut ended = 0;
        for r in made {
            if r.kind == RevocationKind::Session {
                self.session_cache.forget(&r.value);
                self.metrics.revocation();
                ended += 1;
            }
            self.revocations.insert(r);
        }
        Ok(ended)
    }

    /// Blocklist one access token by `jti` until it expires.
    pub async fn revoke_token(&self, claims: &AccessClaims, now: i64) -> Result<(), Error> {
        let r = Revocation {
            kind: RevocationKind::Token,
            value: claims.jti.clone(),
            created_at: now,
            expires_at: claims.exp.saturating_add(secs(self.token.leeway)),
        };
        self.revocations.insert(r.clone());
        self.store.add_revocation(r).await
    }

    /// After this time no access token issued now can be valid.
    pub fn revocation_horizon(&self, now: i64) -> i64 {
        self.token.revocation_horizon(now)
    }

    /// `Set-Cookie` values for a newly issued session. The CSRF cookie is bound to the session
    /// id, which a refresh keeps, so it is only (re)issued when `with_csrf` says so.
    pub fn session_cookies(
        &self,
        issued: &Issued,
        now: i64,
        with_csrf: bool,
    ) -> Result<Vec<HeaderValue>, Error> {
        let names = &self.cookies;
        let lifetime = issued.family.absolute_expires_at.saturating_sub(now);
        let mut out = Vec::with_capacity(3);
        if self.settings.mode == SessionMode::Server {
            // One opaque cookie; the record is in the store.
            if let Some(r) = &issued.refresh_token {
                out.extend(cookies::set_cookie(
                    names,
                    &names.session,
                    r,
                    Some(lifetime),
                    true,
                ));
            }
            out.extend(self.csrf_cookie(&issued.family.id, now, lifetime)?);
            return Ok(out);
        }
        let access_age = issued.claims.exp.saturating_sub(now);
        out.extend(cookies::set_cookie(
            names,
            &names.access,
            &issued.access_token,
            Some(access_age),
            true,
        ));
        if let Some(r) = &issued.refresh_token {
            out.extend(cookies::set_cookie(
                names,
                &names.refresh,
                r,
                Some(lifetime),
                true,
            ));
        }
        if with_csrf {
            out.extend(self.csrf_cookie(&issued.family.id, now, lifetime)?);
        }
        Ok(out)
    }

    /// A fresh CSRF token for session `sid`, under every CSRF cookie name.
    pub fn csrf_cookie(
        &self,
        sid: &str,
        now: i64,
        max_age: i64,
    ) -> Result<Vec<HeaderValue>, Error> {
        self.csrf_cookies_named(&self.cookies.csrf.current().cookies, sid, now, max_age)
    }

    /// One fresh token for session `sid` under each of `names`.
    pub fn csrf_cookies_named(
        &self,
        names: &[String],
        sid: &str,
        now: i64,
        max_age: i64,
    ) -> Result<Vec<HeaderValue>, Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let token = csrf::issue(self.keys.csrf_key(), csrf::Binding::Session(sid), now)?;
        Ok(names
            .iter()
            .filter_map(|name| {
                cookies::set_cookie(&self.cookies, name, &token, Some(max_age), false)
            })
            .collect())
    }

    /// The request's CSRF cookie is lost or foreign: hand out a good one so the next request
    /// works.
    fn repair_csrf(
        &self,
        headers: &HeaderMap,
        claims: &AccessClaims,
        now: i64,
    ) -> Result<Vec<HeaderValue>, Error> {
        let missing = self.csrf_cookies_missing(headers, &claims.sid, now);
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let age = claims
            .exp
            .saturating_sub(now)
            .max(secs(self.settings.refresh_idle_ttl));
        self.csrf_cookies_named(&missing, &claims.sid, now, age)
    }

    /// `Set-Cookie` values that remove all of the gateway's session cookies.
    pub fn clear_cookies(&self) -> Vec<HeaderValue> {
        let n = &self.cookies;
        let csrf = n.csrf.current();
        [&n.access, &n.refresh, &n.session]
            .into_iter()
            .map(|name| (name, true))
            .chain(csrf.cookies.iter().map(|name| (name, false)))
            .filter_map(|(name, http_only)| cookies::set_cookie(n, name, "", None, http_only))
            .collect()
    }

    /// Who is this? See the module docs for the order of checks.
    pub async fn authenticate(&self, headers: &HeaderMap, now: i64) -> Result<Outcome, Error> {
        let presented = self.presented(headers);
        if let Some(token) = presented.bearer()? {
            return match self.verify_access(token, now) {
                Some(claims) => Ok(Outcome::Authenticated(Session {
                    claims,
                    via: Via::Bearer,
                    set_cookies: Vec::new(),
                })),
                None => Err(Error::Unauthenticated),
            };
        }
        if self.settings.mode == SessionMode::Server {
            let Some(token) = presented.session_cookie() else {
                return Ok(Outcome::Anonymous { clear: Vec::new() });
            };
            return match self.server_session(token, now).await? {
                Some(claims) => {
                    let set_cookies = self.repair_csrf(headers, &claims, now)?;
                    Ok(Outcome::Authenticated(Session {
                        claims: claims.into(),
                        via: Via::Cookie,
                        set_cookies,
                    }))
                }
                None => Ok(Outcome::Anonymous {
                    clear: self.clear_cookies(),
                }),
            };
        }
        if let Some(claims) = presented
            .access_cookie()
            .and_then(|t| self.verify_access(t, now))
        {
            let set_cookies = self.repair_csrf(headers, &claims, now)?;
            return Ok(Outcome::Authenticated(Session {
                claims,
                via: Via::Cookie,
                set_cookies,
            }));
        }
        let has_any = presented.access_cookie().is_some();
        let Some(refresh_token) = presented.refresh_cookie() else {
            let clear = if has_any {
                self.clear_cookies()
            } else {
                Vec::new()
            };
            return Ok(Outcome::Anonymous { clear });
        };
        match self.refresh(refresh_token, now).await? {
            Some(issued) => {
                let missing = self.csrf_cookies_missing(headers, &issued.family.id, now);
                let mut set_cookies = self.session_cookies(&issued, now, false)?;
                let age = secs(self.settings.refresh_idle_ttl);
                set_cookies.extend(self.csrf_cookies_named(
                    &missing,
                    &issued.family.id,
                    now,
                    age,
                )?);
                Ok(Outcome::Authenticated(Session {
                    claims: issued.claims.into(),
                    via: Via::Cookie,
                    set_cookies,
                }))
            }
            None => Ok(Outcome::Anonymous {
                clear: self.clear_cookies(),
            }),
        }
    }
}

impl Sessions {
    /// The CSRF cookie names under which the request carries no valid token of session `sid`.
    fn csrf_cookies_missing(&self, headers: &HeaderMap, sid: &str, now: i64) -> Vec<String> {
        let names = self.cookies.csrf.current();
        names
            .cookies
            .iter()
            .filter(|name| {
                !cookies::get(headers, name).is_some_and(|t| {
                    csrf::is_valid(
                        self.keys.csrf_key(),
                        t,
                        csrf::Binding::Session(sid),
                        now,
                        None,
                    )
                })
            })
            .cloned()
            .collect()
    }

    /// The CSRF check of a cookie session, for every state-changing request that needs one
    /// ([`csrf::required`]): proxied requests, and logout, refresh and password changes under
    /// the auth prefix. Fetch Metadata / `Origin` first, then the session's signed token — the
    /// form field when a form carried one, otherwise the `X-CSRFToken` header — beside the
    /// `_csrf_token` cookie.
    pub fn check_csrf(
        &self,
        headers: &HeaderMap,
        sid: &str,
        form_token: Option<&str>,
        now: i64,
    ) -> Result<(), Error> {
        csrf::check_origin(headers)?;
        let submitted = form_token.or_else(|| self.cookies.csrf.submitted(headers));
        // The cookie that comes back with it: the one holding the same token if there is
        // one, otherwise the first CSRF cookie present.
        let names = self.cookies.csrf.current();
        let present = || {
            names
                .cookies
                .iter()
                .filter_map(|n| cookies::get(headers, n))
        };
        let cookie = present()
            .find(|c| submitted.is_some_and(|s| csrf::secrets_equal(c, s)))
            .or_else(|| present().next());
        csrf::check(
            self.keys.csrf_key(),
            cookie,
            submitted,
            csrf::Binding::Session(sid),
            now,
            None,
        )
    }

    /// Meet what [`csrf::demand`] decided a request to the app must show; `sid` is the
    /// session's (for [`csrf::Demand::Token`]).
    pub fn meet_demand(
        &self,
        demand: csrf::Demand,
        headers: &HeaderMap,
        sid: &str,
        now: i64,
    ) -> Result<(), Error> {
        match demand {
            csrf::Demand::Nothing => Ok(()),
            csrf::Demand::SameOrigin => csrf::check_origin(headers),
            csrf::Demand::HandshakeOrigin => csrf::check_handshake_origin(headers),
            csrf::Demand::Token => self.check_csrf(headers, sid, None, now),
        }
    }

    /// Which session a request names, read without changing anything (no inline refresh, no
    /// rotation): a bearer token's, a valid access cookie's, or — the access cookie missing or
    /// expired — the family of the refresh cookie (in server mode, of the session cookie).
    /// What must be checked before anything changes state (the CSRF token of `/auth`
    /// endpoints) and what logout ends come from here. A bearer token that does not verify is
    /// an error, not "no session".
    pub async fn which_session(
        &self,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Option<Named>, Error> {
        let presented = self.presented(headers);
        if let Some(token) = presented.bearer()? {
            let claims = self
                .verify_access(token, now)
                .ok_or(Error::Unauthenticated)?;
            return Ok(Some(Named {
                sid: claims.sid.clone(),
                via: Via::Bearer,
                user: NamedUser::Claims(claims),
            }));
        }
        if let Some(claims) = presented
            .access_cookie()
            .and_then(|t| self.verify_access(t, now))
        {
            return Ok(Some(Named {
                sid: claims.sid.clone(),
                via: Via::Cookie,
                user: NamedUser::Claims(claims),
            }));
        }
        let Some(hash) = presented.family_token().and_then(refresh::parse) else {
            return Ok(None);
        };
        Ok(self.store.family_of(hash, now).await?.map(|f| Named {
            sid: f.id,
            via: Via::Cookie,
            user: NamedUser::Id(f.user_id),
        }))
    }
}

impl Sessions {
    /// The one reading of a request's session credentials (see [`Presented`]).
    pub fn presented<'h>(&'h self, headers: &'h HeaderMap) -> Presented<'h> {
        Presented {
            headers,
            names: &self.cookies,
        }
    }

    /// The session a browser's cookies hold beyond the access token, as its refresh-family key.
    pub fn presented_session(&self, headers: &HeaderMap) -> Option<refresh::RefreshKey> {
        self.presented(headers)
            .family_token()
            .and_then(refresh::parse)
    }
}

/// How a request names its session: every session credential it presents, read once and in
/// one place ([`Sessions::presented`]), nothing verified yet. Everything that asks "which
/// session is this?" — authentication with inline refresh, logout and password change
/// ([`Sessions::which_session`]), the session a login replaces, the refresh endpoint — starts here.
#[derive(Clone, Copy)]
pub struct Presented<'h> {
    headers: &'h HeaderMap,
    names: &'h cookies::CookieNames,
}

impl<'h> Presented<'h> {
    /// An `Authorization: Bearer` token; a malformed `Authorization` is an error, not "none".
    pub fn bearer(&self) -> Result<Option<&'h str>, Error> {
        bearer(self.headers)
    }

    /// The access cookie's token (JWT mode).
    pub fn access_cookie(&self) -> Option<&'h str> {
        cookies::get(self.headers, &self.names.access)
    }

    /// The refresh cookie's token (JWT mode).
    pub fn refresh_cookie(&self) -> Option<&'h str> {
        cookies::get(self.headers, &self.names.refresh)
    }

    /// The session cookie's token (server mode).
    pub fn session_cookie(&self) -> Option<&'h str> {
        cookies::get(self.headers, &self.names.session)
    }

    /// The refresh-family token the browser holds beyond the access token: the refresh
    /// cookie's, or in server mode the session cookie's.
    pub fn family_token(&self) -> Option<&'h str> {
        self.refresh_cookie().or_else(|| self.session_cookie())
    }
}

/// A session as [`Sessions::which_session`] found it.
#[derive(Debug)]
pub struct Named {
    /// The session (refresh family) id.
    pub sid: String,
    pub via: Via,
    pub user: NamedUser,
}

/// Whose session it is: the claims of a valid access token, or only the user id of a family.
#[derive(Debug)]
pub enum NamedUser {
    Claims(Arc<AccessClaims>),
    Id(i64),
}

/// Server-mode claims by session id, each valid until its `exp`.
#[derive(Default)]
pub struct SessionCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, AccessClaims>>,
}

impl SessionCache {
    /// Above this many entries, expired ones are swept out on insert.
    const SWEEP_AT: usize = 10_000;

    fn get(&self, sid: &str, now: i64) -> Option<AccessClaims> {
        let map = self.entries.lock().ok()?;
        map.get(sid).filter(|c| c.exp > now).cloned()
    }

    fn put(&self, claims: AccessClaims, now: i64) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= Self::SWEEP_AT {
                map.retain(|_, c| c.exp > now);
            }
            map.insert(claims.sid.clone(), claims);
        }
    }

    fn forget(&self, sid: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(sid);
        }
    }
}

/// The bearer token, if the request carries `Authorization: Bearer …`. Other schemes are not
/// ours and are left for the upstream. The parser behind [`Presented::bearer`] (callers read
/// credentials through [`Sessions::presented`]); public for the fuzz target.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else {
        return Err(Error::BadRequest("malformed Authorization header"));
    };
    let Some((scheme, token)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    Ok(Some(token.trim()))
}

pub fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
