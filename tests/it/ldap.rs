//! LDAP / Active Directory logins against a real `slapd`: groups mapped to roles (memberOf
//! and group search), LDAPS and StartTLS, sources chained in order, a directory that is down
//! or silent (503, never "wrong password"), escaping, empty passwords, provisioning.

use std::time::{Duration, Instant};

use crate::support::ldap::*;
use crate::support::*;

/// Group → role mapping used by these tests.
const GROUP_ROLES: &str = r#"
[ldap.group_roles]
"cn=dash-admins,ou=groups,dc=example,dc=com" = ["admin"]
"CN=Dash-Viewers, OU=Groups, DC=example, DC=com" = ["viewer"]
"cn=dash-dave-only,ou=groups,dc=example,dc=com" = ["contractor"]
"#;

/// `[ldap]` for this directory over LDAPS (memberOf), plus `extra` lines in `[ldap]` and
/// top-level `head` lines; the bind password goes to a file in `dir`.
fn config(
    slapd: &Slapd,
    dir: &std::path::Path,
    head: &str,
    extra: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let secret = dir.join("ldap-bind-password");
    std::fs::write(&secret, format!("{SERVICE_PASSWORD}\n"))?;
    Ok(format!(
        r#"{head}
[ldap]
url = "{url}"
ca_file = "{ca}"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{secret}"
user_base = "{PEOPLE_DN}"
user_filter = "(&(objectClass=inetOrgPerson)(uid={{username}}))"
timeout = "2s"
{extra}
{GROUP_ROLES}"#,
        url = slapd.ldaps_url(),
        ca = slapd.ca_file().display(),
        secret = secret.display(),
    ))
}

/// JSON login: the status and, on success, the roles `/auth/userinfo` reports.
async fn sign_in(
    gw: &Gateway,
    user: &str,
    password: &str,
) -> Result<(u16, Vec<String>, serde_json::Value), Box<dyn std::error::Error>> {
    let r = gw
        .client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await?;
    if status != 200 {
        return Ok((status, Vec::new(), body));
    }
    let access = body["access_token"].as_str().ok_or("no access_token")?;
    let info: serde_json::Value = gw
        .client()
        .get(gw.url("/auth/userinfo"))
        .bearer_auth(access)
        .send()
        .await?
        .json()
        .await?;
    let roles = info["roles"]
        .as_array()
        .ok_or("no roles")?
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    Ok((status, roles, info))
}

fn show(gw: &Gateway, user: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(output_text(&gw.cli(&["users", "show", user], None)?))
}

