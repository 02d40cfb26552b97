//! Open redirects (CWE-601; oauth2-proxy's and Authelia's advisories, PayloadsAllTheThings):
//! the `next` of a login only ever leads to a path on this site. Payloads are grouped by trick,
//! one test per group; every one of them must land on `/`, while a genuine local `next` is
//! followed exactly (checked in each test, so a refusal is never just a broken login).

use crate::support::{Gateway, Jar, PASSWORD, TestResult, Upstream, client, hidden_field};

const SCHEME_RELATIVE: &[&str] = &[
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "//evil.com/%2F..",
    "\t//evil.com",
    " //evil.com",
];
const BACKSLASHES: &[&str] = &[
    "/\\evil.com",
    "\\/evil.com",
    "/\\/evil.com",
    "\\\\evil.com",
    "http:\\\\evil.com",
    "/\\\\evil.com",
];
const CONTROL_CHARACTERS: &[&str] = &[
    "/\t/evil.com",
    "/%09/evil.com",
    "/\r/evil.com",
    "/%0D/evil.com",
    "/\n/evil.com",
    "/%0a/evil.com",
    "/%0d%0a/evil.com",
    "/ /evil.com",
    "/%20/evil.com",
    "/\0/evil.com",
];
const ABSOLUTE: &[&str] = &[
    "https://evil.com",
    "http://evil.com",
    "https:evil.com",
    "http:evil.com",
    "https:/evil.com",
    "evil.com",
    "HTTPS://evil.com",
];
const USERINFO: &[&str] = &[
    "/@evil.com",
    "/user@evil.com",
    "//user:pass@evil.com",
    "/%40evil.com",
    "https://trusted.example@evil.com",
];
const PERCENT_ENCODED: &[&str] = &[
    "/%2F/evil.com",
    "/%2f%2fevil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%5c/evil.com",
    "/%252F%252Fevil.com",
    "/%25252F%25252Fevil.com",
    "/%ff",
    "/%",
];
const UNICODE: &[&str] = &[
    "/\u{3000}/evil.com",
    "/%E3%80%80/evil.com",
    "/\u{feff}/evil.com",
    "/%EF%BB%BF/evil.com",
    "\u{ff0f}\u{ff0f}evil.com",
    "/\u{2215}evil.com",
    "/%E2%88%95evil.com",
];
const SCRIPT_SCHEMES: &[&str] = &[
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>",
    "vbscript:msgbox(1)",
];
const DOT_SEGMENTS: &[&str] = &[
    "/..//evil.com",
    "/../evil.com",
    "/./evil.com/..",
    "/%2e%2e//evil.com",
    "/.%2e//evil.com",
];
/// Back to the gateway's own pages: a login loop or a logout by link.
const AUTH_PAGES: &[&str] = &["/auth/login", "/auth/logout", "/auth/logout?confirm=1"];

const GROUPS: &[&[&str]] = &[
    SCHEME_RELATIVE,
    BACKSLASHES,
    CONTROL_CHARACTERS,
    ABSOLUTE,
    USERINFO,
    PERCENT_ENCODED,
    UNICODE,
    SCRIPT_SCHEMES,
    DOT_SEGMENTS,
    AUTH_PAGES,
];

/// A local target that must be followed exactly.
const LOCAL: &str = "/dashboards/sales?tab=2";

/// Log in through the form with each `next`; every payload lands on `/`.
async fn lands_home(payloads: &[&str]) -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let c = client();
    let (jar, token) = gw.login_form(&Jar::default()).await?;
    for next in payloads.iter().chain([LOCAL].iter()) {
        let r = c
            .post(gw.url("/auth/login"))
            .header("cookie", jar.header())
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", &token),
                ("next", next),
            ])
            .send()
            .await?;
        assert_eq!(r.status(), 303, "{next:?}");
        let expected = if *next == LOCAL { LOCAL } else { "/" };
        assert_eq!(r.headers()["location"], expected, "{next:?}");
    }
    Ok(())
}

