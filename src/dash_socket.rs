//! Dash 4's WebSocket callbacks (`<prefix>_dash-ws-callback`), relayed message by message so
//! that the policy holds on the socket as it does over HTTP:
//!
//! - every `callback_request` the browser sends is judged by [`crate::dash_guard`] like the
//!   same callback's `POST`; a refused one never reaches the app, and the browser gets the
//!   answer Dash itself sends for a failed callback (`status: "error"`), so the socket stays
//!   usable for the callbacks that are allowed. Several messages in one frame (a JSON array)
//!   are judged one by one;
//! - `heartbeat` and `get_props_response` pass; anything else the browser sends is dropped;
//!   binary or non-JSON frames end the socket;
//! - for someone `dash_components` rules hide components from, the app's `callback_response`
//!   data and `set_props` messages are pruned like callback answers (a `set_props` for a
//!   hidden component is dropped);
//! - the socket ends (close code 1008) when the session does: logout, revocation, or the
//!   access token's expiry ([`crate::session::session_end`]). The renderer reconnects, and the
//!   new handshake refreshes the session inline.
//!
//! Compression extensions are not offered to the app, so every frame is readable.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::dash_guard::{Asker, Way, judge_callback};
use crate::error::Error;
use crate::policy::prune::{self, Hidden};
use crate::policy::{PolicyHandle, Subject, dash};
use crate::proxy::dependencies::DependencyCache;
use crate::proxy::filter::Needs;
use crate::proxy::{Carrier, Proxy, Switched, Upgrade};
use crate::token::AccessClaims;

/// The last path segment of Dash's WebSocket callback endpoint.
pub const WS_CALLBACK: &str = "_dash-ws-callback";

/// What judging and pruning messages needs, shared by every socket.
#[derive(Clone)]
pub struct SocketServices {
    pub policy: Arc<PolicyHandle>,
    pub dependencies: Arc<DependencyCache>,
    pub proxy: Arc<Proxy>,
    /// Largest message read (`limits.max_inspect_bytes`).
    pub limit: usize,
    pub timeout: std::time::Duration,
}

/// Whose socket this is and where it leads.
pub struct SocketOwner {
    /// `None`: nobody is signed in (a public path).
    pub claims: Option<Arc<AccessClaims>>,
    /// The app's prefix (`/`, `/app/`).
    pub app: String,
    /// The handshake's path, for the log.
    pub path: String,
}

/// Carry a Dash WebSocket: both sides speak WebSocket through the relay until either closes
/// or `ends` resolves.
pub fn relay(
    client: hyper::upgrade::OnUpgrade,
    services: SocketServices,
    owner: SocketOwner,
    ends: impl Future<Output = ()> + Send + 'static,
) -> Upgrade {
    let carrier: Carrier =
        Box::new(move |client, upstream| Box::pin(run(client, upstream, services, owner, ends)));
    Upgrade { client, carrier }
}

/// End both sides: the browser gets `code` and `reason`, the app a "going away".
async fn close_both<S>(to_client: &mut S, to_app: &mut S, code: CloseCode, reason: &'static str)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let _ = to_client.send(close(code, reason)).await;
    let _ = to_app.send(close(CloseCode::Away, "")).await;
}

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn run(
    client: Switched,
    upstream: Switched,
    services: SocketServices,
    owner: SocketOwner,
    ends: impl Future<Output = ()> + Send,
) {
    let config = WebSocketConfig {
        max_message_size: Some(services.limit),
        max_frame_size: Some(services.limit),
        ..WebSocketConfig::default()
    };
    let client = WebSocketStream::from_raw_socket(client, Role::Server, Some(config)).await;
    let upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, Some(config)).await;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_app, mut from_app) = upstream.split();
    let mut ends = std::pin::pin!(ends);
    loop {
        tokio::select! {
            m = from_client.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    let Some(judged) = from_browser(&services, &owner, &text).await else {
                        close_both(&mut to_client, &mut to_app, CloseCode::Invalid, "unreadable message").await;
                        break;
                    };
                    let mut failed = false;
                    for m in judged.forward {
                        failed |= to_app.send(Message::Text(m)).await.is_err();
                    }
                    for m in judged.answer {
                        failed |= to_client.send(Message::Text(m)).await.is_err();
                    }
                    if failed {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    close_both(&mut to_client, &mut to_app, CloseCode::Unsupported, "binary messages are not Dash's").await;
                    break;
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = to_app.send(Message::Close(frame)).await;
                    break;
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = to_app.send(close(CloseCode::Away, "")).await;
                    break;
                }
            },
            m = from_app.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    match for_browser(&services, &owner, text) {
                        Ok(Some(out)) => {
                            if to_client.send(Message::Text(out)).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(why) => {
                            tracing::warn!(error = why, "an app message that must be filtered could not be read; socket closed");
                            close_both(&mut to_client, &mut to_app, CloseCode::Error, "unreadable answer").await;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    // Nothing Dash sends; it cannot be pruned, so only those who see everything get it.
                    if hidden(&services, &owner).is_none()
                        && to_client.send(Message::Binary(b)).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = to_client.send(Message::Close(frame)).await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = to_client.send(close(CloseCode::Away, "")).await;
                    break;
                }
            },
            () = &mut ends => {
                tracing::info!(path = %owner.path, "WebSocket closed: the session ended");
                close_both(&mut to_client, &mut to_app, CloseCode::Policy, "session ended").await;
                break;
            }
        }
    }
}

