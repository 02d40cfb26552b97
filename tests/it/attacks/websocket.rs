//! Dash 4's WebSocket callbacks: the handshake needs a session and this origin; every
//! `callback_request` frame is judged like the HTTP callback (forged frames, frames in arrays,
//! a refused callback among allowed ones); pruning holds on the app's frames; the socket ends
//! with the session. The upstream is the test upstream's miniature of Dash's endpoint
//! (`support::upstream::dash_socket_answer`); the real one is in tests/dash.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

const POLICY: &str = r#"
[[rule]]
dash_outputs = ["admin-out"]
roles = ["admin"]

[[rule]]
dash_components = ["secret-*"]
roles = ["admin"]
"#;

const SOCKET: &str = "/app/_dash-ws-callback";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open the socket as a browser would (cookies, this origin), or with `headers` instead.
async fn open(
    gw: &Gateway,
    headers: &[(&str, String)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("ws://127.0.0.1:{}{SOCKET}", gw.port);
    let mut req = url.as_str().into_client_request()?;
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            req.headers_mut().insert(name, value);
        }
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

fn browser(gw: &Gateway, jar: &Jar) -> Vec<(&'static str, String)> {
    vec![("cookie", jar.header()), ("origin", gw.base.clone())]
}

fn request(id: &str, output: &str) -> Value {
    let (comp, prop) = output.split_once('.').unwrap_or((output, "children"));
    json!({"type": "callback_request", "rendererId": "r1", "requestId": id, "payload": {
        "output": output, "outputs": {"id": comp, "property": prop},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}], "changedPropIds": ["go.n_clicks"]}})
}

/// The next text frame, parsed, within ten seconds.
async fn next(ws: &mut Socket) -> Result<Value, Box<dyn std::error::Error>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await?
            .ok_or("socket ended")??;
        match m {
            Message::Text(t) => return Ok(serde_json::from_str(&t)?),
            Message::Close(f) => return Err(format!("closed: {f:?}").into()),
            _ => {}
        }
    }
}

/// Messages of a frame (a batch or one).
fn messages(frame: Value) -> Vec<Value> {
    match frame {
        Value::Array(items) => items,
        one => vec![one],
    }
}

async fn setup() -> Result<(Upstream, Gateway, Jar, Jar), Box<dyn std::error::Error>> {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(
        Options::new(&up.url).policy(POLICY),
        &[("admin", &["admin"]), ("viewer", &[])],
    )
    .await?;
    let admin = gw.login("admin", PASSWORD).await?;
    let viewer = gw.login("viewer", PASSWORD).await?;
    Ok((up, gw, admin, viewer))
}

fn app_saw(up: &Upstream, request_id: &str) -> bool {
    up.state
        .socket_messages
        .lock()
        .map(|m| m.iter().any(|t| t.contains(&format!("\"{request_id}\""))))
        .unwrap_or(false)
}

#[tokio::test]
async fn callback_frames_follow_the_policy() -> TestResult {
    let (up, gw, admin, viewer) = setup().await?;
    let mut ws = open(&gw, &browser(&gw, &viewer)).await?;

    // Allowed: answered by the app, with the hidden component taken out of the answer and its
    // set_props dropped.
    ws.send(Message::text(
        request("q1", "public-note.children").to_string(),
    ))
    .await?;
    let got = messages(next(&mut ws).await?);
    assert_eq!(
        got.len(),
        1,
        "the set_props for secret-panel is gone: {got:?}"
    );
    assert_eq!(got[0]["type"], "callback_response");
    assert_eq!(got[0]["requestId"], "q1");
    let data = &got[0]["payload"]["data"];
    assert_eq!(
        data["response"]["public-note"]["children"],
        json!([null, "public answer"]),
        "the hidden child is removed as over HTTP (null keeps the positions): {got:?}"
    );
    assert!(!got[0].to_string().contains("SECRET"), "{got:?}");

    // Refused: Dash's own answer for a failed callback, and the app never sees it.
    ws.send(Message::text(
        request("q2", "admin-out.children").to_string(),
    ))
    .await?;
    let got = next(&mut ws).await?;
    assert_eq!(got["type"], "callback_response", "{got:?}");
    assert_eq!(
        (&got["rendererId"], &got["requestId"]),
        (&json!("r1"), &json!("q2"))
    );
    assert_eq!(got["payload"]["status"], "error");
    assert!(!app_saw(&up, "q2"), "a refused callback reached the app");

    // A refused callback hidden in a batch among allowed ones; forged kinds; a heartbeat.
    let batch = json!([
        request("q3", "public-note.children"),
        request("q4", "admin-out.children"),
        {"type": "callback_response", "rendererId": "r1", "requestId": "q5", "payload": {"status": "ok"}},
        {"type": "set_props", "payload": {"componentId": "admin-out", "props": {"children": "x"}}},
        {"type": "heartbeat"},
    ]);
    ws.send(Message::text(batch.to_string())).await?;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.extend(messages(next(&mut ws).await?));
    }
    let refused = seen
        .iter()
        .find(|m| m["requestId"] == "q4")
        .ok_or("no answer for q4")?;
    assert_eq!(refused["payload"]["status"], "error");
    assert!(
        seen.iter()
            .any(|m| m["requestId"] == "q3" && m["payload"]["status"] == "ok")
    );
    assert!(seen.iter().any(|m| m["type"] == "heartbeat_ack"));
    assert!(app_saw(&up, "q3"));
    assert!(
        !app_saw(&up, "q4"),
        "the refused one in the batch reached the app"
    );
    assert!(!app_saw(&up, "q5"), "a forged answer kind reached the app");
    let forged_set_props = up
        .state
        .socket_messages
        .lock()
        .map(|m| m.iter().any(|t| t.contains("set_props")))
        .unwrap_or(true);
    assert!(!forged_set_props, "a forged set_props reached the app");

    // A malformed payload is a failed callback, not a crash.
    ws.send(Message::text(
        json!({"type": "callback_request", "rendererId": "r1", "requestId": "q6", "payload": {"output": 7}}).to_string(),
    ))
    .await?;
    let got = next(&mut ws).await?;
    assert_eq!(
        (&got["requestId"], &got["payload"]["status"]),
        (&json!("q6"), &json!("error"))
    );

    // The admin passes both rules: the same callback runs, and the answer is whole.
    let mut ws_admin = open(&gw, &browser(&gw, &admin)).await?;
    ws_admin
        .send(Message::text(
            request("a1", "admin-out.children").to_string(),
        ))
        .await?;
    let got = messages(next(&mut ws_admin).await?);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().any(|m| m["type"] == "set_props"));
    assert!(app_saw(&up, "a1"));
    assert!(gw.log().contains("request refused by policy"));
    Ok(())
}

