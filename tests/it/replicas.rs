//! Many replicas over one Redis: shared sessions, instant revocation everywhere, and what
//! happens while Redis is down.

use std::time::{Duration, Instant};

use crate::support::{
    ACCESS, Gateway, Jar, Options, PASSWORD, REFRESH, RedisServer, TestResult, Upstream, client,
    eventually,
};

/// Options for a replica sharing `shared` (database and keys) and `redis`.
fn replica(up: &Upstream, shared: &std::path::Path, redis: &RedisServer) -> Options {
    Options::new(&up.url)
        .env(
            "DASHGATE_DATABASE_URL",
            &format!("sqlite://{}", shared.join("users.db").display()),
        )
        .env(
            "DASHGATE_KEYS_DIR",
            &shared.join("keys").display().to_string(),
        )
        .env("DASHGATE_STORE_URL", &redis.url())
}

async fn status(gw: &Gateway, jar: &Jar) -> u16 {
    match client()
        .get(gw.url("/x"))
        .header("cookie", jar.header())
        .header("accept", "application/json")
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn logout(gw: &Gateway, jar: &Jar) -> Result<u16, reqwest::Error> {
    let r = client()
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("x-csrftoken", jar.csrf())
        .header("accept", "application/json")
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test]
async fn three_replicas_share_sessions_and_revocations() -> TestResult {
    let redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let r1 = Gateway::start_with(
        replica(&up, shared.path(), &redis),
        &[("alice", &[]), ("bob", &[])],
    )
    .await?;
    let r2 = Gateway::start_with(replica(&up, shared.path(), &redis), &[]).await?;
    let r3 = Gateway::start_with(replica(&up, shared.path(), &redis), &[]).await?;
    let replicas = [&r1, &r2, &r3];

    // A session made on one replica works on all, including a refresh on another one.
    let jar = r1.login("alice", PASSWORD).await?;
    for r in replicas {
        assert_eq!(status(r, &jar).await, 200);
    }
    let resp = client()
        .get(r2.url("/x"))
        .header("cookie", jar.without(ACCESS).header())
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "refreshed on another replica");
    let mut jar = jar.without(ACCESS);
    jar.update(resp.headers());
    assert_eq!(status(&r3, &jar).await, 200);

    // Logout on one replica is enforced on the others within 100 ms.
    assert_eq!(logout(&r1, &jar).await?, 200);
    let start = Instant::now();
    let mut refused = false;
    while start.elapsed() < Duration::from_secs(2) {
        if status(&r2, &jar).await == 401 && status(&r3, &jar).await == 401 {
            refused = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(
        refused && took < Duration::from_millis(100),
        "revocation reached every replica after {took:?}"
    );

    // `users disable` from the CLI ends bob's sessions on every replica.
    let bob = r2.login("bob", PASSWORD).await?;
    assert_eq!(status(&r3, &bob).await, 200);
    let out = r1.cli(&["users", "disable", "bob"], None)?;
    assert!(
        out.status.success(),
        "{}",
        crate::support::output_text(&out)
    );
    for r in replicas {
        let gone = eventually(Duration::from_secs(2), || async {
            status(r, &bob).await == 401
        })
        .await;
        assert!(gone, "bob refused on {}", r.base);
    }

    // A replica started later loads the revocations made before it.
    let r4 = Gateway::start_with(replica(&up, shared.path(), &redis), &[]).await?;
    let loaded = eventually(Duration::from_secs(5), || async {
        status(&r4, &jar).await == 401 && status(&r4, &bob).await == 401
    })
    .await;
    assert!(loaded);
    Ok(())
}

#[tokio::test]
async fn two_replicas_refreshing_one_session_at_once() -> TestResult {
    let redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let r1 = Gateway::start_with(replica(&up, shared.path(), &redis), &[("alice", &[])]).await?;
    let r2 = Gateway::start_with(replica(&up, shared.path(), &redis), &[]).await?;
    let jar = r1.login("alice", PASSWORD).await?.without(ACCESS);
    let mut tasks = Vec::new();
    for (i, r) in [&r1, &r2, &r1, &r2].iter().enumerate() {
        let url = r.url(&format!("/cb/{i}"));
        let cookie = jar.header();
        tasks.push(tokio::spawn(async move {
            client().get(url).header("cookie", cookie).send().await
        }));
    }
    for t in tasks {
        assert_eq!(t.await??.status(), 200, "nobody is logged out");
    }
    Ok(())
}

#[tokio::test]
async fn redis_outage_fails_closed_and_recovers() -> TestResult {
    let mut redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let gw = Gateway::start_with(replica(&up, shared.path(), &redis), &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let revoked = gw.login("alice", PASSWORD).await?;
    assert_eq!(logout(&gw, &revoked).await?, 200);
    assert_eq!(
        client().get(gw.url("/auth/readyz")).send().await?.status(),
        200
    );

    redis.stop();
    // Issued access tokens keep working; known revocations stay enforced; no hanging.
    let t = Instant::now();
    assert_eq!(status(&gw, &jar).await, 200);
    // (Without its refresh cookie: with it, the refresh the gateway would try is a 503 too.)
    assert_eq!(status(&gw, &revoked.without(REFRESH)).await, 401);
    // Login, refresh and logout fail closed with 503 and a clear message.
    let r = client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(r.status(), 503);
    assert!(r.text().await?.contains("unavailable"));
    let r = client()
        .get(gw.url("/x"))
        .header("cookie", jar.without(ACCESS).header())
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(r.status(), 503, "refresh");
    assert_eq!(logout(&gw, &jar).await?, 503);
    assert_eq!(
        client().get(gw.url("/auth/readyz")).send().await?.status(),
        503
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "answers come within the store deadline: {:?}",
        t.elapsed()
    );
    assert_eq!(
        status(&gw, &jar).await,
        200,
        "the failed logout changed nothing"
    );

    // Back by itself once Redis is.
    redis.restart().await?;
    let ready = eventually(Duration::from_secs(15), || async {
        client()
            .get(gw.url("/auth/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready);
    let again = gw.login("alice", PASSWORD).await?;
    assert_eq!(status(&gw, &again).await, 200);
    assert_eq!(
        status(&gw, &revoked).await,
        401,
        "revocations known before the outage still hold"
    );
    Ok(())
}

/// Login-attempt counters live in Redis: failures on one replica count on the others.
#[tokio::test]
async fn failed_logins_count_across_replicas() -> TestResult {
    let redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let opts = || replica(&up, shared.path(), &redis).env("DASHGATE_LOGIN_FREE_ATTEMPTS", "2");
    let r1 = Gateway::start_with(opts(), &[("alice", &[])]).await?;
    let r2 = Gateway::start_with(opts(), &[]).await?;
    let login = |g: &Gateway| {
        client()
            .post(g.url("/auth/login"))
            .json(&serde_json::json!({"username": "alice", "password": "not it at all"}))
            .send()
    };
    assert_eq!(login(&r1).await?.status(), 401);
    assert_eq!(login(&r2).await?.status(), 401);
    let r = login(&r1).await?;
    assert_eq!(
        r.status(),
        429,
        "the third failure in a row waits, whichever replica counted the others"
    );
    assert!(r.headers().contains_key("retry-after"));
    Ok(())
}

/// `rediss://`: the state store over TLS, trusting a private CA (`store_ca_file`).
#[tokio::test]
async fn redis_over_tls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    let (cert_file, key_file) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    let tls_port = crate::support::free_port().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert_file.display().to_string(),
        "--tls-key-file",
        &key_file.display().to_string(),
        "--tls-auth-clients",
        "no",
    ])
    .await?;
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url)
        .env(
            "DASHGATE_STORE_URL",
            &format!("rediss://127.0.0.1:{tls_port}"),
        )
        .env("DASHGATE_STORE_CA_FILE", &cert_file.display().to_string());
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let r = client()
        .get(gw.url("/x"))
        .header("cookie", jar.without(ACCESS).header())
        .send()
        .await?;
    assert_eq!(r.status(), 200, "refresh through TLS Redis");
    assert_eq!(
        client().get(gw.url("/auth/readyz")).send().await?.status(),
        200
    );
    // The plain port has the families: they really went to this Redis.
    let keys = crate::support::redis::command(redis.port, "DBSIZE");
    assert!(keys.starts_with(':') && keys.trim() != ":0", "{keys}");
    Ok(())
}

/// The production shape: three replicas sharing PostgreSQL (users) and Redis (sessions). Log in
/// through one, use the session through another, log out through the third.
#[tokio::test]
async fn three_replicas_on_postgres_and_redis() -> TestResult {
    let pg = crate::support::PostgresServer::start().await?;
    let redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let keys = tempfile::tempdir()?;
    let opts = || {
        Options::new(&up.url)
            .env("DASHGATE_DATABASE_URL", &pg.url())
            .env("DASHGATE_STORE_URL", &redis.url())
            .env("DASHGATE_KEYS_DIR", &keys.path().display().to_string())
    };
    let r1 = Gateway::start_with(opts(), &[("alice", &[])]).await?;
    let r2 = Gateway::start_with(opts(), &[]).await?;
    let r3 = Gateway::start_with(opts(), &[]).await?;
    let jar = r1.login("alice", PASSWORD).await?;
    assert_eq!(status(&r2, &jar).await, 200, "used through another replica");
    assert_eq!(
        logout(&r3, &jar).await?,
        200,
        "logged out through the third"
    );
    for r in [&r1, &r2, &r3] {
        let gone = eventually(Duration::from_secs(2), || async {
            status(r, &jar).await == 401
        })
        .await;
        assert!(gone, "{} still accepts the session", r.base);
    }
    Ok(())
}

/// Redis is killed and restarted while requests keep coming (a bounded loop): signed-in users
/// never notice, nothing is answered with a 5xx but the 503s of logins during the outage, and
/// everything works again afterwards.
#[tokio::test]
async fn redis_restart_under_load() -> TestResult {
    let mut redis = RedisServer::start().await?;
    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let gw = Gateway::start_with(replica(&up, shared.path(), &redis), &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let url = gw.url("/load");
    let cookie = jar.header();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&done);
    let load = tokio::spawn(async move {
        let c = client();
        let mut statuses = Vec::new();
        let start = Instant::now();
        for _ in 0..2000 {
            if start.elapsed() > Duration::from_secs(20) {
                break;
            }
            match c.get(&url).header("cookie", &cookie).send().await {
                Ok(r) => statuses.push(r.status().as_u16()),
                Err(_) => statuses.push(0),
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        statuses
    });
    // Once the load runs: Redis goes away, a login fails closed, Redis comes back.
    let running = eventually(Duration::from_secs(10), || {
        let done = std::sync::Arc::clone(&done);
        async move { done.load(std::sync::atomic::Ordering::SeqCst) >= 20 }
    })
    .await;
    assert!(running);
    redis.stop();
    let during = client()
        .post(gw.url("/auth/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(during.status(), 503);
    redis.restart().await?;
    let statuses = load.await?;
    assert!(
        statuses.len() >= 100,
        "the loop ran ({} requests)",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every authenticated request succeeded: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let back = eventually(Duration::from_secs(15), || async {
        gw.login("alice", PASSWORD).await.is_ok()
    })
    .await;
    assert!(back, "logins work again");
    Ok(())
}
