//! The gateway's cookies: names, the one function that builds a `Set-Cookie` (so every cookie
//! gets the same flags, and removal mirrors creation), and strict parsing of `Cookie` headers.

use http::{HeaderMap, HeaderValue, header};

/// rfc6265bis: user agents drop cookies whose name + value exceed 4096 bytes; we never parse
/// larger values either.
pub const MAX_COOKIE_BYTES: usize = 4096;

/// Cookie names; the `__Host-` prefix (and `Secure`) only when `cookie_secure` is on.
#[derive(Debug, Clone)]
pub struct CookieNames {
    pub access: String,
    pub refresh: String,
    /// Pre-session token of the login form (HttpOnly; separate from `_csrf_token` so that
    /// opening the login page never breaks a signed-in tab's Dash callbacks).
    pub login_csrf: String,
    /// Session id in `session.mode = "server"`.
    pub session: String,
    /// An OpenID sign-in in progress: state, nonce, PKCE verifier and `next`, signed.
    pub oidc: String,
    /// The CSRF cookie(s), read by dash-renderer from `document.cookie`, so they cannot be
    /// HttpOnly nor `__Host-` renamed: the names are Dash's (`_csrf_token`, or what the app
    /// declares), and with them the header names the token comes back in.
    pub csrf: std::sync::Arc<super::csrf::CsrfNames>,
    pub secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> CookieNames {
        let prefix = if secure { "__Host-" } else { "" };
        CookieNames {
            access: format!("{prefix}dashgate-access"),
            refresh: format!("{prefix}dashgate-refresh"),
            login_csrf: format!("{prefix}dashgate-login-csrf"),
            session: format!("{prefix}dashgate-session"),
            oidc: format!("{prefix}dashgate-oidc"),
            csrf: std::sync::Arc::default(),
            secure,
        }
    }

    /// Is `name` one of ours (compared case-insensitively, as prefixes are)?
    pub fn is_ours(&self, name: &str) -> bool {
        self.is_session_cookie(name) || self.csrf.is_cookie(name)
    }

    /// Is `name` one of the gateway's cookies other than the CSRF ones?
    pub fn is_session_cookie(&self, name: &str) -> bool {
        [
            &self.access,
            &self.refresh,
            &self.login_csrf,
            &self.session,
            &self.oidc,
        ]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Build one `Set-Cookie` value. `max_age = None` deletes the cookie (same name, path and
/// flags as when it was set, so the browser really removes it).
pub fn set_cookie(
    names: &CookieNames,
    name: &str,
    value: &str,
    max_age: Option<i64>,
    http_only: bool,
) -> Option<HeaderValue> {
    let mut s = String::with_capacity(name.len() + value.len() + 80);
    s.push_str(name);
    s.push('=');
    match max_age {
        Some(age) => {
            s.push_str(value);
            s.push_str("; Max-Age=");
            s.push_str(&age.max(0).to_string());
        }
        None => s.push_str("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
    }
    s.push_str("; Path=/; SameSite=Lax");
    if http_only {
        s.push_str("; HttpOnly");
    }
    if names.secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).ok()
}

/// The first value of cookie `name` across all `Cookie` headers. Values over the size limit,
/// non-ASCII headers and malformed pairs are ignored rather than trusted.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    pairs(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Every well-formed `name=value` pair in the request's `Cookie` headers.
pub fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            let n = n.trim();
            (!n.is_empty() && n.len() + v.len() <= MAX_COOKIE_BYTES).then_some((n, v))
        })
}

/// Rebuild the `Cookie` header without the gateway's cookies, for the upstream.
pub fn strip_ours(headers: &mut HeaderMap, names: &CookieNames) {
    if !headers.contains_key(header::COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
            !names.is_ours(name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(header::COOKIE, v);
            }
        }
        h
    }

    #[test]
    fn set_cookie_flags() {
        let secure = CookieNames::new(true);
        let v = set_cookie(&secure, &secure.access, "tok", Some(900), true)
            .and_then(|v| v.to_str().ok().map(str::to_owned));
        assert_eq!(
            v,
            Some(
                "__Host-dashgate-access=tok; Max-Age=900; Path=/; SameSite=Lax; HttpOnly; Secure"
                    .to_owned()
            )
        );
        let v = set_cookie(&secure, super::super::csrf::COOKIE, "c", None, false)
            .and_then(|v| v.to_str().ok().map(str::to_owned));
        assert_eq!(v, Some("_csrf_token=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax; Secure".to_owned()));
        let plain = CookieNames::new(false);
        assert_eq!(plain.access, "dashgate-access");
        assert!(
            set_cookie(&plain, "a", "b\n", Some(1), true).is_none(),
            "no header injection"
        );
    }

    #[test]
    fn parsing_and_stripping() {
        let names = CookieNames::new(true);
        let mut h = headers(&[
            "a=1; __Host-dashgate-access=tok; _csrf_token=\"c\"",
            "b=2; __HOST-DASHGATE-REFRESH=r",
        ]);
        assert_eq!(get(&h, "__Host-dashgate-access"), Some("tok"));
        assert_eq!(get(&h, "_csrf_token"), Some("c"));
        assert_eq!(get(&h, "missing"), None);
        strip_ours(&mut h, &names);
        assert_eq!(
            h.get(header::COOKIE).and_then(|v| v.to_str().ok()),
            Some("a=1; b=2")
        );
        let mut only_ours = headers(&["_csrf_token=x"]);
        strip_ours(&mut only_ours, &names);
        assert!(only_ours.get(header::COOKIE).is_none());
        let huge = format!("x={}", "a".repeat(5000));
        assert_eq!(get(&headers(&[&huge]), "x"), None);
    }
}
