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

/// Header names (normalised: lower case, `_` as `-`) that only the gateway may set.
const RESERVED_EXACT: &[&str] = &[
    "plotly-user-data",
    "forwarded",
    "x-real-ip",
    "x-remote-user",
    "remote-user",
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

/// What the gateway tells the upstream about the original request and the user.
pub struct Forwarded<'a> {
    pub client_ip: String,
    pub proto: &'static str,
    pub host: Option<HeaderValue>,
    pub user: Option<&'a str>,
    pub roles: &'a [String],
}

pub fn add_forwarding(headers: &mut HeaderMap, f: &Forwarded<'_>) {
    if let Ok(v) = HeaderValue::from_str(&f.client_ip) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(f.proto));
    if let Some(h) = &f.host {
        headers.insert("x-forwarded-host", h.clone());
    }
    let Some(user) = f.user else { return };
    // Names and roles are canonical (a-z, 0-9, . _ - @) so they are valid header values.
    if let Ok(v) = HeaderValue::from_str(user) {
        headers.insert("x-forwarded-user", v);
    }
    if let Ok(v) = HeaderValue::from_str(&f.roles.join(",")) {
        headers.insert("x-forwarded-roles", v);
    }
    let data = serde_json::json!({"username": user, "roles": f.roles});
    if let Ok(v) = HeaderValue::from_str(&data.to_string()) {
        headers.insert("plotly-user-data", v);
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
