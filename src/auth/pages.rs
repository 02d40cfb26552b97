//! The gateway's own HTML: login, logout confirmation and error pages. Server-rendered, no
//! JavaScript, every dynamic value HTML-escaped, styles from one same-origin stylesheet so the
//! CSP can forbid inline code.

use http::{HeaderMap, HeaderValue, StatusCode, header};

/// Content-Security-Policy of the gateway's pages.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The gateway's own static files under `<auth prefix>/assets/`: the stylesheet and the icon
/// its pages link (without one, the browser asks the app's origin for `/favicon.ico`, gets the
/// gateway's 401 and logs an error on every sign-in). `(path, content type, body)`.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/dashgate.css",
        "text/css; charset=utf-8",
        include_str!("dashgate.css"),
    ),
    (
        "/assets/dashgate.svg",
        "image/svg+xml",
        include_str!("dashgate.svg"),
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

fn layout(title: &str, prefix: &str, body: &str) -> String {
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

/// The generic message of a failed login (the same whatever failed).
pub const LOGIN_FAILED: &str = "Invalid username or password.";

/// The login page; `error` is shown above the form.
/// How users of this gateway can sign in: a password form (local users, LDAP) and/or a
/// button for the OpenID provider, with the name it is shown under.
#[derive(Debug, Clone, Copy)]
pub struct SignInChoices<'a> {
    pub password: bool,
    pub provider: Option<&'a str>,
}

pub fn login_page(
    prefix: &str,
    next: &str,
    csrf_token: &str,
    username: &str,
    error: Option<&str>,
    choices: SignInChoices<'_>,
) -> String {
    let error_html = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
    });
    let form = if choices.password {
        format!(
            r#"<form method="post" action="{prefix}/login" autocomplete="on">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form>"#,
            prefix = escape(prefix),
            csrf = escape(csrf_token),
            next = escape(next),
            username = escape(username),
        )
    } else {
        String::new()
    };
    let sso = choices.provider.map_or_else(String::new, |name| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        format!(
            r#"{or}<a id="sso" class="sso" href="{prefix}/oidc/start?{query}">Sign in with {name}</a>"#,
            or = if choices.password {
                r#"<p class="or"><span>or</span></p>"#
            } else {
                ""
            },
            prefix = escape(prefix),
            query = escape(&query),
            name = escape(name),
        )
    });
    let body = format!(
        r#"<h1>Sign in</h1>
<p class="lead">Sign in to continue to your dashboards.</p>
{error_html}
{form}{sso}"#
    );
    layout("Sign in", prefix, &body)
}

/// Logout confirmation: a POST form, so a link or image cannot sign anyone out.
pub fn logout_page(prefix: &str, csrf_token: Option<&str>, username: Option<&str>) -> String {
    let who = username.map_or_else(String::new, |u| {
        format!(
            r#"<p class="lead">You are signed in as <strong>{}</strong>.</p>"#,
            escape(u)
        )
    });
    let body = format!(
        r#"<h1>Sign out</h1>
{who}
<form method="post" action="{prefix}/logout">
<input type="hidden" name="csrf_token" value="{csrf}">
<button id="confirm-logout" type="submit">Sign out</button>
</form>
<p class="secondary"><a href="/">Back to the app</a>{password}</p>"#,
        password = if username.is_some() {
            format!(
                r#" · <a href="{}/password">Change password</a>"#,
                escape(prefix)
            )
        } else {
            String::new()
        },
        prefix = escape(prefix),
        csrf = escape(csrf_token.unwrap_or("")),
    );
    layout("Sign out", prefix, &body)
}

/// What the password page says above its form.
pub enum Notice<'a> {
    Error(&'a str),
    Changed { sessions_ended: usize },
}

/// Change one's own password: the current one, the new one twice. Changing it signs out every
/// other session.
pub fn password_page(
    prefix: &str,
    csrf_token: &str,
    username: &str,
    notice: Option<Notice<'_>>,
) -> String {
    let notice = match notice {
        None => String::new(),
        Some(Notice::Error(e)) => {
            format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
        }
        Some(Notice::Changed { sessions_ended }) => format!(
            r#"<p class="notice" role="status" id="password-changed">Your password was changed. Other sessions signed out: {sessions_ended}.</p>"#
        ),
    };
    let body = format!(
        r#"<h1>Change password</h1>
<p class="lead">Signed in as <strong>{username}</strong>. Changing your password signs you out everywhere else.</p>
{notice}
<form method="post" action="{prefix}/password" autocomplete="off">
<input type="hidden" name="csrf_token" value="{csrf}">
<input type="text" name="username" value="{username}" autocomplete="username" hidden>
<label for="current_password">Current password</label>
<input id="current_password" name="current_password" type="password" autocomplete="current-password" required>
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" minlength="8" required>
<label for="new_password_confirm">New password, again</label>
<input id="new_password_confirm" name="new_password_confirm" type="password" autocomplete="new-password" minlength="8" required>
<button id="change-password" type="submit">Change password</button>
</form>
<p class="secondary"><a href="/">Back to the app</a></p>"#,
        prefix = escape(prefix),
        csrf = escape(csrf_token),
        username = escape(username),
    );
    layout("Change password", prefix, &body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = login_page(
            "/auth",
            "/x\"><script>",
            "t",
            "<b>",
            Some(LOGIN_FAILED),
            SignInChoices {
                password: true,
                provider: Some("<Corp> SSO"),
            },
        );
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("&quot;&gt;&lt;script&gt;"));
        assert!(page.contains(r#"<label for="username">"#));
        assert!(page.contains("Invalid username or password."));
        assert!(page.contains("Sign in with &lt;Corp&gt; SSO"));
        assert!(!page.contains("<Corp>"));
        // The next path reaches the provider link form-encoded, then HTML-escaped.
        assert!(page.contains("/auth/oidc/start?next=%2Fx%22%3E%3Cscript%3E"));
    }

    #[test]
    fn form_targets_are_origins_only() {
        let csp = |origin: &str| {
            let mut h = HeaderMap::new();
            add_page_security_headers(&mut h);
            allow_form_targets(&mut h, &[origin.to_owned()]);
            h.get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_default()
        };
        assert!(
            csp("https://idp.example.com:8443")
                .contains("form-action 'self' https://idp.example.com:8443;")
        );
        // Anything that could add a directive or a source list is ignored.
        for bad in [
            "https://x; script-src *",
            "https://x 'unsafe-inline'",
            "",
            "https://x,y",
        ] {
            assert_eq!(csp(bad), CSP, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        allow_form_targets(
            &mut h,
            &[
                "https://a.example".to_owned(),
                "https://b; script-src *".to_owned(),
                "http://127.0.0.1:9".to_owned(),
            ],
        );
        let both = h
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            both.contains("form-action 'self' https://a.example http://127.0.0.1:9;"),
            "{both}"
        );
        assert!(!both.contains("script-src"));
    }

    #[test]
    fn sign_in_choices_decide_what_is_shown() {
        let page = |password, provider| {
            login_page(
                "/auth",
                "/",
                "t",
                "",
                None,
                SignInChoices { password, provider },
            )
        };
        let only_sso = page(false, Some("Okta"));
        assert!(!only_sso.contains("<form"));
        assert!(!only_sso.contains(r#"class="or""#));
        assert!(only_sso.contains(r#"id="sso""#));
        let only_password = page(true, None);
        assert!(only_password.contains(r#"action="/auth/login""#));
        assert!(!only_password.contains(r#"id="sso""#));
        let both = page(true, Some("Okta"));
        assert!(both.contains(r#"class="or""#) && both.contains(r#"id="sso""#));
    }
}