/// What to do with one frame from the browser.
#[derive(Debug, Default, PartialEq)]
pub struct FromBrowser {
    /// Messages for the app, one per frame.
    pub forward: Vec<String>,
    /// Answers the gateway gives in the app's place (refused callbacks).
    pub answer: Vec<String>,
}

fn who(owner: &SocketOwner) -> Option<&dyn Subject> {
    owner.claims.as_deref().map(|c| c as &dyn Subject)
}

fn hidden(services: &SocketServices, owner: &SocketOwner) -> Option<Hidden> {
    services
        .policy
        .current()
        .restrictions(who(owner))
        .filter(Hidden::hides_components)
}

/// Judge a frame from the browser; `None` when it is not Dash's (not JSON objects).
pub async fn from_browser(
    services: &SocketServices,
    owner: &SocketOwner,
    text: &str,
) -> Option<FromBrowser> {
    let value: Json = serde_json::from_str(text).ok()?;
    let single = !value.is_array();
    let messages = match value {
        Json::Array(items) => items,
        other => vec![other],
    };
    let policy = services.policy.current();
    let who = who(owner);
    let restricted = policy.restrictions(who);
    let asker = Asker {
        who,
        user: owner.claims.as_deref().map(|c| c.sub.as_str()),
        restricted: restricted.as_ref(),
    };
    let needs = Needs {
        limit: services.limit,
        timeout: services.timeout,
        dependencies: &services.dependencies,
        proxy: &services.proxy,
    };
    let mut out = FromBrowser::default();
    for message in &messages {
        let kind = message.as_object()?.get("type").and_then(Json::as_str)?;
        match kind {
            "callback_request" => {
                let verdict = match serde_json::to_vec(&message["payload"]) {
                    Ok(bytes) => match dash::parse(&bytes) {
                        Ok(cb) => {
                            judge_callback(
                                &policy,
                                &needs,
                                &owner.app,
                                &cb,
                                &asker,
                                Way::Renderer,
                                &owner.path,
                            )
                            .await
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "refused a Dash callback on a WebSocket");
                            Err(Error::BadRequest("malformed Dash callback"))
                        }
                    },
                    Err(_) => Err(Error::BadRequest("malformed Dash callback")),
                };
                match verdict {
                    Ok(_) => out.forward.push(message.to_string()),
                    Err(e) => out.answer.push(failed_callback(message, &e).to_string()),
                }
            }
            "heartbeat" | "get_props_response" => out.forward.push(message.to_string()),
            other => tracing::debug!(
                kind = other,
                "dropped a WebSocket message Dash does not send"
            ),
        }
    }
    // A lone message the app may have goes on as it came.
    if single && out.forward.len() == 1 {
        out.forward = vec![text.to_owned()];
    }
    Some(out)
}

/// The answer Dash gives a callback that failed, for one the gateway refused.
fn failed_callback(request: &Json, e: &Error) -> Json {
    let message = match e {
        Error::Forbidden(_) => "forbidden: you may not run this callback".to_owned(),
        Error::Unauthenticated | Error::BadRequest(_) => e.to_string(),
        _ => "the gateway could not check this callback".to_owned(),
    };
    json!({
        "type": "callback_response",
        "rendererId": request.get("rendererId").cloned().unwrap_or(Json::Null),
        "requestId": request.get("requestId").cloned().unwrap_or(Json::Null),
        "payload": {"status": "error", "message": message},
    })
}

/// A frame from the app as this user may see it: `Ok(None)` when nothing of it is left.
pub fn for_browser(
    services: &SocketServices,
    owner: &SocketOwner,
    text: String,
) -> Result<Option<String>, &'static str> {
    let Some(hidden) = hidden(services, owner) else {
        return Ok(Some(text));
    };
    prune_app_frame(&text, &hidden)
}

