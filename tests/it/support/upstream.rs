//! A real HTTP/1.1 upstream on loopback that reports what it received, so tests can see
//! exactly what the gateway forwarded. Also speaks WebSocket on `/ws` (echo).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the upstream counts and what tests can trigger.
#[derive(Default)]
pub struct State {
    pub hits: AtomicUsize,
    /// `METHOD path` of every request, in arrival order.
    pub seen: std::sync::Mutex<Vec<String>>,
    /// Connections that carried a request someone made (not only the gateway's health checks,
    /// which have their own pool).
    pub app_connections: AtomicUsize,
    /// `/stream` sends its first chunk, then waits for this before sending the rest.
    pub release: tokio::sync::Notify,
    /// How often `…/_dash-dependencies` was asked for.
    pub dependency_fetches: AtomicUsize,
    /// Every text message that reached a `…/_dash-ws-callback` socket.
    pub socket_messages: std::sync::Mutex<Vec<String>>,
}

pub struct Upstream {
    pub url: String,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    closed: tokio::sync::watch::Sender<bool>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

impl Upstream {
    pub async fn start() -> Result<Upstream, Box<dyn std::error::Error>> {
        Self::start_at("127.0.0.1:0").await
    }

    /// Listen on a given address (to bring an upstream back on the port it had).
    pub async fn start_at(addr: &str) -> Result<Upstream, Box<dyn std::error::Error>> {
        let listener = TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let (closed, closing) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = Arc::clone(&st);
                let mut closing = closing.clone();
                let counted = Arc::new(std::sync::atomic::AtomicBool::new(false));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        // The gateway's health checks are not requests anyone made.
                        let probe = req
                            .headers()
                            .get("user-agent")
                            .is_some_and(|v| v == "dashgate-health-check");
                        if !probe {
                            if !counted.swap(true, Ordering::SeqCst) {
                                st.app_connections.fetch_add(1, Ordering::SeqCst);
                            }
                            st.hits.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut seen) = st.seen.lock() {
                                seen.push(format!("{} {}", req.method(), req.uri().path()));
                            }
                        }
                        answer(Arc::clone(&st), req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    // Dropping the upstream closes its kept-alive connections too, like a
                    // process that dies.
                    tokio::select! {
                        _ = conn => {}
                        _ = closing.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Ok(Upstream {
            url,
            state,
            task,
            closed,
        })
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// `METHOD path` of every request the upstream has received.
    pub fn seen(&self) -> Vec<String> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Connections that carried a request someone made (health-check connections left out).
    pub fn app_connections(&self) -> usize {
        self.state.app_connections.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.closed.send(true);
    }
}

async fn answer(
    state: Arc<State>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/stream" {
        let chunks = futures_util::stream::unfold(0u8, move |step| {
            let state = Arc::clone(&state);
            async move {
                match step {
                    0 => Some((
                        Ok(hyper::body::Frame::data(Bytes::from_static(b"first\n"))),
                        1,
                    )),
                    1 => {
                        state.release.notified().await;
                        Some((
                            Ok(hyper::body::Frame::data(Bytes::from_static(b"rest\n"))),
                            2,
                        ))
                    }
                    _ => None,
                }
            }
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    let dash_socket = req.uri().path().ends_with("/_dash-ws-callback");
    if req.uri().path() == "/ws" || dash_socket {
        let key = req.headers().get("sec-websocket-key").cloned();
        let state = Arc::clone(&state);
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if !msg.is_text() {
                        continue;
                    }
                    let answer = match (&msg, dash_socket) {
                        (tokio_tungstenite::tungstenite::Message::Text(t), true) => {
                            if let Ok(mut seen) = state.socket_messages.lock() {
                                seen.push(t.clone());
                            }
                            match dash_socket_answer(t) {
                                Some(a) => tokio_tungstenite::tungstenite::Message::Text(a),
                                None => continue,
                            }
                        }
                        _ => msg,
                    };
                    if tx.send(answer).await.is_err() {
                        break;
                    }
                }
            }
        });
        let accept = key
            .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()))
            .unwrap_or_default();
        let resp = Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(full(Bytes::new()));
        return Ok(resp.unwrap_or_else(|_| Response::new(full(Bytes::new()))));
    }
    if req.uri().path() == LAYOUT {
        return Ok(dash_layout(&req));
    }
    if req.uri().path() == "/page" {
        return Ok(dash_index(&req, None));
    }
    if let Some(names) = CSRF_NAMED_APPS
        .iter()
        .find(|(prefix, _, _)| req.uri().path() == *prefix)
    {
        return Ok(dash_index(&req, Some((names.1, names.2))));
    }
    if req.uri().path() == "/broken/_dash-dependencies" {
        let resp = Response::builder().status(500).body(full("broken"));
        return Ok(resp.unwrap_or_else(|_| Response::new(full(Bytes::new()))));
    }
    if req.uri().path().ends_with("/_dash-dependencies") {
        state.dependency_fetches.fetch_add(1, Ordering::SeqCst);
        let resp = Response::builder()
            .header("content-type", "application/json")
            .body(full(DEPENDENCIES));
        return Ok(resp.unwrap_or_else(|_| Response::new(full(Bytes::new()))));
    }
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = headers
            .entry(k.as_str().to_owned())
            .or_insert_with(|| serde_json::json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(serde_json::Value::String(
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ));
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let report = serde_json::json!({
        "method": method, "version": version, "path": path, "query": query, "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body),
    });
    let mut builder = Response::builder().header("content-type", "application/json");
    if path == "/set-cookie" {
        builder = builder
            .header("set-cookie", "_csrf_token=from-app; Path=/")
            .header("set-cookie", "__Host-dashgate-access=evil; Path=/")
            .header("set-cookie", "app_pref=dark; Path=/");
    }
    let resp = builder.body(full(report.to_string()));
    Ok(resp.unwrap_or_else(|_| Response::new(full(Bytes::new()))))
}