#[tokio::test]
async fn scheme_relative_urls() -> TestResult {
    lands_home(SCHEME_RELATIVE).await
}

#[tokio::test]
async fn backslashes() -> TestResult {
    lands_home(BACKSLASHES).await
}

#[tokio::test]
async fn tab_cr_lf_and_spaces() -> TestResult {
    lands_home(CONTROL_CHARACTERS).await
}

#[tokio::test]
async fn absolute_urls() -> TestResult {
    lands_home(ABSOLUTE).await
}

#[tokio::test]
async fn userinfo_at_sign() -> TestResult {
    lands_home(USERINFO).await
}

#[tokio::test]
async fn percent_encoded() -> TestResult {
    lands_home(PERCENT_ENCODED).await
}

#[tokio::test]
async fn unicode_lookalikes() -> TestResult {
    lands_home(UNICODE).await
}

#[tokio::test]
async fn script_schemes() -> TestResult {
    lands_home(SCRIPT_SCHEMES).await
}

#[tokio::test]
async fn dot_segments() -> TestResult {
    lands_home(DOT_SEGMENTS).await
}

#[tokio::test]
async fn gateway_pages() -> TestResult {
    lands_home(AUTH_PAGES).await
}

/// The whole corpus through the login page: an unsafe `next` never reaches the form (nor,
/// escaped or not, the page).
#[tokio::test]
async fn login_page_never_carries_an_unsafe_next() -> TestResult {
    let corpus: Vec<&str> = GROUPS.iter().flat_map(|g| g.iter().copied()).collect();
    assert!(
        corpus.len() >= 50,
        "the corpus has {} payloads",
        corpus.len()
    );
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    for next in corpus.iter().chain([LOCAL].iter()) {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        let r = client()
            .get(gw.url(&format!("/auth/login?{q}")))
            .send()
            .await?;
        assert_eq!(r.status(), 200, "{next:?}");
        let html = r.text().await?;
        let expected = if *next == LOCAL { LOCAL } else { "/" };
        assert_eq!(
            hidden_field(&html, "next").as_deref(),
            Some(expected),
            "{next:?}"
        );
        assert!(!html.contains("evil.com"), "{next:?} reached the page");
    }
    Ok(())
}

/// The `next` the gateway itself builds when it sends an anonymous visitor to the login page
/// is safe too, whatever path the visitor asked for.
#[tokio::test]
async fn next_built_from_the_requested_path() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    for path in [
        "//evil.com",
        "/%2F%2Fevil.com",
        "/\\evil.com",
        "/%5Cevil.com/x",
    ] {
        let r = client()
            .get(gw.url(path))
            .header("accept", "text/html")
            .send()
            .await?;
        assert_eq!(r.status(), 302, "{path}");
        let location = r.headers()["location"].to_str()?.to_owned();
        assert!(
            location.starts_with("/auth/login?next="),
            "{path}: {location}"
        );
        // The login page the visitor lands on, and the `next` its form will submit.
        let page = client().get(gw.url(&location)).send().await?;
        let landed = hidden_field(&page.text().await?, "next").ok_or("next field")?;
        let safe = |p: &str| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\');
        assert!(safe(&landed), "{path}: next {landed:?}");
        // Signing in with the `next` the gateway built (as a crafted form would send it, not
        // only as the page sanitised it) goes to a local path.
        let next: String =
            form_urlencoded::parse(location.split_once('?').ok_or("?")?.1.as_bytes())
                .find(|(k, _)| k == "next")
                .map(|(_, v)| v.into_owned())
                .ok_or("next")?;
        let (jar, token) = gw.login_form(&Jar::default()).await?;
        let r = client()
            .post(gw.url("/auth/login"))
            .header("cookie", jar.header())
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", &token),
                ("next", &next),
            ])
            .send()
            .await?;
        assert_eq!(r.status(), 303, "{path}");
        let went = r.headers()["location"].to_str()?;
        assert!(safe(went), "{path}: went to {went:?}");
    }
    Ok(())
}