#[tokio::test]
async fn frames_that_are_not_dash_end_the_socket() -> TestResult {
    let (_up, gw, _admin, viewer) = setup().await?;
    for (frame, code) in [
        (Message::text("not json"), 1007u16),
        (Message::text("[1, 2]"), 1007),
        (Message::binary(vec![1u8, 2, 3]), 1003),
    ] {
        let mut ws = open(&gw, &browser(&gw, &viewer)).await?;
        ws.send(frame).await?;
        let end = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
        match end {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), code),
            other => return Err(format!("expected a close {code}, got {other:?}").into()),
        }
    }
    // The gateway is still there.
    assert_eq!(gw.status("/auth/healthz", &Jar::default()).await?, 200);
    Ok(())
}

#[tokio::test]
async fn handshake_needs_a_session_and_this_origin() -> TestResult {
    let (_up, gw, _admin, viewer) = setup().await?;
    let refused = |r: Result<Socket, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(_) => 1,
        Ok(_) => 101,
    };
    assert_eq!(
        refused(open(&gw, &[("origin", gw.base.clone())]).await),
        401
    );
    for origin in ["https://evil.example", "null"] {
        let h = [("cookie", viewer.header()), ("origin", origin.to_owned())];
        assert_eq!(refused(open(&gw, &h).await), 403, "{origin}");
    }
    let h = [("cookie", viewer.header())];
    assert_eq!(
        refused(open(&gw, &h).await),
        403,
        "no Origin with a cookie session"
    );
    let h = [
        ("cookie", viewer.header()),
        ("origin", gw.base.clone()),
        ("sec-fetch-site", "cross-site".to_owned()),
    ];
    assert_eq!(refused(open(&gw, &h).await), 403);
    // A script with a bearer token is no browser: no Origin needed.
    let (access, _) = gw.token_login("viewer", PASSWORD).await?;
    let h = [("authorization", format!("Bearer {access}"))];
    assert_eq!(refused(open(&gw, &h).await), 101);
    Ok(())
}

/// Wait for the gateway to end the socket; the close code.
async fn closed_within(
    ws: &mut Socket,
    bound: Duration,
) -> Result<u16, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await? {
            Some(Ok(Message::Close(f))) => return Ok(f.map_or(1005, |f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("ended without a close frame".into()),
        }
    }
}

/// A socket ends with its session: at logout and at revocation within two seconds
/// (`session::SESSION_WATCH` is one), at the access token's expiry.
#[tokio::test]
async fn the_socket_ends_with_the_session() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(
        Options::new(&up.url)
            .policy(POLICY)
            .env("DASHGATE_TOKEN_ACCESS_TTL", "30s"),
        &[("viewer", &[]), ("other", &[])],
    )
    .await?;
    let bound = Duration::from_secs(2) + Duration::from_millis(500);

    let jar = gw.login("viewer", PASSWORD).await?;
    let mut ws = open(&gw, &browser(&gw, &jar)).await?;
    let r = client()
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("x-csrftoken", jar.csrf())
        .send()
        .await?;
    assert!(r.status().is_redirection() || r.status().is_success());
    assert_eq!(closed_within(&mut ws, bound).await?, 1008, "logout");

    let jar = gw.login("other", PASSWORD).await?;
    let mut ws = open(&gw, &browser(&gw, &jar)).await?;
    let out = gw.cli(&["users", "disable", "other"], None)?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(closed_within(&mut ws, bound).await?, 1008, "revoked");

    // Expiry: the access token lives 30 s; the socket ends then (and not long before).
    let jar = gw.login("viewer", PASSWORD).await?;
    let opened = std::time::Instant::now();
    let mut ws = open(&gw, &browser(&gw, &jar)).await?;
    ws.send(Message::text(r#"{"type":"heartbeat"}"#)).await?;
    assert_eq!(next(&mut ws).await?["type"], "heartbeat_ack");
    assert_eq!(
        closed_within(&mut ws, Duration::from_secs(30) + bound).await?,
        1008,
        "expired"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(28),
        "{:?}",
        opened.elapsed()
    );
    // The renderer reconnects with the refresh cookie: the handshake refreshes inline.
    let url = format!("ws://127.0.0.1:{}{SOCKET}", gw.port);
    let mut req = url.as_str().into_client_request()?;
    req.headers_mut()
        .insert("cookie", jar.without(ACCESS).header().parse()?);
    req.headers_mut().insert("origin", gw.base.parse()?);
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(resp.status(), 101);
    assert!(
        set_cookies(resp.headers())
            .iter()
            .any(|v| v.starts_with(ACCESS)),
        "the handshake's answer carries the new access cookie"
    );
    Ok(())
}
