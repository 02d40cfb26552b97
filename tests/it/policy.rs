//! Role-based access: roles and permissions, path rules (with normalisation), Dash callback
//! outputs, Dash Pages navigation, identity headers and the signed assertion, policy reload.

use serde_json::json;

use crate::support::{
    ACCESS, Gateway, Jar, Options, PASSWORD, TestResult, Upstream, client, eventually,
    output_text as text, pages_body, verify_with_jwks,
};

pub const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/assets/**", "/_favicon.ico"]
public = true

[[rule]]
paths = ["/admin", "/admin/**"]
roles = ["admin"]

[[rule]]
paths = ["/reports/*"]
methods = ["GET"]
permissions = ["reports:read"]

[[rule]]
paths = ["/reports/*"]
roles = ["admin"]

[[rule]]
dash_outputs = ["salary-*", { type = "salary-row" }]
permissions = ["salaries:read"]
"#;

/// A gateway with the example policy, roles admin (salaries:read, reports:read) and viewer
/// (reports:read), and users alice (admin) and victor (viewer).
async fn setup(
    up: &Upstream,
    extra: &[(&str, &str)],
) -> Result<Gateway, Box<dyn std::error::Error>> {
    let mut opts = Options::new(&up.url).policy(POLICY);
    for (k, v) in extra {
        opts = opts.env(k, v);
    }
    let gw = Gateway::start_with(opts, &[]).await?;
    for args in [
        &[
            "roles",
            "add",
            "admin",
            "--perm",
            "salaries:read",
            "--perm",
            "reports:read",
        ][..],
        &["roles", "add", "viewer", "--perm", "reports:read"],
    ] {
        let out = gw.cli(args, None)?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    gw.add_user("alice", PASSWORD, &["admin"])?;
    gw.add_user("victor", PASSWORD, &["viewer"])?;
    Ok(gw)
}

async fn get(gw: &Gateway, path: &str, jar: &Jar) -> Result<reqwest::Response, reqwest::Error> {
    client()
        .get(gw.url(path))
        .header("cookie", jar.header())
        .header("accept", "text/html")
        .send()
        .await
}

async fn callback(
    gw: &Gateway,
    path: &str,
    jar: &Jar,
    body: &serde_json::Value,
) -> Result<u16, reqwest::Error> {
    Ok(gw.dash_post(path, jar, body).await?.status().as_u16())
}

#[tokio::test]
async fn roles_cli_and_effective_permissions() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let out = gw.cli(&["roles", "list"], None)?;
    assert!(
        text(&out).contains("admin\tmembers: 1\tpermissions: reports:read, salaries:read"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("viewer\tmembers: 1\tpermissions: reports:read"));
    let out = gw.cli(&["users", "show", "alice"], None)?;
    assert!(
        text(&out).contains("permissions: reports:read, salaries:read"),
        "{}",
        text(&out)
    );
    for (args, want) in [
        (&["roles", "grant", "nobody", "admin"][..], "no such user"),
        (&["roles", "grant", "victor", "ghost"], "no such role"),
        (
            &["roles", "revoke", "victor", "admin"],
            "does not have the role",
        ),
        (
            &["roles", "add", "x", "--perm", "bad perm"],
            "permissions are",
        ),
    ] {
        let out = gw.cli(args, None)?;
        assert!(
            !out.status.success() && text(&out).contains(want),
            "{args:?}: {}",
            text(&out)
        );
    }
    // The token carries roles and permissions; the app gets them as headers.
    let jar = gw.login("alice", PASSWORD).await?;
    let seen: serde_json::Value = get(&gw, "/x", &jar).await?.json().await?;
    assert_eq!(seen["headers"]["x-forwarded-roles"][0], "admin");
    assert_eq!(
        seen["headers"]["x-forwarded-permissions"][0],
        "reports:read,salaries:read"
    );
    let info: serde_json::Value = client()
        .get(gw.url("/auth/userinfo"))
        .header("cookie", jar.header())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        info["permissions"],
        json!(["reports:read", "salaries:read"])
    );
    Ok(())
}

#[tokio::test]
async fn path_rules_hold_against_encoded_variants() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let victor = gw.login("victor", PASSWORD).await?;
    let alice = gw.login("alice", PASSWORD).await?;
    let anon = Jar::default();
    assert_eq!(
        get(&gw, "/assets/css/site.css", &anon).await?.status(),
        200,
        "public"
    );
    assert_eq!(get(&gw, "/dashboard", &anon).await?.status(), 302);
    assert_eq!(get(&gw, "/dashboard", &victor).await?.status(), 200);
    let hits = up.hits();
    for p in [
        "/admin",
        "/admin/",
        "//admin",
        "/admin/../admin",
        "/%61dmin",
        "/%2561dmin/../admin",
        "/admin;x",
        "/ADMIN",
        "/Admin/users",
        "/x/%2e%2e/admin",
        "/assets/..%2fadmin",
        "/assets/%2e%2e/admin/",
        "/assets\\..\\admin",
        "/./admin",
    ] {
        let r = get(&gw, p, &victor).await?;
        assert_eq!(r.status(), 403, "{p}");
        assert!(
            r.headers()["content-type"]
                .to_str()?
                .starts_with("text/html")
        );
        let r = get(&gw, p, &alice).await?;
        assert_eq!(r.status(), 200, "{p}");
        let seen: serde_json::Value = r.json().await?;
        let forwarded = seen["path"].as_str().unwrap_or("");
        assert!(
            forwarded.eq_ignore_ascii_case("/admin")
                || forwarded.eq_ignore_ascii_case("/admin/")
                || forwarded.eq_ignore_ascii_case("/admin/users"),
            "{p} forwarded as {forwarded}"
        );
    }
    assert_eq!(
        up.hits() - hits,
        14,
        "only alice's requests reached the app"
    );
    // Methods: GET needs reports:read, other methods fall through to the admin-only rule.
    assert_eq!(get(&gw, "/reports/q1", &victor).await?.status(), 200);
    let r = client()
        .post(gw.url("/reports/q1"))
        .header("cookie", victor.header())
        .header("x-csrftoken", victor.csrf())
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("application/json")
    );
    assert!(gw.log().contains("forbidden"));
    Ok(())
}

fn salary_body() -> serde_json::Value {
    json!({
        "output": "..out.children...salary-table.data..",
        "outputs": [{"id": "out", "property": "children"}, {"id": "salary-table", "property": "data"}],
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
    })
}

#[tokio::test]
async fn dash_callbacks_are_checked_by_output() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let victor = gw.login("victor", PASSWORD).await?;
    let alice = gw.login("alice", PASSWORD).await?;
    let hits = up.hits();
    for path in [
        "/_dash-update-component",
        "/app/_dash-update-component",
        "/deep/pre/fix/_dash-update-component",
    ] {
        assert_eq!(
            callback(&gw, path, &victor, &salary_body()).await?,
            403,
            "{path}"
        );
    }
    let dict = json!({
        "output": "{\"index\":[\"ALL\"],\"type\":\"salary-row\"}.children",
        "outputs": [[{"id": {"index": 1, "type": "salary-row"}, "property": "children"}]],
        "inputs": [],
    });
    assert_eq!(
        callback(&gw, "/_dash-update-component", &victor, &dict).await?,
        403,
        "dict ids"
    );
    // The `output` key decides which function Dash runs: benign `outputs` do not hide it.
    let sneaky = json!({"output": "salary-table.data@abc", "outputs": {"id": "out", "property": "children"}, "inputs": []});
    assert_eq!(
        callback(&gw, "/_dash-update-component", &victor, &sneaky).await?,
        403
    );
    assert_eq!(up.hits(), hits, "none reached the app");
    for bad in [
        json!("x"),
        json!({"outputs": {}, "inputs": []}),
        json!({"output": "a.b", "inputs": []}),
    ] {
        assert_eq!(
            callback(&gw, "/_dash-update-component", &victor, &bad).await?,
            400,
            "{bad}"
        );
    }
    let benign = json!({"output": "out.children", "outputs": {"id": "out", "property": "children"}, "inputs": []});
    assert_eq!(
        callback(&gw, "/_dash-update-component", &victor, &benign).await?,
        200
    );
    assert_eq!(
        callback(&gw, "/_dash-update-component", &alice, &salary_body()).await?,
        200
    );
    assert_eq!(
        callback(&gw, "/_dash-update-component", &alice, &dict).await?,
        200
    );
    // The body reaches the app intact.
    let r = client()
        .post(gw.url("/_dash-update-component?endId=abc"))
        .header("cookie", alice.header())
        .header("x-csrftoken", alice.csrf())
        .body(salary_body().to_string())
        .send()
        .await?;
    let seen: serde_json::Value = r.json().await?;
    assert_eq!(
        seen["body"]
            .as_str()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()?,
        Some(salary_body())
    );
    assert_eq!(seen["query"], "endId=abc");
    Ok(())
}

#[tokio::test]
async fn dash_pages_navigation_follows_path_rules() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let victor = gw.login("victor", PASSWORD).await?;
    let alice = gw.login("alice", PASSWORD).await?;
    for p in ["/admin", "/admin/", "/%61dmin", "/admin;x", "/Admin/users"] {
        for id in ["_pages_location", "something-else"] {
            assert_eq!(
                callback(&gw, "/_dash-update-component", &victor, &pages_body(p, id)).await?,
                403,
                "{p} {id}"
            );
            assert_eq!(
                callback(&gw, "/_dash-update-component", &alice, &pages_body(p, id)).await?,
                200,
                "{p} {id}"
            );
        }
    }
    assert_eq!(
        callback(
            &gw,
            "/_dash-update-component",
            &victor,
            &pages_body("/", "_pages_location")
        )
        .await?,
        200
    );
    // Dash never resolves dot segments nor collapses slashes (a template could match them):
    // such a pathname is malformed for everyone.
    for p in ["/%zz", "//admin", "/x/../admin", "/admin/.."] {
        for jar in [&victor, &alice] {
            let body = pages_body(p, "_pages_location");
            assert_eq!(
                callback(&gw, "/_dash-update-component", jar, &body).await?,
                400,
                "{p}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn assertion_is_signed_cached_and_verifiable() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let alice = gw.login("alice", PASSWORD).await?;
    let a1: serde_json::Value = get(&gw, "/one", &alice).await?.json().await?;
    let a2: serde_json::Value = get(&gw, "/two", &alice).await?.json().await?;
    let token = a1["headers"]["x-dashgate-assertion"][0]
        .as_str()
        .ok_or("assertion")?
        .to_owned();
    assert_eq!(
        a2["headers"]["x-dashgate-assertion"][0].as_str(),
        Some(token.as_str()),
        "cached per session token"
    );
    let (_, header, claims) = verify_with_jwks(&gw, &token).await?;
    assert_eq!(header["typ"], "dashgate-assertion+jwt");
    assert_eq!(claims["aud"], "dashgate-app");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["permissions"],
        json!(["reports:read", "salaries:read"])
    );
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert!((1..=300).contains(&lifetime), "{lifetime}");
    // An assertion is not an access token.
    assert_eq!(
        client()
            .get(gw.url("/x"))
            .bearer_auth(&token)
            .send()
            .await?
            .status(),
        401
    );
    Ok(())
}

#[tokio::test]
async fn role_changes_apply_at_the_next_refresh() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let victor = gw.login("victor", PASSWORD).await?;
    assert_eq!(get(&gw, "/admin", &victor).await?.status(), 403);
    assert!(
        gw.cli(&["roles", "grant", "victor", "admin"], None)?
            .status
            .success()
    );
    // The access token still carries the old roles; a refresh (here: the access cookie gone)
    // picks up the new ones.
    assert_eq!(get(&gw, "/admin", &victor).await?.status(), 403);
    let r = get(&gw, "/admin", &victor.without(ACCESS)).await?;
    assert_eq!(r.status(), 200);
    let mut refreshed = victor.without(ACCESS);
    refreshed.update(r.headers());
    assert!(
        gw.cli(&["roles", "revoke", "victor", "admin"], None)?
            .status
            .success()
    );
    assert_eq!(
        get(&gw, "/admin", &refreshed.without(ACCESS))
            .await?
            .status(),
        403
    );
    Ok(())
}

#[tokio::test]
async fn policy_validation_and_reload() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[]).await?;
    let policy = gw.dir.path().join("policy.toml");
    let bad = gw.dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\npaths = [\"/admin\"]\nrole = [\"admin\"]\n")?;
    let out = gw.cli(
        &["check-config", "--policy", &bad.display().to_string()],
        None,
    )?;
    assert!(
        !out.status.success()
            && text(&out).contains("rule 1")
            && text(&out).contains("unknown field `role`"),
        "{}",
        text(&out)
    );
    let out = gw.cli(
        &["check-config", "--policy", &policy.display().to_string()],
        None,
    )?;
    assert!(
        out.status.success() && text(&out).contains("with 5 rule(s)"),
        "{}",
        text(&out)
    );
    let out = gw.cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &up.url,
            "--policy",
            &bad.display().to_string(),
        ],
        None,
    )?;
    assert!(
        !out.status.success() && text(&out).contains("unknown field `role`"),
        "{}",
        text(&out)
    );

    // Edit the running gateway's policy file.
    let victor = gw.login("victor", PASSWORD).await?;
    assert_eq!(get(&gw, "/admin", &victor).await?.status(), 403);
    std::fs::write(
        &policy,
        POLICY.replace(
            "roles = [\"admin\"]\n\n[[rule]]\npaths = [\"/reports/*\"]\nmethods",
            "roles = [\"admin\", \"viewer\"]\n\n[[rule]]\npaths = [\"/reports/*\"]\nmethods",
        ),
    )?;
    let opened = eventually(std::time::Duration::from_secs(10), || async {
        get(&gw, "/admin", &victor)
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(opened, "file change picked up");
    // An invalid edit is refused and the running policy stays.
    std::fs::write(
        &policy,
        "[[rule]]\npaths = [\"/admin\"]\nroles = \"admin\"\n",
    )?;
    let reported = eventually(std::time::Duration::from_secs(10), || async {
        gw.log().contains("new policy rejected")
    })
    .await;
    assert!(reported);
    assert_eq!(
        get(&gw, "/admin", &victor).await?.status(),
        200,
        "previous policy still in force"
    );
    // SIGHUP reloads too.
    std::fs::write(&policy, POLICY)?;
    let _ = std::process::Command::new("pkill")
        .args(["-HUP", "-f", &format!("127.0.0.1:{}", gw.port)])
        .status();
    let closed = eventually(std::time::Duration::from_secs(10), || async {
        get(&gw, "/admin", &victor)
            .await
            .is_ok_and(|r| r.status() == 403)
    })
    .await;
    assert!(closed);
    Ok(())
}

/// A silent refresh on a request that is then refused must still hand the browser its new
/// refresh token; otherwise the old one, already spent, looks like a replay later on and the
/// whole session is revoked.
#[tokio::test]
async fn refused_requests_still_carry_refreshed_cookies() -> TestResult {
    let up = Upstream::start().await?;
    let gw = setup(&up, &[("DASHGATE_SESSION_REFRESH_GRACE", "0s")]).await?;
    let mut victor = gw.login("victor", PASSWORD).await?.without(ACCESS);
    for path in ["/admin", "/auth/metrics"] {
        let r = get(&gw, path, &victor).await?;
        assert_eq!(r.status(), 403, "{path}");
        let before = victor.clone();
        victor.update(r.headers());
        assert_ne!(
            victor.get(crate::support::REFRESH),
            before.get(crate::support::REFRESH),
            "{path}: new refresh cookie"
        );
        victor = victor.without(ACCESS);
    }
    // Past the (zero) grace window the session is still alive with the cookies the browser
    // got. (Waiting for the clock here is the point: grace is measured in whole seconds.)
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let rotated_at = unix();
    while unix() < rotated_at + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(get(&gw, "/x", &victor).await?.status(), 200);
    assert!(!gw.log().contains("refresh_reuse"), "no false reuse alarm");
    Ok(())
}
