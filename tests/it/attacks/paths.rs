//! Path-rule bypasses (CWE-22/CWE-863; Orange Tsai's path-confusion work, the Spring and
//! Pomerium normalisation advisories): `/admin/**` belongs to the `admin` role however the path
//! is spelled. Each spelling is written byte for byte on the wire (HTTP clients would tidy it
//! up first). A viewer is refused with the app never seeing the request; the admin's same
//! request reaches the app, with the normalised path, so the spelling really does name
//! `/admin`. Dash Pages navigation (the `pathname` inside a callback body) is held to the same
//! rules with the same spellings.

use crate::support::{Gateway, Jar, Options, TestResult, Upstream, pages_body, raw_get};

/// `/admin/**` for the `admin` role, public assets, everything else for any signed-in user
/// (the HTTP/2 attacks use it too).
pub(super) const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/assets/**"]
public = true

[[rule]]
paths = ["/admin", "/admin/**"]
roles = ["admin"]
"#;

const ENCODED: &[&str] = &[
    "/%61dmin",
    "/%61%64%6d%69%6e",
    "/%41DMIN",
    "/admin%2Fusers",
    "/admin%2fusers",
    "/assets%2F..%2Fadmin",
];
const DOT_SEGMENTS: &[&str] = &[
    "/x/../admin",
    "/./admin",
    "/assets/../admin",
    "/assets/%2e%2e/admin",
    "/assets/.%2e/admin",
    "/assets/%2E./admin",
    "/admin/./users",
    "/admin/users/..",
    "/assets/x/../../admin/users",
];
const SEMICOLONS: &[&str] = &[
    "/admin;x",
    "/admin;jsessionid=1/users",
    "/assets/..;/admin",
    "/admin;/users",
    "/admin%3bx",
];
const TRAILING: &[&str] = &["/admin/", "/admin//", "/admin/.", "/admin/users/"];
const REPEATED: &[&str] = &["//admin", "///admin", "/admin//users", "//admin//users//"];
const CASE: &[&str] = &["/ADMIN", "/Admin/users", "/aDmIn/"];
const BACKSLASHES: &[&str] = &["/assets%5C..%5Cadmin", "/%5Cadmin", "/assets/..%5Cadmin"];

const ADMIN_FORMS: &[&str] = &["/admin", "/admin/", "/admin/users", "/admin/users/"];

struct Site {
    up: Upstream,
    gw: Gateway,
    viewer: Jar,
    admin: Jar,
}

impl Site {
    async fn new() -> Result<Site, Box<dyn std::error::Error>> {
        let up = Upstream::start().await?;
        let gw = Gateway::start_with(Options::new(&up.url).policy(POLICY), &[]).await?;
        let (admin, viewer) = crate::support::admin_and_viewer(&gw).await?;
        Ok(Site {
            up,
            gw,
            viewer,
            admin,
        })
    }

    /// Every spelling: refused for the viewer without reaching the app, forwarded for the admin
    /// as a normalised admin path.
    async fn http(&self, spellings: &[&str]) -> TestResult {
        for path in spellings {
            let hits = self.up.hits();
            let r = raw_get(&self.gw, path, &self.viewer, &[]).await?;
            assert_eq!(r.statuses(), vec![403], "viewer {path}: {}", r.text());
            assert_eq!(self.up.hits(), hits, "viewer {path} reached the app");
            let r = raw_get(&self.gw, path, &self.admin, &[]).await?;
            assert_eq!(r.statuses(), vec![200], "admin {path}: {}", r.text());
            let seen = r.json()?;
            let forwarded = seen["path"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                ADMIN_FORMS.contains(&forwarded.as_str()),
                "admin {path} forwarded as {forwarded}"
            );
        }
        Ok(())
    }

    /// Dash Pages navigation to each spelling: refused for the viewer without reaching the app.
    /// Either the spelling names `/admin` once read as the rules read it — then it is a 403 for
    /// the viewer and the admin's navigation goes through — or Dash could read it otherwise
    /// than the rules do (dot or empty segments, which Dash never resolves, backslashes): then
    /// it is malformed, a 400 for everyone, admin included.
    async fn pages(&self, spellings: &[&str]) -> TestResult {
        for path in spellings {
            // Pages sends the browser's pathname; a crafted client can send anything.
            for id in ["_pages_location", "url"] {
                let hits = self.up.hits();
                let viewer = self.navigate(&self.viewer, path, id).await?;
                assert!([400, 403].contains(&viewer), "viewer {path} {id}: {viewer}");
                assert_eq!(self.up.hits(), hits, "viewer {path} reached the app");
                let admin = self.navigate(&self.admin, path, id).await?;
                let want = if viewer == 400 { 400 } else { 200 };
                assert_eq!(admin, want, "admin {path} {id} (viewer {viewer})");
            }
        }
        Ok(())
    }

    async fn navigate(&self, jar: &Jar, pathname: &str, id: &str) -> Result<u16, reqwest::Error> {
        let body = pages_body(pathname, id);
        let r = self
            .gw
            .dash_post("/_dash-update-component", jar, &body)
            .await?;
        Ok(r.status().as_u16())
    }
}

#[tokio::test]
async fn http_percent_encoding() -> TestResult {
    Site::new().await?.http(ENCODED).await
}

#[tokio::test]
async fn http_dot_segments() -> TestResult {
    Site::new().await?.http(DOT_SEGMENTS).await
}

#[tokio::test]
async fn http_semicolon_parameters() -> TestResult {
    Site::new().await?.http(SEMICOLONS).await
}

#[tokio::test]
async fn http_trailing_slashes() -> TestResult {
    Site::new().await?.http(TRAILING).await
}

#[tokio::test]
async fn http_repeated_slashes() -> TestResult {
    Site::new().await?.http(REPEATED).await
}

#[tokio::test]
async fn http_letter_case() -> TestResult {
    Site::new().await?.http(CASE).await
}

#[tokio::test]
async fn http_backslashes() -> TestResult {
    Site::new().await?.http(BACKSLASHES).await
}

#[tokio::test]
async fn http_double_encoding_and_bad_utf8() -> TestResult {
    // Decoded twice these name /admin; decoded once (as the app does) they do not. Either the
    // gateway refuses them or the app receives them still encoded once - never as /admin.
    let site = Site::new().await?;
    for path in [
        "/%2561dmin",
        "/assets/%252e%252e/admin",
        "/assets/%c0%ae%c0%ae/admin",
        "/%c0%afadmin",
        "/admin%00",
        "/assets/%ff/../admin",
    ] {
        let r = raw_get(&site.gw, path, &site.viewer, &[]).await?;
        let status = r.statuses();
        if status == vec![200] {
            let seen = r.json()?;
            let forwarded = seen["path"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                !forwarded.starts_with("/admin") && !forwarded.contains(".."),
                "viewer {path} reached the app as {forwarded}"
            );
        } else {
            assert!(
                status.len() == 1 && (status[0] == 400 || status[0] == 403 || status[0] == 404),
                "viewer {path}: {status:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn pages_percent_encoding() -> TestResult {
    Site::new().await?.pages(ENCODED).await
}

#[tokio::test]
async fn pages_dot_segments() -> TestResult {
    Site::new().await?.pages(DOT_SEGMENTS).await
}

#[tokio::test]
async fn pages_semicolon_parameters() -> TestResult {
    Site::new().await?.pages(SEMICOLONS).await
}

#[tokio::test]
async fn pages_trailing_slashes() -> TestResult {
    Site::new().await?.pages(TRAILING).await
}

#[tokio::test]
async fn pages_repeated_slashes() -> TestResult {
    Site::new().await?.pages(REPEATED).await
}

#[tokio::test]
async fn pages_letter_case() -> TestResult {
    Site::new().await?.pages(CASE).await
}

#[tokio::test]
async fn pages_backslashes() -> TestResult {
    Site::new().await?.pages(BACKSLASHES).await
}

#[tokio::test]
async fn pages_absolute_urls_and_queries() -> TestResult {
    // A pathname is a path, but a crafted client may send a whole URL or hide the path behind a
    // query or fragment marker: no browser sends such a pathname, so it is refused as
    // malformed, for everyone.
    let site = Site::new().await?;
    for url in [
        "http://127.0.0.1/admin",
        "javascript:/admin",
        "/x?/admin",
        "/admin?x=1",
        "/admin#top",
        "/x#/../admin",
    ] {
        let hits = site.up.hits();
        for (who, jar) in [("viewer", &site.viewer), ("admin", &site.admin)] {
            let status = site.navigate(jar, url, "_pages_location").await?;
            assert_eq!(status, 400, "{who} {url}");
        }
        assert_eq!(site.up.hits(), hits, "{url} reached the app");
        assert_eq!(site.navigate(&site.viewer, url, "url").await?, 400, "{url}");
    }
    Ok(())
}

#[tokio::test]
async fn http_query_and_fragment_do_not_choose_the_rule() -> TestResult {
    // oauth2-proxy GHSA-pxq7-h93f-9jrg / GHSA-7rh7-c77v-6434: a public-looking query or
    // fragment must not make a protected path public.
    let site = Site::new().await?;
    let anon = Jar::default();
    for path in [
        "/admin?/assets/x",
        "/admin?x=/assets/",
        "/admin/users?.css",
        "/admin#/assets/x",
    ] {
        let hits = site.up.hits();
        let r = raw_get(&site.gw, path, &anon, &[]).await?;
        let s = r.statuses();
        assert!(s == vec![302] || s == vec![400], "anonymous {path}: {s:?}");
        let r = raw_get(&site.gw, path, &site.viewer, &[]).await?;
        let s = r.statuses();
        assert!(s == vec![403] || s == vec![400], "viewer {path}: {s:?}");
        assert_eq!(site.up.hits(), hits, "{path} reached the app");
    }
    Ok(())
}

/// Dash Pages under a prefix and with path templates (`url_base_pathname="/app/"`, a page
/// `path_template="/reports/<rid>"`): Dash strips the prefix with a plain `startswith` and
/// matches templates with `fnmatch`, whose `*` crosses `/`. The same checks run against real
/// Dash apps in `tests/dash/`.
const PREFIXED: &str = r#"
[[rule]]
paths = ["/app/admin", "/app/admin/**"]
roles = ["admin"]

[[rule]]
paths = ["/app/reports/*"]
roles = ["admin"]
"#;

/// The Pages router callback of the app under `/app/`.
async fn navigate_app(
    gw: &Gateway,
    jar: &Jar,
    pathname: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let body = pages_body(pathname, "_pages_location");
    gw.dash_post("/app/_dash-update-component", jar, &body)
        .await
}

#[tokio::test]
async fn pages_under_a_prefix_and_with_templates() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(Options::new(&up.url).policy(PREFIXED), &[]).await?;
    let (admin, viewer) = crate::support::admin_and_viewer(&gw).await?;
    let site = Site {
        viewer,
        admin,
        up,
        gw,
    };
    // Outside the prefix (Dash would render `admin` for `/appadmin`): no page of this app.
    for p in ["/appadmin", "/appreports/q1", "/admin", "/"] {
        for jar in [&site.viewer, &site.admin] {
            assert_eq!(navigate_app(&site.gw, jar, p).await?.status(), 400, "{p}");
        }
    }
    // A template's variable may span segments: the rule's `*` does too.
    for p in [
        "/app/admin",
        "/app/admin/x",
        "/app/reports/q1",
        "/app/reports/q1/x",
        "/app/reports/a/b/c/",
        "/app/reports/q1%2Fx",
    ] {
        let hits = site.up.hits();
        assert_eq!(
            navigate_app(&site.gw, &site.viewer, p).await?.status(),
            403,
            "viewer {p}"
        );
        assert_eq!(site.up.hits(), hits, "viewer {p} reached the app");
        assert_eq!(
            navigate_app(&site.gw, &site.admin, p).await?.status(),
            200,
            "admin {p}"
        );
    }
    // Dash would match `/app/reports/..` and `/app/reports//x` against the template too.
    for p in [
        "/app/reports/..",
        "/app/reports//x",
        "/app/reports/.",
        "/app//admin",
    ] {
        for jar in [&site.viewer, &site.admin] {
            assert_eq!(navigate_app(&site.gw, jar, p).await?.status(), 400, "{p}");
        }
    }
    // The rest of the app stays open to the viewer.
    for p in ["/app", "/app/", "/app/home", "/app/reports"] {
        assert_eq!(
            navigate_app(&site.gw, &site.viewer, p).await?.status(),
            200,
            "viewer {p}"
        );
    }
    Ok(())
}