/// The fixture itself: a real slapd with the seeded directory, over plain LDAP, StartTLS and
/// LDAPS, with memberOf, escaped DNs and password ACLs as the LDAP tests expect.
#[tokio::test]
async fn fixture_serves_the_seeded_directory() -> TestResult {
    use std::collections::HashSet;

    use crate::support::ldap::*;
    use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

    let slapd = Slapd::start().await?;
    let tls = slapd.tls_config()?;
    assert!(slapd.ca_file().exists());

    async fn connect(url: &str, settings: LdapConnSettings) -> Result<Ldap, LdapError> {
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }
    let plain = || LdapConnSettings::new();
    let secure = || LdapConnSettings::new().set_config(tls.clone());

    // The service account binds over plain LDAP, StartTLS and LDAPS.
    let mut svc = connect(&slapd.url(), plain()).await?;
    svc.simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;
    let mut starttls = connect(&slapd.url(), secure().set_starttls(true)).await?;
    starttls
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;
    let mut ldaps = connect(&slapd.ldaps_url(), secure()).await?;
    ldaps
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .await?
        .success()?;

    // Alice, found by uid, carries memberOf (an operational attribute: asked for by name).
    for ldap in [&mut svc, &mut starttls, &mut ldaps] {
        let (entries, _) = ldap
            .search(
                PEOPLE_DN,
                Scope::Subtree,
                "(&(objectClass=inetOrgPerson)(uid=alice))",
                vec!["cn", "mail", "memberOf", "userPassword"],
            )
            .await?
            .success()?;
        assert_eq!(entries.len(), 1);
        let alice = SearchEntry::construct(entries.into_iter().next().ok_or("no alice")?);
        assert_eq!(alice.dn, ALICE_DN);
        assert_eq!(alice.attrs["cn"], ["Alice Admin"]);
        assert_eq!(alice.attrs["mail"], ["alice@example.com"]);
        let groups: HashSet<&str> = alice.attrs["memberOf"].iter().map(String::as_str).collect();
        assert_eq!(groups, HashSet::from([DASH_ADMINS_DN, DASH_VIEWERS_DN]));
        // The service account never reads passwords.
        assert!(!alice.attrs.contains_key("userPassword"), "{alice:?}");
        assert!(!alice.bin_attrs.contains_key("userPassword"), "{alice:?}");
    }
    // ... nor can it probe them with a filter.
    let (entries, _) = svc
        .search(PEOPLE_DN, Scope::Subtree, "(userPassword=*)", vec!["uid"])
        .await?
        .success()?;
    assert!(entries.is_empty(), "{entries:?}");

    // Dave's DN needs escaping; his groups by memberOf and by a member search agree.
    let (entries, _) = svc
        .search(
            BASE_DN,
            Scope::Subtree,
            "(uid=dave)",
            vec!["cn", "memberOf"],
        )
        .await?
        .success()?;
    let dave = SearchEntry::construct(entries.into_iter().next().ok_or("no dave")?);
    assert_eq!(dave.dn, DAVE_DN);
    assert!(dave.attrs["cn"].iter().any(|c| c == "Dave (Contractor)"));
    let expected = HashSet::from([DASH_VIEWERS_DN, DASH_DAVE_ONLY_DN]);
    let by_memberof: HashSet<&str> = dave.attrs["memberOf"].iter().map(String::as_str).collect();
    assert_eq!(by_memberof, expected);
    let filter = format!(
        "(&(objectClass=groupOfNames)(member={}))",
        ldap3::ldap_escape(&dave.dn)
    );
    let (entries, _) = svc
        .search(GROUPS_DN, Scope::Subtree, &filter, vec!["cn"])
        .await?
        .success()?;
    let by_search: HashSet<String> = entries
        .into_iter()
        .map(|e| SearchEntry::construct(e).dn)
        .collect();
    assert_eq!(
        by_search,
        expected.iter().map(|s| (*s).to_owned()).collect(),
        "{filter}"
    );
    // Carol is in no group.
    let (entries, _) = svc
        .search(BASE_DN, Scope::Subtree, "(uid=carol)", vec!["memberOf"])
        .await?
        .success()?;
    let carol = SearchEntry::construct(entries.into_iter().next().ok_or("no carol")?);
    assert_eq!(carol.dn, CAROL_DN);
    assert!(!carol.attrs.contains_key("memberOf"), "{carol:?}");

    // Users bind with their own password, including dave by his escaped DN; wrong ones get 49.
    for (dn, password) in [
        (ALICE_DN, ALICE_PASSWORD),
        (BOB_DN, BOB_PASSWORD),
        (CAROL_DN, CAROL_PASSWORD),
        (DAVE_DN, DAVE_PASSWORD),
        (ADMIN_DN, ADMIN_PASSWORD),
    ] {
        let mut ldap = connect(&slapd.url(), secure().set_starttls(true)).await?;
        ldap.simple_bind(dn, password).await?.success()?;
        let wrong = ldap.simple_bind(dn, "wrong-password").await?;
        assert_eq!(wrong.rc, 49, "{dn}: {wrong:?}");
    }

    // Anonymous may only bind: it sees nothing.
    let mut anonymous = connect(&slapd.url(), plain()).await?;
    let found = anonymous
        .search(BASE_DN, Scope::Subtree, "(uid=alice)", vec!["cn"])
        .await?;
    assert!(found.0.is_empty(), "{found:?}");
    Ok(())
}

