//! Header hygiene between the client and the upstream: hop-by-hop headers go, identity and
//! forwarding headers a client might forge go (in every letter case and with `_` for `-`, the
//! way WSGI servers fold them into one), and the gateway's own cookies go.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::session::cookies::{self, CookieNames};

/// Hop-by-hop headers (RFC 9110 7.6.1) plus the pre-standard ones proxies still see.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header names (normalised: lower case, `_` as `-`) that only the gateway may set, or that no
/// client may send past it: frameworks that route by a rewritten URL (`X-Original-URL`) or
/// take the method from a header (`X-HTTP-Method-Override`) would otherwise judge a request
/// the gateway judged as something else (a GET that needs no CSRF token acting as a DELETE).
const RESERVED_EXACT: &[&str] = &[
    "plotly-user-data",
    "forwarded",
    "x-real-ip",
    "x-remote-user",
    "remote-user",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
const RESERVED_PREFIXES: &[&str] = &["x-forwarded-", "x-dashgate-", "x-auth-request-"];

/// Would the upstream read `name` as one of the headers only the gateway may set?
pub fn is_reserved(name: &str) -> bool {
    let norm: String = name
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    RESERVED_EXACT.contains(&norm.as_str()) || RESERVED_PREFIXES.iter().any(|p| norm.starts_with(p))
}

/// Remove hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Clean a request's headers for the upstream: hop-by-hop, reserved identity headers and
/// the gateway's cookies are removed.
pub fn sanitize_request(headers: &mut HeaderMap, names: &CookieNames) {
    strip_hop_by_hop(headers);
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_reserved(n.as_str()))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
    cookies::strip_ours(headers, names);
}

/// Who the user is, as the upstream learns it.
pub struct Identity<'a> {
    pub user: &'a str,
    pub roles: &'a [String],
    pub permissions: &'a [String],
    /// `X-Dashgate-Assertion`: the same facts, signed.
    pub assertion: Option<&'a str>,
}

/// What the gateway tells the upstream about the original request and the user.
pub struct Forwarded<'a> {
    pub client_ip: String,
    pub proto: &'static str,
    pub host: Option<HeaderValue>,
    pub identity: Option<Identity<'a>>,
}

pub fn add_forwarding(headers: &mut HeaderMap, f: &Forwarded<'_>) {
    if let Ok(v) = HeaderValue::from_str(&f.client_ip) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(f.proto));
    if let Some(h) = &f.host {
        headers.insert("x-forwarded-host", h.clone());
    }
    let Some(id) = &f.identity else { return };
    // Names, roles and permissions are canonical (a-z, 0-9 and a few marks), so they are
    // valid header values and cannot smuggle separators.
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("x-forwarded-user", id.user);
    put("x-forwarded-roles", &id.roles.join(","));
    put("x-forwarded-permissions", &id.permissions.join(","));
    put(
        "plotly-user-data",
        &serde_json::json!({"username": id.user, "roles": id.roles}).to_string(),
    );
    if let Some(a) = id.assertion {
        put("x-dashgate-assertion", a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_in_every_spelling() {
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X-FORWARDED_ROLES",
            "plotly_user_data",
            "Plotly-User-Data",
            "x-dashgate-assertion",
            "X_Dashgate_Anything",
            "forwarded",
            "X-Forwarded-Uri",
            "x-real-ip",
            "X-Original-URL",
            "x_http_method_override",
        ] {
            assert!(is_reserved(n), "{n}");
        }
        for n in ["x-csrftoken", "cookie", "accept", "x-forwardedfor"] {
            assert!(!is_reserved(n), "{n}");
        }
    }

    #[test]
    fn sanitize_strips_spoofed_and_hop_by_hop() -> Result<(), http::Error> {
        let mut h = HeaderMap::new();
        h.insert("x_forwarded_user", HeaderValue::from_static("admin"));
        h.append("X-Forwarded-Roles", HeaderValue::from_static("admin"));
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        sanitize_request(&mut h, &CookieNames::new(true));
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["accept"]);
        Ok(())
    }
}
