//! CSRF defence: the signed double-submit token of the OWASP cheat sheet (an HMAC over the
//! session id and a random nonce), compared in constant time, plus Fetch Metadata / `Origin`
//! checks. The token lives in `_csrf_token`, which dash-renderer copies into `X-CSRFToken` on
//! every request, so an unmodified Dash app passes the check with no code of its own.

use hmac::{Hmac, Mac};
use http::{HeaderMap, header};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::token::{b64, random_bytes, unb64};

/// Header dash-renderer sends by default (compared case-insensitively, as all header names are).
pub const HEADER: &str = "x-csrftoken";
/// Cookie dash-renderer reads by default.
pub const COOKIE: &str = "_csrf_token";
/// Most names of each kind the gateway answers to (defaults and configured ones included).
const MAX_NAMES: usize = 8;
/// The names the session's CSRF token travels under: dash-renderer's defaults, the operator's
/// (`dash.csrf_cookie_name`, `dash.csrf_header_name`), and the ones an app declares in its
/// `_dash-config` (Dash 4.2's `csrf_token_name`, `csrf_header_name`), learned when the gateway
/// reads it. The token is the same under every name; the names only decide where the
/// app's renderer finds it and where it sends it back.
#[derive(Debug)]
pub struct CsrfNames {
    set: std::sync::RwLock<std::sync::Arc<NameSet>>,
}

/// One moment's names; the first of each list is the default.
#[derive(Debug, Clone)]
pub struct NameSet {
    pub cookies: Vec<String>,
    pub headers: Vec<http::HeaderName>,
}

impl Default for CsrfNames {
    fn default() -> Self {
        CsrfNames {
            set: std::sync::RwLock::new(std::sync::Arc::new(NameSet {
                cookies: vec![COOKIE.to_owned()],
                headers: vec![http::HeaderName::from_static(HEADER)],
            })),
        }
    }
}