#[tokio::test]
async fn directory_users_sign_in_with_their_groups_as_roles() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .config(&config(&slapd, secrets.path(), "", "")?)
        .policy("[[rule]]\npaths = [\"/admin\", \"/admin/*\"]\nroles = [\"admin\"]\n");
    let gw = Gateway::start_with(opts, &[]).await?;

    // memberOf over LDAPS: alice is in both groups, bob in viewers, carol in none.
    let (status, roles, info) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(
        (status, roles),
        (200, vec!["admin".to_owned(), "viewer".to_owned()]),
        "{info}"
    );
    assert_eq!(info["sub"], "alice");
    let (status, roles, _) = sign_in(&gw, "BOB", BOB_PASSWORD).await?;
    assert_eq!((status, roles), (200, vec!["viewer".to_owned()]));
    let (status, roles, _) = sign_in(&gw, "carol", CAROL_PASSWORD).await?;
    assert_eq!((status, roles.len()), (200, 0));

    // Wrong password and unknown name: the same generic 401.
    let (wrong, _, body) = sign_in(&gw, "alice", "not-her-password").await?;
    let (unknown, _, body2) = sign_in(&gw, "mallory", "whatever-pass").await?;
    assert_eq!((wrong, unknown), (401, 401));
    assert_eq!(body, body2);

    // The roles decide: alice reaches /admin through a browser session, bob does not.
    let alice = gw.login("alice", ALICE_PASSWORD).await?;
    let bob = gw.login("bob", BOB_PASSWORD).await?;
    assert_eq!(gw.status("/admin", &alice).await?, 200);
    assert_eq!(gw.status("/admin", &bob).await?, 403);
    let echoed: serde_json::Value = gw
        .client()
        .get(gw.url("/x"))
        .header("cookie", alice.header())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(echoed["headers"]["x-forwarded-user"][0], "alice");
    assert_eq!(echoed["headers"]["x-forwarded-roles"][0], "admin,viewer");

    // `users show` says where the user comes from and which roles are whose.
    let shown = show(&gw, "alice")?;
    assert!(
        shown.contains(&format!("source:   ldap (entry {ALICE_DN})")),
        "{shown}"
    );
    assert!(
        shown.contains("from ldap groups at the last sign-in: admin, viewer"),
        "{shown}"
    );

    // Local roles on top of mapped ones: granted here, kept across sign-ins.
    let out = gw.cli(&["roles", "add", "ops", "--perm", "reports:read"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    let out = gw.cli(&["roles", "grant", "bob", "ops"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    let (_, roles, info) = sign_in(&gw, "bob", BOB_PASSWORD).await?;
    assert_eq!(roles, vec!["ops".to_owned(), "viewer".to_owned()]);
    assert_eq!(info["permissions"], serde_json::json!(["reports:read"]));
    let shown = show(&gw, "bob")?;
    assert!(shown.contains("granted here: ops"), "{shown}");

    // A directory password is not changed here.
    let out = gw.cli(
        &["users", "passwd", "bob", "--password-stdin"],
        Some("a-new-password-1\n"),
    )?;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("signs in through ldap"),
        "{}",
        output_text(&out)
    );
    let r = gw
        .client()
        .post(gw.url("/auth/password"))
        .header("cookie", bob.header())
        .header("x-csrftoken", bob.csrf())
        .header("origin", &gw.base)
        .json(&serde_json::json!({"current_password": BOB_PASSWORD, "new_password": "a-new-password-1"}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // Disabled here: the directory's yes no longer signs them in.
    let out = gw.cli(&["users", "disable", "carol"], None)?;
    assert!(out.status.success());
    assert_eq!(sign_in(&gw, "carol", CAROL_PASSWORD).await?.0, 401);
    Ok(())
}

/// Groups by search (`group_base` + `group_filter`) over StartTLS, for a user whose DN has
/// characters that must be escaped in a filter: `(`, `)`, `\`, `,`.
#[tokio::test]
async fn group_search_over_starttls_escapes_the_dn() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let mut cfg = config(
        &slapd,
        secrets.path(),
        "",
        &format!(
            "start_tls = true\ngroup_base = \"{GROUPS_DN}\"\ngroup_filter = \"(&(objectClass=groupOfNames)(member={{dn}}))\""
        ),
    )?;
    cfg = cfg.replace(&slapd.ldaps_url(), &slapd.url());
    let gw = Gateway::start_with(Options::new(&up.url).config(&cfg), &[]).await?;
    let (status, roles, _) = sign_in(&gw, "dave", DAVE_PASSWORD).await?;
    assert_eq!(status, 200, "{}", gw.log());
    assert_eq!(roles, vec!["contractor".to_owned(), "viewer".to_owned()]);
    let (status, roles, _) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(
        (status, roles),
        (200, vec!["admin".to_owned(), "viewer".to_owned()])
    );
    // StartTLS really ran: slapd logged the extended operation.
    assert!(
        slapd.log().contains("1.3.6.1.4.1.1466.20037"),
        "{}",
        slapd.log()
    );
    Ok(())
}

/// The first source that knows the name decides; a directory user never takes over a local
/// account of the same name, and a wrong password never falls through to the next source.
#[tokio::test]
async fn sources_are_tried_in_order() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    // Local first (the default order): the local admin, and a local-only user.
    let cfg = config(&slapd, secrets.path(), "", "")?;
    let mut gw = Gateway::start_with(
        Options::new(&up.url).config(&cfg),
        &[("admin", &["admin"]), ("zed", &[])],
    )
    .await?;
    assert_eq!(sign_in(&gw, "admin", PASSWORD).await?.0, 200);
    assert_eq!(
        sign_in(&gw, "admin", ADMIN_PASSWORD).await?.0,
        401,
        "no fall-through to LDAP"
    );
    assert_eq!(sign_in(&gw, "zed", PASSWORD).await?.0, 200);
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);
    assert!(show(&gw, "admin")?.contains("source:   local"));

    // Directory first: the directory knows `admin`, but the name is a local account here.
    let cfg = config(
        &slapd,
        secrets.path(),
        "[login]\nsources = [\"ldap\", \"local\"]",
        "",
    )?;
    std::fs::write(gw.dir.path().join("dashgate.toml"), cfg)?;
    gw.restart(Some(&up.url)).await?;
    assert_eq!(sign_in(&gw, "admin", ADMIN_PASSWORD).await?.0, 401);
    assert!(gw.log().contains("source_conflict"), "{}", gw.log());
    assert_eq!(
        sign_in(&gw, "admin", PASSWORD).await?.0,
        401,
        "the directory decided"
    );
    assert!(
        show(&gw, "admin")?.contains("source:   local"),
        "nothing was taken over"
    );
    // Names the directory does not know still reach local users; directory users still work.
    assert_eq!(sign_in(&gw, "zed", PASSWORD).await?.0, 200);
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);

    // Only the directory: local users cannot sign in at all.
    let cfg = config(&slapd, secrets.path(), "[login]\nsources = [\"ldap\"]", "")?;
    std::fs::write(gw.dir.path().join("dashgate.toml"), cfg)?;
    gw.restart(Some(&up.url)).await?;
    assert_eq!(sign_in(&gw, "zed", PASSWORD).await?.0, 401);
    assert_eq!(sign_in(&gw, "bob", BOB_PASSWORD).await?.0, 200);
    Ok(())
}