/// A Dash-like callback list, served at any `…/_dash-dependencies`: `run.children` sets
/// `secret-panel.children` while it runs, `bg.children` is a background callback, and
/// `cs.children` a clientside callback writing `secret-panel.title`.
pub const DEPENDENCIES: &str = r#"[
{"output":"run.children","inputs":[{"id":"go","property":"n_clicks"}],"state":[],"clientside_function":null,"running":{"running":{"secret-panel.children":"RUNNING-SECRET"},"runningOff":{"secret-panel.children":"done"}}},
{"output":"bg.children","inputs":[{"id":"go","property":"n_clicks"}],"state":[],"clientside_function":null,"background":{"interval":1000}},
{"output":"secret-panel.title","inputs":[{"id":"go","property":"n_clicks"}],"state":[],"clientside_function":{"namespace":"_dashprivate_clientside_funcs","function_name":"f00d"}}
]"#;

/// What Dash 4's WebSocket endpoint answers a message, in miniature: a `callback_request` gets
/// one frame (a batch, the way Dash sends messages queued together) holding a `set_props` for
/// `secret-panel` and a `callback_response` that writes the requested output with children that
/// include a `secret-panel` component, plus a side update of `secret-panel`; a `heartbeat` gets
/// its `heartbeat_ack`.
fn dash_socket_answer(text: &str) -> Option<String> {
    let m: serde_json::Value = serde_json::from_str(text).ok()?;
    match m["type"].as_str()? {
        "callback_request" => {
            let out = &m["payload"]["outputs"];
            let (id, prop) = (out["id"].as_str()?, out["property"].as_str()?);
            let nested = serde_json::json!({"type": "Div", "namespace": "dash_html_components",
                "props": {"id": "secret-panel", "children": "NESTED-SECRET"}});
            Some(
                serde_json::json!([
                    {"type": "set_props", "rendererId": m["rendererId"],
                     "payload": {"componentId": "secret-panel", "props": {"children": "SET-SECRET"}}},
                    {"type": "callback_response", "rendererId": m["rendererId"], "requestId": m["requestId"],
                     "payload": {"status": "ok", "data": {"multi": true,
                         "response": {id: {prop: [nested, "public answer"]}},
                         "sideUpdate": {"secret-panel": {"children": "SIDE-SECRET"}}}}},
                ])
                .to_string(),
            )
        }
        "heartbeat" => Some(r#"{"type": "heartbeat_ack"}"#.to_owned()),
        _ => None,
    }
}

/// Where the Dash-like layout is served (other `_dash-layout` paths echo like any other).
pub const LAYOUT: &str = "/fixture/_dash-layout";

/// A Dash-like `_dash-layout` ([`LAYOUT`]): a root with `secret-panel` and a `public-note`, and a
/// paragraph `accept-encoding` telling what the request asked for. Query switches:
/// `encoding=gzip|deflate|br|zstd` sends it with that coding whatever was asked (an upstream
/// that ignores `Accept-Encoding`; `zstd` is only claimed), `big` pads it to 64 KiB, `bomb`
/// pads it with 1 MiB of spaces (a few KiB once compressed), `partial` answers 206.
fn dash_layout(req: &Request<Incoming>) -> Response<Body> {
    let asked = req
        .headers()
        .get("accept-encoding")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "none".to_owned());
    let query = req.uri().query().unwrap_or("");
    let c = |kind: &str, props: serde_json::Value| serde_json::json!({"type": kind, "namespace": "dash_html_components", "props": props});
    let padding = if query.contains("big") {
        "x".repeat(64 * 1024)
    } else {
        String::new()
    };
    let layout = c(
        "Div",
        serde_json::json!({"id": "root", "children": [
            c("Div", serde_json::json!({"id": "secret-panel", "children": "the secret"})),
            c("P", serde_json::json!({"id": "public-note", "children": padding})),
            c("P", serde_json::json!({"id": "accept-encoding", "children": asked})),
        ]}),
    );
    let mut text = layout.to_string();
    if query.contains("bomb") {
        text.push_str(&" ".repeat(1 << 20));
    }
    let coding = query.split('&').find_map(|kv| kv.strip_prefix("encoding="));
    let status = if query.contains("partial") { 206 } else { 200 };
    encoded(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("etag", "\"layout-v1\""),
        coding,
        text.into_bytes(),
    )
}