/// Remove what `hidden` covers from one frame of the app (a message or an array of them).
pub fn prune_app_frame(text: &str, hidden: &Hidden) -> Result<Option<String>, &'static str> {
    let value: Json = serde_json::from_str(text).map_err(|_| "a message that is not JSON")?;
    let batch = value.is_array();
    let messages = match value {
        Json::Array(items) => items,
        other => vec![other],
    };
    let mut kept = Vec::with_capacity(messages.len());
    for mut message in messages {
        let kind = message
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "callback_response" => {
                let payload = &mut message["payload"];
                if payload.get("status").and_then(Json::as_str) == Some("ok") {
                    if let Some(data) = payload.get_mut("data") {
                        *data = prune::value(data, hidden).map_err(|e| e.0)?;
                    }
                }
                kept.push(message);
            }
            "set_props" => {
                let payload = &message["payload"];
                let id = payload
                    .get("componentId")
                    .and_then(Json::as_str)
                    .ok_or("a set_props without a componentId")?
                    .to_owned();
                let props = payload.get("props").cloned().unwrap_or(Json::Null);
                // A set_props is what a callback answer calls a side update.
                let answer =
                    json!({"multi": true, "response": {}, "sideUpdate": {id.clone(): props}});
                let pruned = prune::value(&answer, hidden).map_err(|e| e.0)?;
                if let Some(props) = pruned.get("sideUpdate").and_then(|r| r.get(&id)) {
                    message["payload"]["props"] = props.clone();
                    kept.push(message);
                }
            }
            _ => kept.push(message),
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let out = if batch {
        Json::Array(kept)
    } else {
        kept.pop().unwrap_or(Json::Null)
    };
    // Component trees anywhere else (a message kind Dash may add later) go too.
    let text = out.to_string();
    match prune::layout(text.as_bytes(), hidden).map_err(|e| e.0)? {
        Some(pruned) => String::from_utf8(pruned)
            .map(Some)
            .map_err(|_| "a pruned message that is not text"),
        None => Ok(Some(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    struct Viewer;
    impl Subject for Viewer {
        fn has_role(&self, _: &str) -> bool {
            false
        }
        fn has_permission(&self, _: &str) -> bool {
            false
        }
    }

    fn hidden() -> Result<Hidden, String> {
        let policy = Arc::new(Policy::parse(include_str!(
            "../tests/fixtures/components.toml"
        ))?);
        policy
            .hidden_components(Some(&Viewer))
            .ok_or_else(|| "the viewer fails the rules".to_owned())
    }

    #[test]
    fn app_frames_lose_hidden_components_whatever_their_kind() -> Result<(), String> {
        let hidden = hidden()?;
        let secret = r#"{"type":"Div","namespace":"dash_html_components","props":{"id":"salary-panel","children":"SECRET"}}"#;
        let frame = format!(
            r#"[{{"type":"set_props","rendererId":"r","payload":{{"componentId":"salary-panel","props":{{"children":"SECRET"}}}}}},
                {{"type":"set_props","rendererId":"r","payload":{{"componentId":"note","props":{{"children":[{secret},"ok"]}}}}}},
                {{"type":"callback_response","rendererId":"r","requestId":"q","payload":{{"status":"ok","data":{{"multi":true,"response":{{"out":{{"children":{secret}}}}},"sideUpdate":{{"salary-panel":{{"children":"SECRET"}}}}}}}}}},
                {{"type":"a kind Dash may add","payload":{secret}}}]"#
        );
        let out = prune_app_frame(&frame, &hidden)?.ok_or("everything went")?;
        assert!(!out.contains("SECRET"), "{out}");
        let v: Json = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        let kinds: Vec<&str> = v
            .as_array()
            .ok_or("a batch stays a batch")?
            .iter()
            .filter_map(|m| m["type"].as_str())
            .collect();
        assert_eq!(
            kinds,
            ["set_props", "callback_response", "a kind Dash may add"],
            "the set_props of the hidden component is dropped; the others stay"
        );
        // Frames with nothing hidden pass as they are; frames that are not JSON are refused.
        let plain = r#"{"type": "heartbeat_ack"}"#;
        assert_eq!(
            prune_app_frame(plain, &hidden)?.as_deref(),
            Some(r#"{"type":"heartbeat_ack"}"#)
        );
        assert!(prune_app_frame("not json", &hidden).is_err());
        Ok(())
    }
}