/// Injection and the unauthenticated bind: filter metacharacters never reach the directory as
/// a filter, and an empty password (which LDAP servers accept as an anonymous bind) is refused.
#[tokio::test]
async fn filter_injection_and_empty_passwords_are_refused() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let cfg = config(&slapd, secrets.path(), "", "")?;
    let gw = Gateway::start_with(Options::new(&up.url).config(&cfg), &[]).await?;
    for name in ["*", "alice)(uid=*", "a*", "alice\\2a", "alice\u{0}"] {
        assert_eq!(sign_in(&gw, name, ALICE_PASSWORD).await?.0, 401, "{name:?}");
    }
    let binds = || {
        slapd
            .log()
            .matches(&format!("BIND dn=\"{ALICE_DN}\" method=128"))
            .count()
    };
    assert_eq!(sign_in(&gw, "alice", "").await?.0, 401);
    assert_eq!(
        binds(),
        0,
        "an empty password never reaches the directory as a bind"
    );
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);
    assert!(
        eventually(Duration::from_secs(5), || async { binds() == 1 }).await,
        "{}",
        slapd.log()
    );
    Ok(())
}

/// A directory that is down, silent or misconfigured is an outage: 503 with a message that
/// says so, never "wrong password"; local users still sign in; it recovers by itself.
#[tokio::test]
async fn a_directory_that_is_down_answers_503() -> TestResult {
    let mut slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let cfg = config(&slapd, secrets.path(), "", "")?;
    let gw = Gateway::start_with(Options::new(&up.url).config(&cfg), &[("zed", &[])]).await?;
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);
    let alice = gw.login("alice", ALICE_PASSWORD).await?;

    slapd.stop();
    let (status, _, body) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "directory_unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be reached"),
        "{body}"
    );
    // The login form says the same, and not "Invalid username or password".
    let (jar, token) = gw.login_form(&Jar::default()).await?;
    let r = gw
        .client()
        .post(gw.url("/auth/login"))
        .header("cookie", jar.header())
        .form(&[
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
            ("csrf_token", &token),
            ("next", "/"),
        ])
        .send()
        .await?;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let page = r.text().await?;
    assert!(
        page.contains("user directory (LDAP) cannot be reached"),
        "{page}"
    );
    assert!(!page.contains("Invalid username or password"));
    // Local users do not need the directory; sessions already issued keep working.
    assert_eq!(sign_in(&gw, "zed", PASSWORD).await?.0, 200);
    assert_eq!(gw.status("/", &alice).await?, 200);

    slapd.restart().await?;
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);
    Ok(())
}

/// A directory that accepts connections and never answers: the sign-in ends at the deadline.
#[tokio::test]
async fn a_silent_directory_times_out() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = silent.local_addr()?;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let cfg = config(&slapd, secrets.path(), "", "")?
        .replace(&slapd.ldaps_url(), &format!("ldap://{addr}"))
        .replace("timeout = \"2s\"", "timeout = \"1s\"");
    let gw = Gateway::start_with(Options::new(&up.url).config(&cfg), &[]).await?;
    let started = Instant::now();
    let (status, _, body) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    hold.abort();
    Ok(())
}

