//! The pipeline's stages, in process: a real [`Gateway`] on a temporary SQLite database and
//! key directory, requests built as `http::Request<Full<Bytes>>`, no sockets. (The upstream
//! is never reached: what the stages hand it is checked instead.)

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::authorize::{authorize, check_forgery};
use super::guard::{REQUEST_ID, Target, arrive, authority_as_host, target};
use super::identify::{Identified, identify};
use super::inspect::{Inspection, inspect};
use super::{forward, handle, rewrite};
use crate::config::{Config, Sources};
use crate::dash_guard::Asker;
use crate::error::Error;
use crate::policy::Subject;
use crate::session::{Session, Via};
use crate::state::Gateway;

type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/assets/**"]
public = true

[[rule]]
paths = ["/admin", "/admin/**"]
roles = ["admin"]

[[rule]]
dash_outputs = ["salary-table"]
roles = ["admin"]

[[rule]]
dash_components = ["salary-card"]
roles = ["admin"]

[mcp]
open = false
"#;

/// A gateway on a temporary directory, with the policy above.
struct Fixture {
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Res<Fixture> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    std::fs::write(dir.path().join("policy.toml"), POLICY)?;
    let file = dir.path().join("dashgate.toml");
    std::fs::write(
        &file,
        format!(
            "upstream = [\"http://127.0.0.1:9\"]\ndatabase = \"sqlite://{d}/dashgate.db\"\n\
             keys_dir = \"{d}/keys\"\npolicy = \"{d}/policy.toml\"\ncookie_secure = false\n\
             trusted_proxies = [\"10.0.0.0/8\"]\n"
        ),
    )?;
    let sources = Sources {
        file: Some(file),
        flags: Vec::new(),
    };
    let config = Config::load(&sources, |_| None)?;
    Ok(Fixture {
        gw: Gateway::new(config).await?,
        _dir: dir,
    })
}

const PEER: &str = "127.0.0.1:50000";

fn peer() -> Res<SocketAddr> {
    Ok(PEER.parse()?)
}

fn request(
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Res<Request<Full<Bytes>>> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b = b.header(header::HOST, "gw.test");
    Ok(b.body(Full::new(Bytes::from(body.to_owned())))?)
}

/// A signed-in browser of `user` with `roles`: the `Cookie` header its cookies make, and
/// its CSRF token.
async fn signed_in(gw: &Gateway, user: &str, roles: &[&str]) -> Res<(String, String)> {
    for r in roles {
        gw.directory.add_role((*r).to_owned(), Vec::new()).await?;
    }
    let roles = roles.iter().map(|r| (*r).to_owned()).collect();
    let user = gw
        .directory
        .add(user.to_owned(), "not-a-password-hash".to_owned(), roles)
        .await?;
    let now = crate::clock::now();
    let issued = gw.sessions.start_session(&user, now).await?;
    let set = gw.sessions.session_cookies(&issued, now, true)?;
    let pairs: Vec<String> = set
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect();
    let csrf_name = gw.sessions.cookies.csrf.current().cookies[0].clone();
    let token = pairs
        .iter()
        .find_map(|p| p.strip_prefix(&format!("{csrf_name}=")))
        .ok_or("no CSRF cookie")?
        .to_owned();
    Ok((pairs.join("; "), token))
}

async fn session_of(f: &Fixture, req: &Request<Full<Bytes>>) -> Res<Option<Session>> {
    let policy = f.gw.policy.current();
    let t = target(req, u64::MAX, &policy)?;
    match identify(&f.gw.sessions, &t, req, "/auth", crate::clock::now()).await? {
        Identified::Known(s) => Ok(s),
        Identified::SignInFirst(r) => Err(format!("asked to sign in: {}", r.status()).into()),
    }
}

fn target_of(f: &Fixture, req: &Request<Full<Bytes>>) -> Res<Target> {
    Ok(target(req, 1 << 20, &f.gw.policy.current())?)
}

async fn body_text(resp: crate::http_util::Response) -> Res<String> {
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec())?)
}

#[test]
fn guard_believes_only_trusted_proxies() -> Res {
    let trusted = ["10.0.0.0/8".parse()?];
    let headers = [("x-forwarded-for", "203.0.113.7"), (REQUEST_ID, "trace-1")];

    let mut req = request(Method::GET, "/", &headers, "")?;
    let a = arrive(&mut req, "10.1.2.3:4000".parse()?, &trusted);
    assert_eq!(a.client.ip().to_string(), "203.0.113.7");
    assert_eq!(a.request_id, "trace-1");

    let mut req = request(Method::GET, "/", &headers, "")?;
    let a = arrive(&mut req, peer()?, &trusted);
    assert_eq!(a.client, peer()?);
    assert_ne!(a.request_id, "trace-1");
    assert_eq!(
        req.headers().get(REQUEST_ID).map(HeaderValue::as_bytes),
        Some(a.request_id.as_bytes()),
        "the app gets the id the logs carry"
    );
    Ok(())
}

#[test]
fn guard_settles_one_host_whatever_the_version() -> Res {
    let h2 = |host: Option<&str>| -> Res<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .version(http::Version::HTTP_2)
            .uri("https://gw.test:8443/x");
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        Ok(b.body(Full::new(Bytes::new()))?)
    };
    let mut req = h2(None)?;
    authority_as_host(&mut req)?;
    assert_eq!(req.headers()[header::HOST], "gw.test:8443");
    let mut req = h2(Some("gw.test:8443"))?;
    authority_as_host(&mut req)?;
    assert_eq!(req.headers().get_all(header::HOST).iter().count(), 1);
    let mut req = h2(Some("evil.test"))?;
    assert!(matches!(
        authority_as_host(&mut req),
        Err(Error::BadRequest(_))
    ));
    // HTTP/1.1 in absolute form is held to the same rule; origin form keeps its `Host`.
    let mut req = request(Method::GET, "http://evil.test/x", &[], "")?;
    assert!(matches!(
        authority_as_host(&mut req),
        Err(Error::BadRequest(_))
    ));
    let mut req = request(Method::GET, "/x", &[], "")?;
    authority_as_host(&mut req)?;
    assert_eq!(req.headers()[header::HOST], "gw.test");
    Ok(())
}

#[tokio::test]
async fn guard_reads_the_target() -> Res {
    let f = fixture().await?;
    let policy = f.gw.policy.current();
    let big = request(Method::POST, "/x", &[("content-length", "2048")], "")?;
    assert!(matches!(
        target(&big, 1024, &policy),
        Err(Error::PayloadTooLarge)
    ));
    let plugin = request(Method::GET, "/app/_dashgate/callbacks", &[], "")?;
    assert!(matches!(
        target(&plugin, 1024, &policy),
        Err(Error::NotFound)
    ));
    let dotted = request(Method::GET, "/assets/../admin/x", &[], "")?;
    let t = target(&dotted, 1024, &policy)?;
    assert_eq!(t.path.forward, "/admin/x");
    assert!(!t.public, "judged on the normalised path");

    let cb = request(Method::POST, "/app/_dash-update-component", &[], "")?;
    let t = target(&cb, 1024, &policy)?;
    assert!(t.callback && t.needs_identity());
    assert_eq!(t.app(), "/app/");
    let layout = request(Method::GET, "/_dash-layout", &[], "")?;
    assert!(target(&layout, 1024, &policy)?.layout);
    let asset = request(Method::GET, "/assets/a.css", &[], "")?;
    let t = target(&asset, 1024, &policy)?;
    assert!(t.public && !t.needs_identity());
    let socket = request(
        Method::GET,
        "/assets/_dash-ws-callback",
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
        "",
    )?;
    let t = target(&socket, 1024, &policy)?;
    assert!(t.upgrade && t.dash_socket && t.needs_identity());
    let mcp = request(Method::POST, "/_mcp", &[], "")?;
    assert!(target(&mcp, 1024, &policy)?.mcp);
    Ok(())
}

#[tokio::test]
async fn identify_sends_strangers_to_sign_in() -> Res {
    let f = fixture().await?;
    let now = crate::clock::now();
    let page = request(Method::GET, "/report?a=1", &[("accept", "text/html")], "")?;
    let t = target_of(&f, &page)?;
    let Identified::SignInFirst(r) = identify(&f.gw.sessions, &t, &page, "/auth", now).await?
    else {
        return Err("a stranger got through".into());
    };
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers().get(header::LOCATION).map(HeaderValue::as_bytes),
        Some(&b"/auth/login?next=%2Freport%3Fa%3D1"[..])
    );

    let xhr = request(Method::POST, "/_dash-update-component", &[], "{}")?;
    let t = target_of(&f, &xhr)?;
    let Identified::SignInFirst(r) = identify(&f.gw.sessions, &t, &xhr, "/auth", now).await? else {
        return Err("a stranger got through".into());
    };
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));

    // Public paths do not read credentials at all, not even a bad bearer token...
    let asset = request(
        Method::GET,
        "/assets/a.css",
        &[("authorization", "Bearer nope")],
        "",
    )?;
    assert!(session_of(&f, &asset).await?.is_none());
    // ...but elsewhere a bad one is refused, not taken for nobody.
    let api = request(
        Method::GET,
        "/data",
        &[("authorization", "Bearer nope")],
        "",
    )?;
    let t = target_of(&f, &api)?;
    assert!(matches!(
        identify(&f.gw.sessions, &t, &api, "/auth", now).await,
        Err(Error::Unauthenticated)
    ));
    Ok(())
}

#[tokio::test]
async fn identify_reads_a_cookie_session() -> Res {
    let f = fixture().await?;
    let (cookie, _) = signed_in(&f.gw, "ada", &["analyst"]).await?;
    let req = request(Method::GET, "/report", &[("cookie", &cookie)], "")?;
    let s = session_of(&f, &req).await?.ok_or("no session")?;
    assert_eq!(s.via, Via::Cookie);
    assert_eq!(s.claims.sub, "ada");
    assert_eq!(s.claims.roles, ["analyst"]);
    Ok(())
}

/// The CSRF stage's answer for `req`, after the stages before it.
async fn forgery(f: &Fixture, req: Request<Full<Bytes>>, now: i64) -> Res<Result<(), Error>> {
    let t = target_of(f, &req)?;
    let s = session_of(f, &req).await?;
    Ok(check_forgery(&f.gw.sessions, &t, &req, s.as_ref(), now))
}

#[tokio::test]
async fn csrf_stage_wants_the_token_of_cookie_sessions() -> Res {
    let f = fixture().await?;
    let now = crate::clock::now();
    let (cookie, token) = signed_in(&f.gw, "ada", &["analyst"]).await?;
    let check = |req| forgery(&f, req, now);
    let bare = request(Method::POST, "/data", &[("cookie", &cookie)], "")?;
    assert!(matches!(check(bare).await?, Err(Error::Forbidden(_))));
    let wrong = request(
        Method::POST,
        "/data",
        &[("cookie", &cookie), ("x-csrftoken", "x")],
        "",
    )?;
    assert!(matches!(check(wrong).await?, Err(Error::Forbidden(_))));
    let good = request(
        Method::POST,
        "/data",
        &[("cookie", &cookie), ("x-csrftoken", &token)],
        "",
    )?;
    check(good).await??;
    let cross = request(
        Method::POST,
        "/data",
        &[
            ("cookie", &cookie),
            ("x-csrftoken", &token),
            ("sec-fetch-site", "cross-site"),
        ],
        "",
    )?;
    assert!(matches!(check(cross).await?, Err(Error::Forbidden(_))));
    // Safe methods change nothing.
    check(request(Method::GET, "/data", &[("cookie", &cookie)], "")?).await??;

    // A cookie session's WebSocket handshake carries no token: its Origin must be ours.
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("cookie", &cookie),
    ];
    let no_origin = request(Method::GET, "/_dash-ws-callback", &upgrade, "")?;
    assert!(matches!(check(no_origin).await?, Err(Error::Forbidden(_))));
    let mut foreign = upgrade.to_vec();
    foreign.push(("origin", "https://evil.test"));
    assert!(matches!(
        check(request(Method::GET, "/_dash-ws-callback", &foreign, "")?).await?,
        Err(Error::Forbidden(_))
    ));
    let mut ours = upgrade.to_vec();
    ours.push(("origin", "http://gw.test"));
    check(request(Method::GET, "/_dash-ws-callback", &ours, "")?).await??;
    Ok(())
}

#[tokio::test]
async fn bearer_tokens_need_no_csrf_token() -> Res {
    let f = fixture().await?;
    let user =
        f.gw.directory
            .add(
                "bot".to_owned(),
                "not-a-password-hash".to_owned(),
                Vec::new(),
            )
            .await?;
    let now = crate::clock::now();
    let issued = f.gw.sessions.start_session(&user, now).await?;
    let auth = format!("Bearer {}", issued.access_token);
    let req = request(Method::POST, "/data", &[("authorization", &auth)], "")?;
    let s = session_of(&f, &req).await?.ok_or("no session")?;
    assert_eq!(s.via, Via::Bearer);
    let t = target_of(&f, &req)?;
    check_forgery(&f.gw.sessions, &t, &req, Some(&s), now)?;
    Ok(())
}

/// The authorize stage's answer for the user of `cookie`, after the stages before it.
async fn authorized(
    f: &Fixture,
    method: Method,
    path: &str,
    cookie: &str,
) -> Res<Result<super::authorize::Authorized, Error>> {
    let req = request(method, path, &[("cookie", cookie)], "")?;
    let s = session_of(f, &req).await?;
    let t = target_of(f, &req)?;
    Ok(authorize(&f.gw.policy.current(), &t, s.as_ref()))
}

#[tokio::test]
async fn authorize_decides_over_every_rule_kind() -> Res {
    let f = fixture().await?;
    let policy = f.gw.policy.current();
    let (viewer, _) = signed_in(&f.gw, "vic", &["viewer"]).await?;
    let (admin, _) = signed_in(&f.gw, "ada", &["admin"]).await?;

    let anonymous = request(Method::GET, "/report", &[], "")?;
    let t = target_of(&f, &anonymous)?;
    assert!(matches!(
        authorize(&policy, &t, None),
        Err(Error::Unauthenticated)
    ));

    let decided = |method, path, cookie| authorized(&f, method, path, cookie);
    assert!(matches!(
        decided(Method::GET, "/admin/users", &viewer).await?,
        Err(Error::Forbidden(_))
    ));
    // `[mcp] open = false` shuts the MCP server for everyone.
    assert!(matches!(
        decided(Method::POST, "/_mcp", &admin).await?,
        Err(Error::Forbidden(_))
    ));
    // A viewer fails the component and output rules: their layouts are filtered.
    let a = decided(Method::GET, "/_dash-layout", &viewer).await??;
    assert!(
        a.grant
            .restricted
            .as_ref()
            .is_some_and(|h| h.hides_components())
    );
    assert!(a.grant.output_bound && a.filter.is_some());
    // The admin fails none.
    let a = decided(Method::GET, "/_dash-layout", &admin).await??;
    assert!(a.grant.restricted.is_none() && !a.grant.output_bound && a.filter.is_none());
    Ok(())
}

/// A callback body asking for `output`.
fn callback(output: &str) -> String {
    serde_json::json!({
        "output": format!("{output}.children"),
        "outputs": {"id": output, "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
    })
    .to_string()
}

/// The inspect stage's outcome for a callback of the user of `cookie`, after the stages
/// before it.
async fn inspected(f: &Fixture, cookie: &str, body: String) -> Res<Result<Inspection, Error>> {
    let policy = f.gw.policy.current();
    let req = request(
        Method::POST,
        "/_dash-update-component",
        &[("cookie", cookie)],
        &body,
    )?;
    let s = session_of(f, &req).await?;
    let t = target_of(f, &req)?;
    let a = authorize(&policy, &t, s.as_ref())?;
    let asker = Asker {
        who: s.as_ref().map(|s| &*s.claims as &dyn Subject),
        user: s.as_ref().map(|s| s.claims.sub.as_str()),
        restricted: a.grant.restricted.as_ref(),
    };
    let services = f.gw.services();
    let app = services.app_reads();
    let timeout = std::time::Duration::from_secs(5);
    Ok(inspect(&app, &policy, &t, &a, &asker, req.into_body(), timeout).await)
}

#[tokio::test]
async fn inspect_judges_callback_bodies() -> Res {
    let f = fixture().await?;
    let (viewer, _) = signed_in(&f.gw, "vic", &["viewer"]).await?;
    let run = |body: String| inspected(&f, &viewer, body);
    assert!(matches!(
        run("{not json".to_owned()).await?,
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        run(callback("salary-table")).await?,
        Err(Error::Forbidden(_))
    ));
    // Whether the viewer's callback touches what they may not see is read from the app's
    // callback list; an app that cannot tell refuses, it does not let it pass.
    assert!(matches!(
        run(callback("weather")).await?,
        Err(Error::BadGateway)
    ));
    let (admin, _) = signed_in(&f.gw, "ada", &["admin"]).await?;
    let body = callback("salary-table");
    let Inspection::Pass {
        body: sent,
        filter,
        mcp,
    } = inspected(&f, &admin, body.clone()).await??
    else {
        return Err("an allowed callback was refused".into());
    };
    assert!(
        mcp.is_none() && filter.is_none(),
        "nothing to filter for the admin"
    );
    assert_eq!(
        sent.collect().await?.to_bytes(),
        body.as_bytes(),
        "forwarded as read"
    );
    Ok(())
}

#[tokio::test]
async fn forward_hands_the_app_identity_not_credentials() -> Res {
    let f = fixture().await?;
    let (cookie, _) = signed_in(&f.gw, "ada", &["analyst"]).await?;
    let with_app_cookie = format!("{cookie}; theme=dark");
    let req = request(
        Method::GET,
        "/assets/../report?x=1",
        &[
            ("cookie", &with_app_cookie),
            ("accept-encoding", "gzip"),
            ("x-forwarded-user", "mallory"),
        ],
        "",
    )?;
    let s = session_of(&f, &req).await?;
    let t = target_of(&f, &req)?;
    let (mut parts, _) = req.into_parts();
    let head = forward::Head {
        client_ip: "203.0.113.9".to_owned(),
        https: true,
        host: parts.headers.get(header::HOST).cloned(),
        upgrade: None,
        reads_answer: true,
        assertion: Some("signed"),
    };
    forward::upstream_head(&mut parts, &t, s.as_ref(), &f.gw.sessions.cookies, head)?;
    let h = &parts.headers;
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(parts.uri, "/report?x=1");
    assert_eq!(get("x-forwarded-user"), "ada");
    assert_eq!(get("x-forwarded-roles"), "analyst");
    assert_eq!(get("x-forwarded-for"), "203.0.113.9");
    assert_eq!(get("x-forwarded-proto"), "https");
    assert_eq!(get("x-dashgate-assertion"), "signed");
    assert_eq!(
        get("cookie"),
        "theme=dark",
        "the gateway's cookies stay with it"
    );
    assert!(
        !h.contains_key(header::ACCEPT_ENCODING),
        "a filtered answer comes plain"
    );
    Ok(())
}

#[test]
fn rewrite_keeps_our_cookies_ours() -> Res {
    let names = crate::session::cookies::CookieNames::new(false);
    let mut resp = crate::http_util::Response::new(crate::http_util::empty());
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("dashgate-access=forged; Path=/"),
    );
    h.append(header::SET_COOKIE, HeaderValue::from_static("theme=dark"));
    rewrite::strip_our_set_cookies(&mut resp, &names);
    rewrite::finish(&mut resp, "req-1", true);
    let cookies: Vec<&HeaderValue> = resp.headers().get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cookies, [HeaderValue::from_static("theme=dark")]);
    assert_eq!(
        resp.headers().get(REQUEST_ID),
        Some(&HeaderValue::from_static("req-1"))
    );
    assert!(
        resp.headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
    Ok(())
}

/// The whole pipeline in process, for answers that never reach the upstream.
#[tokio::test]
async fn the_pipeline_in_order() -> Res {
    let f = fixture().await?;
    let (cookie, token) = signed_in(&f.gw, "vic", &["viewer"]).await?;
    let resp = handle(
        &f.gw.services(),
        peer()?,
        request(Method::GET, "/auth/healthz", &[], "")?,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key(REQUEST_ID));

    let page = request(Method::GET, "/admin", &[("accept", "text/html")], "")?;
    let resp = handle(&f.gw.services(), peer()?, page).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "identify before authorize"
    );

    // CSRF before authorize: a forged POST is refused as forged even where the policy
    // would refuse it anyway.
    let forged = request(Method::POST, "/admin/x", &[("cookie", &cookie)], "")?;
    let resp = handle(&f.gw.services(), peer()?, forged).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_text(resp).await?.contains("CSRF"));

    let refused = request(
        Method::POST,
        "/admin/x",
        &[("cookie", &cookie), ("x-csrftoken", &token)],
        "",
    )?;
    let resp = handle(&f.gw.services(), peer()?, refused).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(body_text(resp).await?.contains("access"));

    let refused = request(
        Method::POST,
        "/_dash-update-component",
        &[("cookie", &cookie), ("x-csrftoken", &token)],
        &callback("salary-table"),
    )?;
    let resp = handle(&f.gw.services(), peer()?, refused).await;
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "inspect before forward"
    );
    Ok(())
}