/// Apps (by prefix) whose index pages declare CSRF names, as `Dash(csrf_token_name=…,
/// csrf_header_name=…)` does: `(prefix, cookie, header)`. The last one claims the gateway's
/// access cookie and a forwarding header.
pub const CSRF_NAMED_APPS: &[(&str, &str, &str)] = &[
    ("/named/", "my_csrf", "X-My-Csrf"),
    ("/greedy/", "__Host-dashgate-access", "X-Forwarded-User"),
];

/// A Dash-like index page (`/page`): its `_dash-config` embeds a validation layout with
/// `secret-panel`, and with `csrf` the CSRF cookie and header names. Compressed with gzip when
/// the request accepts it, as Flask-Compress does.
fn dash_index(req: &Request<Incoming>, csrf: Option<(&str, &str)>) -> Response<Body> {
    let gzip = req
        .headers()
        .get("accept-encoding")
        .is_some_and(|v| String::from_utf8_lossy(v.as_bytes()).contains("gzip"));
    let mut config = serde_json::json!({
        "url_base_pathname": "/",
        "validation_layout": {"type": "Div", "namespace": "dash_html_components", "props": {
            "id": "secret-panel", "children": "the secret"}},
    });
    if let Some((cookie, header)) = csrf {
        config["csrf_token_name"] = serde_json::json!(cookie);
        config["csrf_header_name"] = serde_json::json!(header);
    }
    let html = format!(
        "<!DOCTYPE html><html><body><div id=\"react-entry-point\"></div><footer>\
         <script id=\"_dash-config\" type=\"application/json\">{config}</script>\
         </footer></body></html>"
    );
    encoded(
        Response::builder().header("content-type", "text/html; charset=utf-8"),
        gzip.then_some("gzip"),
        html.into_bytes(),
    )
}

/// `body` sent with the content coding named (really applied, but for `zstd`).
fn encoded(
    builder: hyper::http::response::Builder,
    coding: Option<&str>,
    body: Vec<u8>,
) -> Response<Body> {
    use std::io::Write as _;
    let compressed = match coding {
        Some("gzip") => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).and_then(|()| e.finish())
        }
        Some("deflate") => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).and_then(|()| e.finish())
        }
        Some("br") => {
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &body[..], &mut out, &Default::default()).map(|_| out)
        }
        _ => Ok(body),
    };
    let builder = match coding {
        Some(c) => builder
            .header("content-encoding", c)
            .header("vary", "Accept-Encoding"),
        None => builder,
    };
    compressed
        .ok()
        .and_then(|b| builder.body(full(b)).ok())
        .unwrap_or_else(|| Response::new(full(Bytes::new())))
}