/// The service account's password is wrong: an operator problem, reported as one.
#[tokio::test]
async fn a_refused_service_account_is_an_outage_with_a_clear_log() -> TestResult {
    let slapd = Slapd::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let cfg = config(&slapd, secrets.path(), "", "")?;
    std::fs::write(
        secrets.path().join("ldap-bind-password"),
        "not-the-secret\n",
    )?;
    let gw = Gateway::start_with(Options::new(&up.url).config(&cfg), &[]).await?;
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 503);
    assert!(
        gw.log()
            .contains("check ldap.bind_dn and ldap.bind_password_file"),
        "{}",
        gw.log()
    );
    assert!(
        !gw.log().contains("not-the-secret"),
        "the secret never reaches the log"
    );
    // The file is read at each sign-in: fixing it needs no restart.
    std::fs::write(secrets.path().join("ldap-bind-password"), SERVICE_PASSWORD)?;
    assert_eq!(sign_in(&gw, "alice", ALICE_PASSWORD).await?.0, 200);
    Ok(())
}

/// Provisioning on a PostgreSQL directory (its own transaction code): first sign-in creates,
/// the next one replaces mapped roles and keeps granted ones, a local name is never taken.
#[tokio::test]
async fn directory_users_are_provisioned_on_postgres() -> TestResult {
    let slapd = Slapd::start().await?;
    let pg = PostgresServer::start().await?;
    let secrets = tempfile::tempdir()?;
    let up = Upstream::start().await?;
    let cfg = config(
        &slapd,
        secrets.path(),
        "[login]\nsources = [\"ldap\", \"local\"]",
        "",
    )?;
    let opts = Options::new(&up.url)
        .config(&cfg)
        .env("DASHGATE_DATABASE_URL", &pg.url());
    let gw = Gateway::start_with(opts, &[("admin", &["admin"])]).await?;
    let (status, roles, _) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(
        (status, roles),
        (200, vec!["admin".to_owned(), "viewer".to_owned()])
    );
    let out = gw.cli(&["roles", "grant", "alice", "admin"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    let out = gw.cli(&["roles", "add", "ops"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    let out = gw.cli(&["roles", "grant", "alice", "ops"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    let (status, roles, _) = sign_in(&gw, "alice", ALICE_PASSWORD).await?;
    assert_eq!(
        (status, roles),
        (
            200,
            vec!["admin".to_owned(), "ops".to_owned(), "viewer".to_owned()]
        )
    );
    let shown = show(&gw, "alice")?;
    assert!(shown.contains("source:   ldap"), "{shown}");
    assert!(shown.contains("granted here: admin, ops"), "{shown}");
    assert_eq!(sign_in(&gw, "admin", ADMIN_PASSWORD).await?.0, 401);
    assert!(show(&gw, "admin")?.contains("source:   local"));
    Ok(())
}

/// A secret file that is not there stops `serve` at once with a message naming it, rather than
/// failing every sign-in later; the OpenID client secret likewise.
#[tokio::test]
async fn missing_secret_files_stop_the_start() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    let cases = [
        (
            "DASHGATE_LDAP_BIND_PASSWORD_FILE",
            vec![
                ("DASHGATE_LDAP_URL", "ldaps://127.0.0.1:1"),
                ("DASHGATE_LDAP_BIND_DN", SERVICE_DN),
                ("DASHGATE_LDAP_USER_BASE", PEOPLE_DN),
            ],
        ),
        (
            "DASHGATE_OIDC_CLIENT_SECRET_FILE",
            vec![
                ("DASHGATE_OIDC_ISSUER", "http://127.0.0.1:1"),
                ("DASHGATE_OIDC_CLIENT_ID", "dashgate"),
                (
                    "DASHGATE_OIDC_REDIRECT_URL",
                    "http://127.0.0.1:2/auth/oidc/callback",
                ),
            ],
        ),
    ];
    for (file_var, env) in cases {
        let missing = gw.dir.path().join("no-such-secret");
        let mut c = std::process::Command::new(BIN);
        c.current_dir(gw.dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &up.url])
            .env(
                "DASHGATE_DATABASE_URL",
                format!("sqlite://{}", gw.dir.path().join("other.db").display()),
            )
            .env("DASHGATE_KEYS_DIR", gw.dir.path().join("keys"))
            .env(file_var, &missing);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output()?;
        assert!(!out.status.success(), "{file_var}");
        assert!(
            output_text(&out).contains(&missing.display().to_string()),
            "{file_var}: {}",
            output_text(&out)
        );
    }
    Ok(())
}