impl CsrfNames {
    /// The names in use now.
    pub fn current(&self) -> std::sync::Arc<NameSet> {
        match self.set.read() {
            Ok(s) => std::sync::Arc::clone(&s),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Is `name` (compared case-insensitively) one of the CSRF cookies?
    pub fn is_cookie(&self, name: &str) -> bool {
        let set = match self.set.read() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.cookies.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// Answer to a cookie and/or header name too, if they may be CSRF names: a cookie name of
    /// plain token characters that is no other cookie of the gateway's (`taken`) and not a
    /// `__Host-`/`__Secure-` one; a header name that carries nothing else the gateway reads
    /// or sets. Returns what was refused, for the caller to report.
    pub fn learn(
        &self,
        cookie: Option<&str>,
        header: Option<&str>,
        taken: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut refused = Vec::new();
        let cookie = cookie.filter(|c| {
            let ok = crate::http_util::is_plain_cookie_name(c) && !taken(c);
            if !ok {
                refused.push(format!("cookie {c:?}"));
            }
            ok
        });
        let header = header.and_then(|h| {
            let name = http::HeaderName::from_bytes(h.as_bytes())
                .ok()
                .filter(|n| crate::http_util::is_free_header_name(n.as_str()));
            if name.is_none() {
                refused.push(format!("header {h:?}"));
            }
            name
        });
        let now = self.current();
        let new_cookie = cookie.filter(|c| !now.cookies.iter().any(|k| k.eq_ignore_ascii_case(c)));
        let new_header = header.filter(|h| !now.headers.contains(h));
        if new_cookie.is_none() && new_header.is_none() {
            return refused;
        }
        let mut set = match self.set.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = NameSet::clone(&set);
        if let Some(c) = new_cookie {
            if next.cookies.len() < MAX_NAMES
                && !next.cookies.iter().any(|k| k.eq_ignore_ascii_case(c))
            {
                next.cookies.push(c.to_owned());
            } else if next.cookies.len() >= MAX_NAMES {
                refused.push(format!("cookie {c:?} (too many names)"));
            }
        }
        if let Some(h) = new_header {
            if next.headers.len() < MAX_NAMES && !next.headers.contains(&h) {
                next.headers.push(h);
            } else if next.headers.len() >= MAX_NAMES {
                refused.push(format!("header {:?} (too many names)", h.as_str()));
            }
        }
        *set = std::sync::Arc::new(next);
        refused
    }

    /// The token a request submitted: the first CSRF header it carries.
    pub fn submitted<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.current()
            .headers
            .iter()
            .find_map(|n| headers.get(n))
            .and_then(|v| v.to_str().ok())
    }
}

/// How long a login-form token stays valid.
pub const LOGIN_TOKEN_TTL: i64 = 2 * 3600;

/// What a token is bound to.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// A signed-in session (refresh family id).
    Session(&'a str),
    /// The login form, before there is a session.
    Login,
}

fn mac(key: &[u8; 32], binding: Binding<'_>, ts: &str, nonce: &str) -> Result<Hmac<Sha256>, Error> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| Error::Internal(format!("hmac: {e}")))?;
    m.update(b"dashgate-csrf-v1\0");
    match binding {
        Binding::Session(sid) => {
            m.update(b"sid\0");
            m.update(sid.as_bytes());
        }
        Binding::Login => m.update(b"login"),
    }
    m.update(b"\0");
    m.update(ts.as_bytes());
    m.update(b"\0");
    m.update(nonce.as_bytes());
    Ok(m)
}

/// A new token `<issued-at>.<nonce>.<mac>`; only cookie-safe characters.
pub fn issue(key: &[u8; 32], binding: Binding<'_>, now: i64) -> Result<String, Error> {
    let nonce = b64(&random_bytes::<16>()?);
    let ts = now.to_string();
    let tag = mac(key, binding, &ts, &nonce)?.finalize().into_bytes();
    Ok(format!("{ts}.{nonce}.{}", b64(&tag)))
}

/// Was `token` issued by us for `binding` (and, with `max_age`, recently enough)?
pub fn is_valid(
    key: &[u8; 32],
    token: &str,
    binding: Binding<'_>,
    now: i64,
    max_age: Option<i64>,
) -> bool {
    if token.len() > 256 {
        return false;
    }
    let mut parts = token.split('.');
    let (Some(ts), Some(nonce), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued) = ts.parse::<i64>() else {
        return false;
    };
    if ts != issued.to_string() {
        return false;
    }
    if max_age
        .is_some_and(|age| now.saturating_sub(issued) > age || issued > now.saturating_add(60))
    {
        return false;
    }
    let Some(tag) = unb64(tag) else { return false };
    match mac(key, binding, ts, nonce) {
        Ok(m) => m.verify_slice(&tag).is_ok(),
        Err(_) => false,
    }
}

/// Constant-time equality of two secrets (the length is not secret).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Signed double submit: both the cookie and the submitted copy must be tokens we issued for
/// this binding. They need not be byte-equal: a response to a concurrent request may replace
/// the cookie with another token of the same session between the moment dash-renderer copied
/// it into the header and the moment the browser attached the cookie, and refusing that would
/// break a page firing several callbacks at once. An attacker still needs a token signed for
/// the victim's session in both places, which only the gateway can make.
pub fn check(
    key: &[u8; 32],
    cookie: Option<&str>,
    submitted: Option<&str>,
    binding: Binding<'_>,
    now: i64,
    max_age: Option<i64>,
) -> Result<(), Error> {
    let (Some(cookie), Some(submitted)) = (cookie, submitted) else {
        return Err(Error::Forbidden("missing CSRF token"));
    };
    let same = secrets_equal(cookie, submitted);
    let submitted_ok = is_valid(key, submitted, binding, now, max_age);
    let cookie_ok = same || is_valid(key, cookie, binding, now, max_age);
    if !(submitted_ok && cookie_ok) {
        return Err(Error::Forbidden("invalid CSRF token"));
    }
    Ok(())
}

/// Does a request need the session's CSRF token? Every state-changing method of a cookie
/// session does; safe methods change nothing, and a bearer token is no ambient credential a
/// foreign site could make a browser send.
pub fn required(method: &http::Method, via: super::Via) -> bool {
    !is_safe_method(method) && via == super::Via::Cookie
}

/// What a request to the app must show to prove it comes from this site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Nothing: a safe method, no session, or a bearer token.
    Nothing,
    /// Fetch Metadata / `Origin`, when present, name this origin ([`check_origin`]).
    SameOrigin,
    /// A WebSocket handshake of a cookie session: `Origin` present and this origin
    /// ([`check_handshake_origin`]).
    HandshakeOrigin,
    /// The session's CSRF token, after the origin check ([`required`]).
    Token,
}

/// The one decision of what a request to the app must show: the session's token for every
/// state-changing request of a cookie session ([`required`]); for a WebSocket handshake, which
/// carries no token, its `Origin` (which a cookie session must send). (The `/auth` endpoints
/// are stricter: every state-changing request there must be same-origin, session or not.)
pub fn demand(method: &http::Method, upgrade: bool, via: Option<super::Via>) -> Demand {
    match via {
        // Cross-site WebSocket hijacking: browsers send cookies on cross-site handshakes, and
        // always an `Origin`, which for a cookie session must be this origin.
        Some(super::Via::Cookie) if upgrade => Demand::HandshakeOrigin,
        _ if upgrade => Demand::SameOrigin,
        Some(via) if required(method, via) => Demand::Token,
        _ => Demand::Nothing,
    }
}

/// GET, HEAD, OPTIONS and TRACE: methods that must not change state (RFC 9110 9.2.1).
pub fn is_safe_method(m: &http::Method) -> bool {
    use http::Method;
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Fetch Metadata with an `Origin` fallback: refuse requests a browser marks as coming from
/// another site. Same-site requests are refused too (a sibling subdomain is not us). Requests
/// with neither header come from non-browser clients and are left to the token check.
pub fn check_origin(headers: &HeaderMap) -> Result<(), Error> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(Error::Forbidden("cross-site request refused")),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        return match (origin_host, host) {
            (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(Error::Forbidden("cross-origin request refused")),
        };
    }
    Ok(())
}

/// A WebSocket handshake of a cookie session: browsers always send `Origin` with one (there is
/// no preflight and no custom header to carry a token), so it must be there and be this
/// origin.
pub fn check_handshake_origin(headers: &HeaderMap) -> Result<(), Error> {
    if !headers.contains_key(header::ORIGIN) {
        return Err(Error::Forbidden("WebSocket handshake without Origin"));
    }
    check_origin(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn tokens_bind_to_session() -> Result<(), Error> {
        let t = issue(&KEY, Binding::Session("s1"), 100)?;
        assert!(is_valid(&KEY, &t, Binding::Session("s1"), 100, None));
        assert!(
            !is_valid(&KEY, &t, Binding::Session("s2"), 100, None),
            "another session's token"
        );
        assert!(!is_valid(&KEY, &t, Binding::Login, 100, None));
        assert!(
            !is_valid(&[8; 32], &t, Binding::Session("s1"), 100, None),
            "other key"
        );
        let forged = format!("{}x", t);
        assert!(!is_valid(&KEY, &forged, Binding::Session("s1"), 100, None));
        for bad in ["", "a.b", "1.a.b.c", "01.a.b", "x.y.z", "unsigned"] {
            assert!(
                !is_valid(&KEY, bad, Binding::Session("s1"), 100, None),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn login_tokens_expire() -> Result<(), Error> {
        let t = issue(&KEY, Binding::Login, 100)?;
        assert!(is_valid(
            &KEY,
            &t,
            Binding::Login,
            100 + LOGIN_TOKEN_TTL,
            Some(LOGIN_TOKEN_TTL)
        ));
        assert!(!is_valid(
            &KEY,
            &t,
            Binding::Login,
            101 + LOGIN_TOKEN_TTL,
            Some(LOGIN_TOKEN_TTL)
        ));
        Ok(())
    }

    #[test]
    fn double_submit_must_match() -> Result<(), Error> {
        let t = issue(&KEY, Binding::Session("s"), 1)?;
        let u = issue(&KEY, Binding::Session("s"), 1)?;
        assert!(check(&KEY, Some(&t), Some(&t), Binding::Session("s"), 1, None).is_ok());
        assert!(
            check(&KEY, Some(&t), Some(&u), Binding::Session("s"), 1, None).is_ok(),
            "two tokens of one session"
        );
        let other = issue(&KEY, Binding::Session("other"), 1)?;
        assert!(
            check(&KEY, Some(&other), Some(&t), Binding::Session("s"), 1, None).is_err(),
            "cookie of another session"
        );
        assert!(
            check(&KEY, Some(&t), Some(&other), Binding::Session("s"), 1, None).is_err(),
            "header of another session"
        );
        assert!(
            check(
                &KEY,
                Some("x.y.z"),
                Some(&t),
                Binding::Session("s"),
                1,
                None
            )
            .is_err(),
            "injected unsigned cookie"
        );
        assert!(check(&KEY, None, Some(&t), Binding::Session("s"), 1, None).is_err());
        assert!(check(&KEY, Some(&t), None, Binding::Session("s"), 1, None).is_err());
        Ok(())
    }

    #[test]
    fn fetch_metadata_and_origin() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            check_origin(&h).is_ok()
        };
        assert!(with(&[]));
        assert!(with(&[("sec-fetch-site", "same-origin")]));
        assert!(!with(&[("sec-fetch-site", "cross-site")]));
        assert!(!with(&[("sec-fetch-site", "same-site")]));
        assert!(with(&[
            ("origin", "http://app.example:8080"),
            ("host", "app.example:8080")
        ]));
        assert!(!with(&[
            ("origin", "http://evil.example"),
            ("host", "app.example")
        ]));
        assert!(!with(&[("origin", "null"), ("host", "app.example")]));
    }
}
