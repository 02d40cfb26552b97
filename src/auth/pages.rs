//! The gateway's own HTML: login, logout confirmation and password pages, in the shell of
//! [`crate::html`]. Server-rendered, no JavaScript, every dynamic value HTML-escaped.

use crate::html::layout;
pub use crate::html::{
    ASSETS, add_page_security_headers, allow_form_targets, asset, error_page, escape,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::CSP;
    use http::{HeaderMap, header};

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
