//! The shell of every page the gateway renders: escaping, the layout with its one same-origin
//! stylesheet and icon, the security headers every page carries (a CSP that forbids inline
//! code and framing), the static assets, and the error page. A leaf: the error mapping and
//! the `/auth` pages both build on it.

use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Content-Security-Policy of the gateway's pages.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The gateway's own static files under `<auth prefix>/assets/`: the stylesheet and the icon
/// its pages link (without one, the browser asks the app's origin for `/favicon.ico`, gets the
/// gateway's 401 and logs an error on every sign-in). `(path, content type, body)`.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/dashgate.css",
        "text/css; charset=utf-8",
        include_str!("auth/dashgate.css"),
    ),
    (
        "/assets/dashgate.svg",
        "image/svg+xml",
        include_str!("auth/dashgate.svg"),
    ),
];

/// The asset at `path`, if there is one: its content type and body.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, t, body)| (*t, *body))
}

/// Escape text for HTML element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Security headers every gateway page carries.
pub fn add_page_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Let this page's forms lead to these origins too (`scheme://host[:port]`, checked here; any
/// other is ignored): the logout form, whose answer sends the browser on to the OpenID
/// provider's end-session endpoint (browsers apply `form-action` to the redirects that follow a
/// submission).
pub fn allow_form_targets(h: &mut HeaderMap, origins: &[String]) {
    let safe: Vec<&str> = origins
        .iter()
        .map(String::as_str)
        .filter(|o| {
            !o.is_empty()
                && o.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b':' | b'/' | b'.' | b'-' | b'[' | b']')
                })
        })
        .collect();
    if safe.is_empty() {
        return;
    }
    let csp = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", safe.join(" ")),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// A page of the gateway: `body` inside the common shell, with the stylesheet and icon under
/// `prefix` (the auth prefix).
pub fn layout(title: &str, prefix: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · dashgate</title>
<link rel="stylesheet" href="{prefix}/assets/dashgate.css">
<link rel="icon" type="image/svg+xml" href="{prefix}/assets/dashgate.svg">
</head>
<body>
<main class="card">
<div class="brand"><span class="logo" aria-hidden="true">◆</span> dashgate</div>
{body}
</main>
<footer>Protected by dashgate</footer>
</body>
</html>
"#,
        title = escape(title),
        prefix = escape(prefix),
    )
}

/// A generic error page for navigations (403, 502, …).
pub fn error_page(status: StatusCode, message: &str) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        r#"<h1>{code} · {title}</h1>
<p class="lead">{message}</p>
<p class="secondary"><a href="/">Go to the start page</a></p>"#,
        code = status.as_u16(),
        title = escape(title),
        message = escape(message),
    );
    // Error pages link the stylesheet under the default prefix; a custom prefix only loses
    // styling here, never function.
    layout(title, "/auth", &body)
}
