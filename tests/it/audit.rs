//! Audit log: one structured event per login success or failure, lockout, logout, refresh-token
//! reuse and forbidden request, each with the user, the client address and the request id the
//! client was given, and never a password, a token or a key anywhere in the log.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    Gateway, Options, PASSWORD, TestResult, Upstream, client, eventually, jws::gateway_key,
};

const POLICY: &str = r#"
default = "authenticated"

[[rule]]
paths = ["/admin/**"]
roles = ["admin"]
"#;

/// The JSON log lines of the gateway.
fn events(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The one event named `name` logged for the request with this id.
fn event_for(gw: &Gateway, name: &str, request_id: &str) -> Result<Value, String> {
    let found: Vec<Value> = events(gw)
        .into_iter()
        .filter(|e| e["fields"]["event"] == name && e["span"]["request_id"] == request_id)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "{} `{name}` events for request {request_id}; log:\n{}",
            other.len(),
            gw.log()
        )),
    }
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// User and client address of an event (the address from the event or its request's span).
fn who(e: &Value) -> (String, String) {
    let user = e["fields"]["user"].as_str().unwrap_or_default().to_owned();
    let ip = e["fields"]["ip"]
        .as_str()
        .or(e["span"]["ip"].as_str())
        .unwrap_or_default()
        .to_owned();
    (user, ip)
}

#[tokio::test]
async fn one_event_per_security_decision_and_no_secrets() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .policy(POLICY)
        .env("DASHGATE_LOG_FORMAT", "json")
        .env("DASHGATE_SESSION_REFRESH_GRACE", "0s")
        .env("DASHGATE_LOGIN_LOCKOUT_AFTER", "3");
    let gw = Gateway::start_with(opts, &[("alice", &[]), ("bob", &[])]).await?;
    let c = client();
    let login = |user: &str, password: &str| {
        c.post(gw.url("/auth/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
    };
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), "Wrong-Password-42".to_owned()];

    // Login success.
    let r = login("alice", PASSWORD).await?;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let tokens: Value = r.json().await?;
    let access = tokens["access_token"].as_str().ok_or("access")?.to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .ok_or("refresh")?
        .to_owned();
    let e = event_for(&gw, "login", &id)?;
    assert_eq!(e["fields"]["result"], "success");
    assert_eq!(who(&e), ("alice".to_owned(), "127.0.0.1".to_owned()));

    // Login failure, unknown user and wrong password alike.
    for user in ["alice", "nobody"] {
        let r = login(user, "Wrong-Password-42").await?;
        assert_eq!(r.status(), 401);
        let e = event_for(&gw, "login", &request_id(&r))?;
        assert_eq!(e["fields"]["result"], "failure");
        assert_eq!(who(&e), (user.to_owned(), "127.0.0.1".to_owned()));
    }

    // Lockout: the third failure for bob from this address locks the pair.
    let mut last = String::new();
    for _ in 0..3 {
        let r = login("bob", "Wrong-Password-42").await?;
        assert_eq!(r.status(), 401);
        last = request_id(&r);
    }
    let e = event_for(&gw, "lockout", &last)?;
    assert_eq!(who(&e), ("bob".to_owned(), "127.0.0.1".to_owned()));
    assert_eq!(e["fields"]["scope"], "user_and_address");
    let r = login("bob", PASSWORD).await?;
    assert_eq!(r.status(), 429);
    let e = event_for(&gw, "login", &request_id(&r))?;
    assert_eq!(e["fields"]["result"], "throttled");

    // Forbidden request.
    let r = c
        .get(gw.url("/admin/users"))
        .bearer_auth(&access)
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let e = event_for(&gw, "forbidden", &request_id(&r))?;
    assert_eq!(who(&e), ("alice".to_owned(), "127.0.0.1".to_owned()));
    assert_eq!(e["fields"]["path"], "/admin/users");

    // Refresh-token reuse.
    let refresh_once = |token: String| {
        c.post(gw.url("/auth/refresh"))
            .json(&serde_json::json!({"refresh_token": token}))
            .send()
    };
    let r = refresh_once(refresh.clone()).await?;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await?;
    secrets.push(rotated["access_token"].as_str().ok_or("a")?.to_owned());
    secrets.push(rotated["refresh_token"].as_str().ok_or("r")?.to_owned());
    let reuse_id = std::sync::Mutex::new(String::new());
    let reused = eventually(Duration::from_secs(5), || async {
        match refresh_once(refresh.clone()).await {
            Ok(r) if r.status() == 401 => {
                if let Ok(mut id) = reuse_id.lock() {
                    *id = request_id(&r);
                }
                true
            }
            _ => false,
        }
    })
    .await;
    assert!(reused);
    let id = reuse_id.lock().map(|i| i.clone()).unwrap_or_default();
    let e = event_for(&gw, "refresh_reuse", &id)?;
    assert_eq!(who(&e), ("alice".to_owned(), "127.0.0.1".to_owned()));

    // Logout.
    let (access2, refresh2) = gw.token_login("alice", PASSWORD).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let r = c
        .post(gw.url("/auth/logout"))
        .bearer_auth(&access2)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let e = event_for(&gw, "logout", &request_id(&r))?;
    assert_eq!(who(&e), ("alice".to_owned(), "127.0.0.1".to_owned()));

    // Nothing secret anywhere in the log: passwords, tokens (or their signatures and secret
    // halves), cookie values, the signing key.
    secrets.extend([access.clone(), refresh.clone(), access2, refresh2]);
    secrets.extend(jar.0.values().cloned());
    let key = gateway_key(&gw)?;
    secrets.push(crate::support::jws::b64(key.as_bytes()));
    let mut fragments = Vec::new();
    for s in &secrets {
        fragments.push(s.clone());
        if let Some((_, tail)) = s.rsplit_once('.') {
            if tail.len() >= 16 {
                fragments.push(tail.to_owned());
            }
        }
    }
    let log = gw.log();
    assert!(log.lines().count() > 10, "{log}");
    for f in fragments.iter().filter(|f| f.len() >= 8) {
        assert!(!log.contains(f.as_str()), "the log holds a secret: {f}");
    }
    Ok(())
}
